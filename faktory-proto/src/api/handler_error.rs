//! [`HandlerError`]: the error type of typed handlers.

use std::error::Error as StdError;
use std::fmt;

use super::{STRING_ERRTYPE, boxed_errtype, errtype, failure_with_errtype};
use crate::worker::Outcome;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The error a job handler returns: any error, plus the errtype its FAIL will carry (the value the
/// Web UI groups retries by), decided when the `HandlerError` was made.
///
/// Like `anyhow::Error`, it holds a boxed `dyn Error + Send + Sync`, and `?` converts any error
/// into it. The errtype comes from the error's static type, through [`api::errtype`](errtype):
///
/// - `?` on a [`JobError`](crate::job::JobError), an [`io::Error`](std::io::Error), your own
///   `SaveError`: errtype `JobError`, `io::Error`, `SaveError` (a type named just `Error` keeps
///   its module; generic parameters are dropped).
/// - a boxed error (`Box<dyn Error + Send + Sync>`, with [`HandlerError::from_boxed`]), or `?` on
///   a concrete type whose name hides the error (a `Box<E>`): the box is looked into (well-known
///   types by downcasting, others by the name their `Debug` output starts with); never `Box`.
/// - [`HandlerError::msg`]: an error that is only a message, errtype `StringError`
///   ([`STRING_ERRTYPE`](super::STRING_ERRTYPE)), the errtype a boxed string (`"…".into()`) gets
///   too, so moving a handler between the two keeps its retries grouped the same way.
/// - [`HandlerError::with_errtype`] names it yourself.
///
/// [`HandlerError::into_outcome`] makes the FAIL: the errtype, the error's message, and its
/// `source()` chain as `caused by: …` backtrace lines (as [`failed_outcome`](super::failed_outcome)
/// does).
///
/// `HandlerError` does not implement [`std::error::Error`] itself (that would conflict with the
/// blanket `From`, as for `anyhow::Error`); it converts into `Box<dyn Error + Send + Sync>`, and
/// [`HandlerError::error`] gives the error it holds.
///
/// ```
/// use faktory_proto::api::HandlerError;
/// use faktory_proto::job::Job;
/// use faktory_proto::worker::Outcome;
///
/// fn handle(job: &Job) -> Result<(), HandlerError> {
///     let (user_id,): (u64,) = job.args_as()?; // a JobError when the args do not fit
///     if user_id == 0 {
///         return Err(HandlerError::msg("no user 0").with_errtype("NoSuchUser"));
///     }
///     std::fs::read("/nonexistent/faktory-proto-doc")?; // an io::Error
///     Ok(())
/// }
///
/// let bad_args = handle(&Job::with_args("Mail", ("x",)).unwrap()).unwrap_err();
/// assert_eq!(bad_args.errtype(), "JobError");
/// let no_user = handle(&Job::with_args("Mail", (0,)).unwrap()).unwrap_err();
/// assert_eq!(no_user.errtype(), "NoSuchUser");
/// assert_eq!(no_user.to_string(), "no user 0");
/// let io = handle(&Job::with_args("Mail", (7,)).unwrap()).unwrap_err();
/// assert_eq!(io.errtype(), "io::Error");
/// assert!(matches!(io.into_outcome(), Outcome::Failed { errtype, .. } if errtype == "io::Error"));
/// ```
pub struct HandlerError {
    error: BoxError,
    errtype: String,
}

impl<E> From<E> for HandlerError
where
    E: StdError + Send + Sync + 'static,
{
    /// The errtype from `E`'s type name ([`api::errtype`](errtype)).
    fn from(error: E) -> Self {
        let type_name = std::any::type_name::<E>();
        let error: BoxError = Box::new(error);
        let errtype = errtype(type_name, &*error);
        HandlerError { error, errtype }
    }
}

impl HandlerError {
    /// The error as a `Box<dyn Error + Send + Sync>` (for code that deals in boxed errors), still
    /// downcastable to what it holds. When the errtype was changed with
    /// [`HandlerError::with_errtype`] (or otherwise differs from what [`api::errtype`](errtype)
    /// finds in the box), the box holds a wrapper with the same message and sources that keeps the
    /// errtype: [`api::errtype`](errtype) on the box gives it back.
    ///
    /// A method and not a `From` impl: with one, a handler closure taking a `Job` and returning
    /// `Result<(), HandlerError>` would fit two of the adapters' handler shapes.
    pub fn into_boxed(self) -> BoxError {
        if boxed_errtype(&*self.error) == self.errtype {
            self.error
        } else {
            Box::new(WithErrtype {
                errtype: self.errtype,
                error: self.error,
            })
        }
    }

    /// An error that is only a message (`HandlerError::msg(format!("no user {id}"))`), with
    /// errtype `StringError` ([`STRING_ERRTYPE`](super::STRING_ERRTYPE), what a boxed string
    /// gets as well). Name it with [`HandlerError::with_errtype`] when retries of this failure
    /// should be told apart in the Web UI.
    pub fn msg<M>(message: M) -> Self
    where
        M: fmt::Display + Send + Sync + 'static,
    {
        HandlerError {
            error: Box::new(Message(message)),
            errtype: STRING_ERRTYPE.to_owned(),
        }
    }

    /// A boxed error (`Box<dyn Error + Send + Sync>`, the usual `BoxError`), looked into for its
    /// errtype like [`api::errtype`](errtype) does for a boxed error: never `Box`.
    ///
    /// `?` cannot convert a box by itself (std's `Box<dyn Error>` does not implement `Error`, and
    /// a `From` for it would conflict with the blanket one): write
    /// `.map_err(HandlerError::from_boxed)?`.
    pub fn from_boxed(error: BoxError) -> Self {
        let errtype = boxed_errtype(&*error);
        HandlerError { error, errtype }
    }

    /// The same error, with `errtype` as the errtype of its FAIL. (The engine cuts an errtype to
    /// 100 bytes.)
    #[must_use]
    pub fn with_errtype(mut self, errtype: impl Into<String>) -> Self {
        self.errtype = errtype.into();
        self
    }

    /// The errtype its FAIL will carry.
    pub fn errtype(&self) -> &str {
        &self.errtype
    }

    /// The error it holds (its `Display` is this error's message).
    pub fn error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.error
    }

    /// The cause of the error it holds: `self.error().source()`, the first `caused by:` line of
    /// its FAIL.
    pub fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }

    /// The error it holds, then each of its sources in turn.
    pub fn chain(&self) -> impl Iterator<Item = &(dyn StdError + 'static)> {
        fn next<'a>(e: &&'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
            let e: &'a (dyn StdError + 'static) = *e;
            e.source()
        }
        let first: &(dyn StdError + 'static) = &*self.error;
        std::iter::successors(Some(first), next)
    }

    /// Whether the error it holds is an `E`.
    pub fn is<E: StdError + 'static>(&self) -> bool {
        self.error.is::<E>()
    }

    /// The error it holds, if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// The outcome to report for the job: FAIL with the errtype, the error's message, and its
    /// `source()` chain as backtrace lines (`caused by: …`), like
    /// [`failed_outcome`](super::failed_outcome).
    pub fn into_outcome(self) -> Outcome {
        failure_with_errtype(self.errtype, &*self.error)
    }
}

impl fmt::Display for HandlerError {
    /// The error's message; with `{:#}`, followed by its causes (`message: cause: cause`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)?;
        if f.alternate() {
            let mut source = self.error.source();
            let mut n = 0;
            while let Some(s) = source {
                if n >= 64 {
                    break;
                }
                write!(f, ": {s}")?;
                source = s.source();
                n += 1;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("errtype", &self.errtype)
            .field("error", &self.error)
            .finish()
    }
}

/// The error of [`HandlerError::msg`]: a message, shown by `Debug` as a quoted string (like a
/// boxed string, so [`boxed_errtype`] reads it as `StringError` too).
struct Message<M>(M);

impl<M: fmt::Display> fmt::Display for Message<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl<M: fmt::Display> fmt::Debug for Message<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.to_string(), f)
    }
}

impl<M: fmt::Display> StdError for Message<M> {}

/// A boxed [`HandlerError`] whose errtype was chosen: the same message and sources as the error it
/// wraps; [`boxed_errtype`] reads its errtype.
pub(super) struct WithErrtype {
    pub(super) errtype: String,
    error: BoxError,
}

impl fmt::Display for WithErrtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for WithErrtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

impl StdError for WithErrtype {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.error.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Job, JobError};

    #[derive(Debug)]
    struct SaveError(std::io::Error);
    impl fmt::Display for SaveError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("saving failed")
        }
    }
    impl StdError for SaveError {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    fn question_mark<E: StdError + Send + Sync + 'static>(e: E) -> Result<(), HandlerError> {
        Err(e)?;
        Ok(())
    }

    #[test]
    fn question_mark_names_the_type() {
        let job = Job::new("X", vec![serde_json::json!("a")]);
        let e = question_mark(job.args_as::<(u32,)>().unwrap_err()).unwrap_err();
        assert_eq!(e.errtype(), "JobError");
        assert!(e.is::<JobError>());
        let e = question_mark(std::io::Error::other("disk full")).unwrap_err();
        assert_eq!(e.errtype(), "io::Error");
        assert_eq!(e.to_string(), "disk full");
        let e = question_mark(SaveError(std::io::Error::other("disk full"))).unwrap_err();
        assert_eq!(e.errtype(), "SaveError");
        assert_eq!(
            e.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        assert_eq!(e.chain().count(), 2);
        assert_eq!(format!("{e:#}"), "saving failed: disk full");
        assert!(e.downcast_ref::<SaveError>().is_some());
        assert!(format!("{e:?}").contains("SaveError"), "{e:?}");
    }

    #[test]
    fn boxed_errors_are_looked_into() {
        let boxed: BoxError = std::io::Error::other("disk full").into();
        let e = HandlerError::from_boxed(boxed);
        assert_eq!(e.errtype(), "io::Error");
        let boxed: BoxError = "no such user".into();
        assert_eq!(HandlerError::from_boxed(boxed).errtype(), "StringError");
        let boxed: BoxError = SaveError(std::io::Error::other("x")).into();
        let e = HandlerError::from_boxed(boxed);
        assert_eq!(e.errtype(), "SaveError");
        assert!(e.is::<SaveError>());
        // A concrete type that is itself a box is looked into as well, never `Box`.
        let e = HandlerError::from(Box::new(std::io::Error::other("x")));
        assert_ne!(e.errtype(), "Box");
    }

    #[test]
    fn messages_and_chosen_errtypes() {
        let e = HandlerError::msg(format!("no user {}", 7));
        assert_eq!(e.errtype(), STRING_ERRTYPE);
        assert_eq!(e.to_string(), "no user 7");
        assert!(e.source().is_none());
        assert_eq!(
            format!("{e:?}"),
            r#"HandlerError { errtype: "StringError", error: "no user 7" }"#
        );
        let e = e.with_errtype("NoSuchUser");
        assert_eq!(e.errtype(), "NoSuchUser");
        // A Display that is not a string.
        assert_eq!(HandlerError::msg(42).to_string(), "42");
    }

    #[test]
    fn outcomes_carry_errtype_message_and_chain() {
        let e = HandlerError::from(SaveError(std::io::Error::other("disk full")));
        assert_eq!(
            e.into_outcome(),
            Outcome::Failed {
                errtype: "SaveError".into(),
                message: "saving failed".into(),
                backtrace: vec!["caused by: disk full".into()],
            }
        );
        let e = HandlerError::msg("nope").with_errtype("Refused");
        assert_eq!(e.into_outcome(), Outcome::failed("Refused", "nope"));
    }

    #[test]
    fn into_a_box_and_back_keeps_the_errtype() {
        // Unchanged errtype: the box is the original error, downcastable.
        let e = HandlerError::from(std::io::Error::other("disk full"));
        let boxed: BoxError = e.into_boxed();
        assert!(boxed.is::<std::io::Error>());
        assert_eq!(
            errtype(std::any::type_name::<BoxError>(), &*boxed),
            "io::Error"
        );
        // A chosen errtype survives the box, and coming back from it.
        let e = HandlerError::from(SaveError(std::io::Error::other("disk full")))
            .with_errtype("StorageFull");
        let boxed: BoxError = e.into_boxed();
        assert_eq!(boxed.to_string(), "saving failed");
        assert_eq!(
            boxed.source().map(ToString::to_string).as_deref(),
            Some("disk full")
        );
        assert_eq!(
            errtype(std::any::type_name::<BoxError>(), &*boxed),
            "StorageFull"
        );
        let back = HandlerError::from_boxed(boxed);
        assert_eq!(back.errtype(), "StorageFull");
        assert_eq!(
            back.into_outcome(),
            Outcome::Failed {
                errtype: "StorageFull".into(),
                message: "saving failed".into(),
                backtrace: vec!["caused by: disk full".into()],
            }
        );
        // A message stays a message.
        let boxed: Box<dyn StdError> = HandlerError::msg("no user").into_boxed();
        assert_eq!(boxed.to_string(), "no user");
        assert_eq!(
            errtype(std::any::type_name::<Box<dyn StdError>>(), &*boxed),
            "StringError"
        );
    }

    #[test]
    fn a_looping_source_chain_is_bounded() {
        #[derive(Debug)]
        struct Loop;
        impl fmt::Display for Loop {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("loop")
            }
        }
        impl StdError for Loop {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(self)
            }
        }
        let e = HandlerError::from(Loop);
        assert!(format!("{e:#}").len() < 1000);
        let Outcome::Failed { backtrace, .. } = e.into_outcome() else {
            panic!("a failure")
        };
        assert!(backtrace.len() <= 64);
    }
}

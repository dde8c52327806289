//! What every runtime adapter's public API shares and that is not protocol: the [`Error`] users
//! see, the resolution of client and worker settings (URL from the environment, password and
//! username from the URL, timeouts into the connection options), the error type of handlers
//! ([`HandlerError`]), the outcome of a handler's error or panic, and a few helpers for logs,
//! heartbeats and socket reads ([`ReadBuffer`]).
//!
//! It lives in `faktory-proto` (and not in the async adapter crate) because `faktory-blocking`
//! needs it too and depends on no async crate; nothing here does I/O. `faktory-tokio`,
//! `faktory-async-std` and `faktory-blocking` re-export [`Error`], so all of them have the same
//! error type.

use std::time::Duration;

use crate::ServerError;
use crate::client::{ClientOptions, ConnectionError, Reply};
use crate::command::EncodeError;
use crate::config::{ConfigError, ServerUrl};
use crate::handshake::Password;
use crate::job::JobError;
use crate::request::ReplyError;
use crate::worker::Outcome;

mod context;
mod handler_error;

pub use context::{ClientMiddleware, JobMeta, JobRun, MissingState, PushPrep, StateMap};
pub use handler_error::HandlerError;

/// Everything that can go wrong talking to Faktory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `FAKTORY_URL` / `FAKTORY_PROVIDER` or a URL given in code is invalid (the message names
    /// the offending part and its value).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No usable connection to the server: the socket could not be opened
    /// ([`ConnectionError::Connect`]: resolving, TCP, TLS), the handshake failed (refused password,
    /// not a Faktory server), the connection broke, or a reply did not come in time.
    #[error("{server}: {source}")]
    Connection {
        /// The server (`host:port`, or how a user-supplied stream is named).
        server: String,
        /// What failed.
        source: ConnectionError,
    },
    /// The connection broke while this request was in flight: the server may or may not have
    /// executed it. It is never re-sent silently (a PUSH could be doubled).
    #[error(
        "{server}: connection lost while {command} was in flight, its outcome is unknown: {source}"
    )]
    OutcomeUnknown {
        /// The server.
        server: String,
        /// The verb of the request.
        command: &'static str,
        /// Why the connection broke.
        source: ConnectionError,
    },
    /// The server answered with an error (`-ERR …`, `-NOTUNIQUE …`).
    #[error(transparent)]
    Server(ServerError),
    /// The server's reply did not fit the request.
    #[error(transparent)]
    Reply(ReplyError),
    /// The command cannot be encoded (bad queue name, …).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The job is invalid.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The worker configuration is invalid.
    #[error("invalid worker configuration: {0}")]
    WorkerConfig(crate::worker::ConfigError),
    /// The API was used in a way that cannot work (the message says how).
    #[error("{0}")]
    Usage(&'static str),
    /// The client was closed with `close()`.
    #[error("client is closed")]
    Closed,
    /// A client middleware refused to push the job (the message says why).
    #[error("push refused: {0}")]
    PushRefused(String),
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Server(s) => Error::Server(s),
            other => Error::Reply(other),
        }
    }
}

impl Error {
    /// The server's error, when the server answered with one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// What failed on the connection, for [`Error::Connection`] and [`Error::OutcomeUnknown`].
    pub fn connection_error(&self) -> Option<&ConnectionError> {
        match self {
            Error::Connection { source, .. } | Error::OutcomeUnknown { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether a reply, a connection or a handshake did not come in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.connection_error(), Some(ConnectionError::Timeout(_)))
    }

    /// Whether trying again later may succeed: the connection failed in a transient way
    /// ([`ConnectionError::is_transient`]). A server's error reply, a bad job or a bad configuration
    /// are not transient; neither is [`Error::OutcomeUnknown`], whose request may have run.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connection { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

/// What a client call gets back: the server's reply (or its error reply), or why there was none.
pub type CallResult = Result<Result<Reply, ServerError>, Error>;

/// The connection settings of a `Client`, before they are resolved against the environment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The server; `None`: `FAKTORY_PROVIDER` / `FAKTORY_URL` / `tcp://localhost:7419`.
    pub url: Option<ServerUrl>,
    /// Options of each connection (password, wid for consumers, timeouts, frame limit).
    pub options: ClientOptions,
    /// TCP, TLS and handshake timeout.
    pub connect_timeout: Duration,
    /// How long a request may wait for its reply (and, when reconnecting, for a connection).
    pub request_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: None,
            options: ClientOptions::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Settings resolved into what a connection needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolvedClient {
    /// Where to connect (and whether with TLS).
    pub url: ServerUrl,
    /// The connection options, with the URL's password and username and the connect timeout as
    /// the handshake timeout.
    pub options: ClientOptions,
    /// TCP, TLS and handshake timeout.
    pub connect_timeout: Duration,
    /// Request timeout (also the reconnect budget of a call).
    pub request_timeout: Duration,
}

impl ClientSettings {
    /// Sets the server URL (`tcp://[:password@]host:port` or `tcp+tls://…`).
    pub fn set_url(&mut self, url: &str) -> Result<(), Error> {
        self.url = Some(ServerUrl::parse(url)?);
        Ok(())
    }

    /// Sets the password (it wins over one in the URL).
    pub fn set_password(&mut self, password: impl Into<String>) {
        self.options.password = Some(Password::new(password));
    }

    /// Sets the request timeout (reply deadline and reconnect budget).
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
        self.options.reply_timeout = timeout;
    }

    /// Resolves the URL (from `env` when none was set) and merges it into the options.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedClient, Error> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => ServerUrl::from_env_with(env)?,
        };
        let mut options = self.options.clone();
        if options.password.is_none() {
            options.password = url.password.clone();
        }
        if options.username.is_none() {
            options.username = url.username.clone();
        }
        options.handshake_timeout = self.connect_timeout;
        Ok(ResolvedClient {
            url,
            options,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        })
    }
}

impl ResolvedClient {
    /// The session configuration for these settings: the server named by its `host:port`, the
    /// connection options, the timeouts; the backoff's jitter from `seed`.
    pub fn session_config(&self, seed: u64) -> crate::session::SessionConfig {
        let mut config =
            crate::session::SessionConfig::new(self.url.authority(), self.options.clone());
        config.connect_timeout = self.connect_timeout;
        config.request_timeout = self.request_timeout;
        config.seed = seed;
        config
    }
}

/// The server settings of a `Worker`, before they are resolved against the environment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSettings {
    /// The engine's configuration.
    pub config: crate::worker::WorkerConfig,
    /// The server; `None`: the environment.
    pub url: Option<ServerUrl>,
    /// The password (wins over one in the URL).
    pub password: Option<Password>,
    /// TCP, TLS and handshake timeout per connection.
    pub connect_timeout: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            config: crate::worker::WorkerConfig::default(),
            url: None,
            password: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl WorkerSettings {
    /// Resolves the URL (from `env` when none was set), puts the password, username and handshake
    /// timeout into the engine's connection options, and returns the URL and the configuration.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(ServerUrl, crate::worker::WorkerConfig), Error> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => ServerUrl::from_env_with(env)?,
        };
        let mut config = self.config.clone();
        config.client.password = self.password.clone().or_else(|| url.password.clone());
        if config.client.username.is_none() {
            config.client.username = url.username.clone();
        }
        config.client.handshake_timeout = self.connect_timeout;
        Ok((url, config))
    }
}

/// Wire bytes made fit for a `trace`-level log: lossy UTF-8, line breaks escaped, and the value of a
/// `pwdhash` field replaced by `<redacted>`.
pub fn wire_for_log(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest: &str = &text;
    const KEY: &str = "\"pwdhash\":\"";
    while let Some(pos) = rest.find(KEY) {
        let (head, tail) = rest.split_at(pos + KEY.len());
        out.push_str(head);
        out.push_str("<redacted>");
        rest = tail
            .find('"')
            .map_or("", |end| tail.get(end..).unwrap_or(""));
    }
    out.push_str(rest);
    out.replace('\r', "\\r").replace('\n', "\\n")
}

/// The errtype of FAILs for jobs whose jobtype has no registered handler.
pub const UNKNOWN_JOBTYPE_ERRTYPE: &str = "UnknownJobtype";

/// The outcome of a job no handler is registered for: a FAIL (so it is retried, perhaps by a
/// worker that knows it, instead of sitting reserved until its reservation expires).
pub fn unknown_jobtype_outcome(jobtype: &str) -> Outcome {
    Outcome::failed(
        UNKNOWN_JOBTYPE_ERRTYPE,
        format!("no handler registered for jobtype {jobtype:?}"),
    )
}

/// The outcome of a handler that returned `error` of type `type_name` (from
/// `std::any::type_name::<E>()`): FAIL with [`errtype`] as errtype, the error's message, and its
/// `source()` chain as backtrace lines (`caused by: …`).
pub fn failed_outcome(type_name: &str, error: &(dyn std::error::Error + 'static)) -> Outcome {
    failure_with_errtype(errtype(type_name, error), error)
}

/// The most `caused by:` lines taken from a source chain (the engine sends at most
/// [`MAX_BACKTRACE_LINES`](crate::worker::MAX_BACKTRACE_LINES) anyway; this bounds a chain that
/// loops).
const MAX_CAUSES: usize = 64;

/// FAIL with `errtype`, the error's message and its `source()` chain as `caused by: …` lines.
fn failure_with_errtype(errtype: String, error: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut backtrace = Vec::new();
    let mut source = error.source();
    while let Some(s) = source {
        if backtrace.len() >= MAX_CAUSES {
            break;
        }
        backtrace.push(format!("caused by: {s}"));
        source = s.source();
    }
    Outcome::Failed {
        errtype,
        message: error.to_string(),
        backtrace,
    }
}

/// The errtype of a boxed string error (`Box<dyn Error>::from("…")`) and of
/// [`HandlerError::msg`]: an error that is only a message.
pub const STRING_ERRTYPE: &str = "StringError";

/// The errtype of a FAIL for a handler error of type `type_name` (from
/// `std::any::type_name::<E>()`), the value the Web UI groups retries by.
///
/// - A concrete type known at registration gives its short name: `app::store::SaveError<T>` →
///   `SaveError`; a type named just `Error` keeps its module, so errors of different crates do
///   not look alike: `std::io::Error` → `io::Error`, `serde_json::Error` → `serde_json::Error`.
/// - A boxed error (`Box<dyn Error>`, the usual `BoxError`) hides its type: the box is looked into.
///   Well-known types are recognised by downcasting (`io::Error`, `serde_json::Error`, this crate's
///   `JobError` and `Error`, std's parse and UTF-8 errors); any other type by the name its derived
///   `Debug` output starts with (`MyError { .. }` → `MyError`; for an enum, its variant); a boxed
///   string (`"…".into()`) gives `StringError`. Never `Box`.
pub fn errtype(type_name: &str, error: &(dyn std::error::Error + 'static)) -> String {
    if is_erased(type_name) {
        boxed_errtype(error)
    } else {
        short_type_name(type_name)
    }
}

/// Whether `type_name` hides the concrete error type.
fn is_erased(type_name: &str) -> bool {
    type_name.starts_with("alloc::boxed::Box<") || type_name.contains("dyn ")
}

/// The errtype of an error whose static type says nothing (see [`errtype`]).
fn boxed_errtype(error: &(dyn std::error::Error + 'static)) -> String {
    // A `HandlerError` with a chosen errtype, boxed.
    if let Some(chosen) = error.downcast_ref::<handler_error::WithErrtype>() {
        return chosen.errtype.clone();
    }
    macro_rules! known {
        ($($ty:ty),* $(,)?) => {
            $(
                if error.is::<$ty>() {
                    return short_type_name(std::any::type_name::<$ty>());
                }
            )*
        };
    }
    known!(
        std::io::Error,
        serde_json::Error,
        crate::job::JobError,
        Error,
        std::fmt::Error,
        std::num::ParseIntError,
        std::num::ParseFloatError,
        std::num::TryFromIntError,
        std::str::ParseBoolError,
        std::str::Utf8Error,
        std::string::FromUtf8Error,
        std::net::AddrParseError,
        std::time::SystemTimeError,
    );
    let debug = format!("{error:?}");
    if debug.starts_with('"') {
        return STRING_ERRTYPE.to_owned();
    }
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let name = name.trim_end_matches(':');
    let rest = debug.get(name.len()..).unwrap_or("");
    let looks_like_a_type = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && (rest.is_empty() || rest.starts_with([' ', '(', '{']));
    if looks_like_a_type {
        short_type_name(name)
    } else {
        "Error".to_owned()
    }
}

/// `my_crate::errors::MyError<T>` → `MyError`; `std::io::error::Error` → `io::Error`.
fn short_type_name(full: &str) -> String {
    let head = full.split('<').next().unwrap_or(full);
    let mut segments = head.rsplit("::").filter(|s| !s.is_empty());
    let Some(name) = segments.next() else {
        return full.to_owned();
    };
    if name != "Error" {
        return name.to_owned();
    }
    // `Error` alone says nothing: prefix the nearest module that is not itself called `error`.
    match segments.find(|m| *m != "error") {
        Some(module) => format!("{module}::{name}"),
        None => name.to_owned(),
    }
}

/// The outcome of a handler's run as caught by `catch_unwind`: ACK for `Ok(Ok(()))`, its error's
/// FAIL ([`HandlerError::into_outcome`]), or the panic's ([`panicked_outcome`]).
pub fn run_outcome(ran: std::thread::Result<Result<(), HandlerError>>) -> Outcome {
    match ran {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => e.into_outcome(),
        Err(payload) => panicked_outcome(&*payload),
    }
}

/// The outcome of a handler that panicked with `payload`.
pub fn panicked_outcome(payload: &(dyn std::any::Any + Send)) -> Outcome {
    Outcome::Panicked {
        message: panic_message(payload),
    }
}

/// The message of a caught panic payload (`&str` or `String`; anything else is described).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked with a non-string payload".to_owned()
    }
}

/// The buffer an adapter reads a socket into. It starts at [`ReadBuffer::START`] bytes and doubles,
/// up to [`ReadBuffer::MAX`], each time a read fills it: a buffer is zeroed when allocated, so all
/// of it is resident, and a connection whose frames are small (an ACK's `+OK`, a typical job)
/// never needs more; a frame larger than the buffer only takes more than one read.
///
/// ```
/// use faktory_proto::api::ReadBuffer;
///
/// let mut buf = ReadBuffer::new();
/// assert_eq!(buf.space().len(), ReadBuffer::START);
/// buf.read(100); // a read of 100 bytes into `space()`: no growth
/// assert_eq!(buf.space().len(), ReadBuffer::START);
/// buf.read(ReadBuffer::START); // a read that filled it
/// assert_eq!(buf.space().len(), 2 * ReadBuffer::START);
/// ```
#[derive(Debug)]
pub struct ReadBuffer {
    buf: Box<[u8]>,
}

impl ReadBuffer {
    /// The first size, in bytes.
    pub const START: usize = 8 * 1024;
    /// The most the buffer grows to, in bytes.
    pub const MAX: usize = 64 * 1024;

    /// A buffer of [`ReadBuffer::START`] bytes.
    pub fn new() -> Self {
        ReadBuffer {
            buf: vec![0; Self::START].into_boxed_slice(),
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// After the bytes of a read of `n` bytes into [`ReadBuffer::space`] were used: a read that
    /// filled the buffer makes it grow (its contents are not kept).
    pub fn read(&mut self, n: usize) {
        let len = self.buf.len();
        if n >= len && len < Self::MAX {
            self.buf = vec![0; (len * 2).min(Self::MAX)].into_boxed_slice();
        }
    }
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer::new()
    }
}

/// Resident memory in KiB from the text of `/proc/self/status` (its `VmRSS:` line), for BEAT's
/// `rss_kb`. The adapters read the file (Linux only) and pass the text here.
pub fn rss_kb_from_proc_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some("mB") => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_grows_only_when_a_read_fills_it_and_stops_at_its_cap() {
        let mut buf = ReadBuffer::new();
        let mut sizes = vec![buf.space().len()];
        for _ in 0..6 {
            let len = buf.space().len();
            buf.read(len - 1);
            assert_eq!(buf.space().len(), len, "not full: no growth");
            buf.read(len);
            sizes.push(buf.space().len());
        }
        assert_eq!(sizes, [8192, 16384, 32768, 65536, 65536, 65536, 65536]);
        assert!(buf.space().iter().all(|&b| b == 0));
    }

    #[test]
    fn client_settings_take_password_and_username_from_the_url() {
        let mut s = ClientSettings::default();
        s.set_url("tcp://user:pa%40ss@example.com:7500").unwrap();
        s.set_request_timeout(Duration::from_secs(3));
        let r = s.resolve(|_| None).unwrap();
        assert_eq!(r.url.port, 7500);
        assert_eq!(
            r.options.password.as_ref().map(Password::expose),
            Some("pa@ss")
        );
        assert_eq!(r.options.username.as_deref(), Some("user"));
        assert_eq!(r.options.reply_timeout, Duration::from_secs(3));
        s.set_password("explicit");
        let r = s.resolve(|_| None).unwrap();
        assert_eq!(
            r.options.password.as_ref().map(Password::expose),
            Some("explicit")
        );
    }

    #[test]
    fn settings_fall_back_to_the_environment() {
        let s = ClientSettings::default();
        let r = s
            .resolve(|k| (k == "FAKTORY_URL").then(|| "tcp+tls://h:1".to_owned()))
            .unwrap();
        assert!(r.url.tls);
        let w = WorkerSettings::default();
        let (url, config) = w.resolve(|_| None).unwrap();
        assert_eq!(url.port, 7419);
        assert_eq!(config.client.handshake_timeout, Duration::from_secs(10));
        let timeout = Error::Connection {
            server: "h:1".into(),
            source: ConnectionError::Timeout("the reply to INFO"),
        };
        assert!(timeout.is_timeout() && timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "h:1: timed out waiting for the reply to INFO"
        );
        assert!(!Error::Usage("x").is_transient());
    }
    #[test]
    fn error_outcomes_carry_type_message_and_chain() {
        let inner = std::io::Error::other("disk full");
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("saving failed")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(inner);
        let o = failed_outcome("app::store::Wrap<u8>", &e);
        assert_eq!(
            o,
            Outcome::Failed {
                errtype: "Wrap".into(),
                message: "saving failed".into(),
                backtrace: vec!["caused by: disk full".into()],
            }
        );
        assert_eq!(short_type_name("Plain"), "Plain");
    }

    #[test]
    fn errtypes_name_the_error_never_the_box() {
        use std::error::Error as StdError;
        type BoxError = Box<dyn StdError + Send + Sync>;
        let boxed = std::any::type_name::<BoxError>();
        // Concrete types known at registration.
        let io = std::io::Error::other("disk full");
        assert_eq!(
            errtype(std::any::type_name::<std::io::Error>(), &io),
            "io::Error"
        );
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert_eq!(
            errtype(std::any::type_name::<serde_json::Error>(), &json),
            "serde_json::Error"
        );
        assert_eq!(short_type_name("app::errors::SaveError<u8>"), "SaveError");
        // Boxed: looked into.
        let e: BoxError = std::io::Error::other("disk full").into();
        assert_eq!(errtype(boxed, &*e), "io::Error");
        let job = crate::job::Job::new("X", vec![serde_json::json!("a")]);
        let e: BoxError = job.args_as::<(u32,)>().unwrap_err().into();
        assert_eq!(errtype(boxed, &*e), "JobError");
        let e: BoxError = "no such user".into();
        assert_eq!(errtype(boxed, &*e), "StringError");
        let e: BoxError = format!("no user {}", 7).into();
        assert_eq!(errtype(boxed, &*e), "StringError");
        #[derive(Debug)]
        struct PaymentDeclined {
            #[allow(dead_code)]
            code: u32,
        }
        impl std::fmt::Display for PaymentDeclined {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("declined")
            }
        }
        impl StdError for PaymentDeclined {}
        let e: BoxError = PaymentDeclined { code: 51 }.into();
        assert_eq!(errtype(boxed, &*e), "PaymentDeclined");
        #[derive(Debug)]
        enum Upstream {
            Unavailable,
        }
        impl std::fmt::Display for Upstream {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("upstream unavailable")
            }
        }
        impl StdError for Upstream {}
        let e: BoxError = Upstream::Unavailable.into();
        assert_eq!(errtype(boxed, &*e), "Unavailable");
        let o = failed_outcome(boxed, &*e);
        assert!(matches!(o, Outcome::Failed { ref errtype, ref message, .. }
            if errtype == "Unavailable" && message == "upstream unavailable"));
    }

    #[test]
    fn panic_messages() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 1)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 1");
        let p = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "static");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(panic_message(&*p).contains("non-string"));
    }

    #[test]
    fn reads_rss_from_proc_status() {
        let status = "Name:\tcargo\nVmPeak:\t  10 kB\nVmRSS:\t   54176 kB\nThreads:\t1\n";
        assert_eq!(rss_kb_from_proc_status(status), Some(54176));
        assert_eq!(rss_kb_from_proc_status("Name: x\n"), None);
        assert_eq!(rss_kb_from_proc_status("VmRSS: lots kB\n"), None);
    }

    #[test]
    fn logs_never_show_the_password_hash() {
        let line = b"HELLO {\"v\":2,\"pwdhash\":\"9ad13ef3f4f4\",\"wid\":\"w\"}\r\n";
        let logged = wire_for_log(line);
        assert!(!logged.contains("9ad13ef3f4f4"), "{logged}");
        assert!(logged.contains("<redacted>"));
        assert!(logged.ends_with("\\r\\n"), "{logged}");
        assert!(ConnectionError::Eof.is_transient());
        assert!(!ConnectionError::PasswordRequired.is_transient());
    }
}

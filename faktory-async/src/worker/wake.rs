//! Which sockets woke the driver: one waker per socket, so a turn reads only the sockets that
//! have something to say instead of polling every connection.
//!
//! Each socket is polled with a waker of its own ([`ReadySet::waker`]). Waking it records the
//! socket's id and wakes the driver's task; the driver takes the recorded ids at the start of a
//! turn ([`ReadySet::take`]). A socket that gave data is polled again on the next turn whether or
//! not it woke (the driver keeps that flag itself), until it answers `Pending`, which registers
//! its waker again: so no readiness is ever missed, and an idle connection costs nothing per turn.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

use faktory_proto::worker::ConnId;

/// The ids woken since the last [`ReadySet::take`], and the driver task's waker.
#[derive(Default)]
pub(crate) struct ReadySet {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    woken: Vec<ConnId>,
    task: Option<Waker>,
}

impl ReadySet {
    /// The waker to poll socket `id` with.
    pub(crate) fn waker(self: &Arc<Self>, id: ConnId) -> Waker {
        Waker::from(Arc::new(SocketWaker {
            id,
            set: Arc::clone(self),
        }))
    }

    /// Moves the ids woken so far into `into` (cleared first), and remembers `task` as the waker
    /// to wake for the next one.
    pub(crate) fn take(&self, task: &Waker, into: &mut Vec<ConnId>) {
        into.clear();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut inner.woken, into);
        if !inner.task.as_ref().is_some_and(|w| w.will_wake(task)) {
            inner.task = Some(task.clone());
        }
    }
}

struct SocketWaker {
    id: ConnId,
    set: Arc<ReadySet>,
}

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = {
            let mut inner = self
                .set
                .inner
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !inner.woken.contains(&self.id) {
                inner.woken.push(self.id);
            }
            inner.task.clone()
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_socket_wake_records_its_id_once_and_wakes_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let set = Arc::new(ReadySet::default());
        let mut got = Vec::new();
        set.take(&task, &mut got);
        assert!(got.is_empty());
        let (a, b) = (set.waker(ConnId(1)), set.waker(ConnId(2)));
        a.wake_by_ref();
        a.wake_by_ref();
        b.wake();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            3,
            "every wake wakes the task"
        );
        set.take(&task, &mut got);
        assert_eq!(
            got,
            vec![ConnId(1), ConnId(2)],
            "each id once, in wake order"
        );
        set.take(&task, &mut got);
        assert!(got.is_empty(), "taken ids are gone");
    }
}

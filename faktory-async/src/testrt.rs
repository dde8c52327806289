//! A runtime for the unit tests, as plain as possible: a thread per task (each blocking on its
//! future), a thread per blocking closure, async-io's timers and sockets; it counts timer re-arms
//! and can make TCP connects hang.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use crate::Runtime;

#[derive(Clone, Debug, Default)]
pub(crate) struct TestRt {
    pub(crate) resets: Arc<AtomicUsize>,
    pub(crate) hang_connects: Arc<AtomicBool>,
}

impl Runtime for TestRt {
    type Tcp = async_net::TcpStream;
    type Sleep = async_io::Timer;

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        std::thread::spawn(move || futures_lite::future::block_on(task));
    }

    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let (tx, rx) = futures_channel::oneshot::channel();
        std::thread::spawn(move || tx.send(f()));
        async move { rx.await.ok() }
    }

    fn sleep_until(&self, deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn reset_sleep(&self, mut timer: Pin<&mut async_io::Timer>, at: Instant) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        timer.set_at(at);
    }

    #[cfg(unix)]
    fn tcp_socket(tcp: &async_net::TcpStream) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(tcp.as_fd())
    }

    #[allow(clippy::manual_async_fn)]
    fn connect_tcp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<async_net::TcpStream>> + Send + 'static {
        let hang = self.hang_connects.load(Ordering::SeqCst);
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            let stream = async_net::TcpStream::connect(addr).await?;
            crate::configure_tcp(&stream)?;
            Ok(stream)
        }
    }
}

//! A runtime for the unit tests: async-io's reactor and timers, async-global-executor's threads,
//! the `blocking` pool; it counts timer re-arms and can make TCP connects hang.

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
        async_global_executor::spawn(task).detach();
    }

    fn spawn_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let task = blocking::unblock(f);
        async move { Some(task.await) }
    }

    fn sleep_until(&self, deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    fn reset_sleep(&self, mut sleep: Pin<&mut async_io::Timer>, deadline: Instant) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        sleep.set_at(deadline);
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

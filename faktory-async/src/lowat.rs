//! A socket's receive low-water mark (`SO_RCVLOWAT`): how many bytes must wait before the kernel
//! reports the socket readable. The worker's driver sets it to what the engine says the server
//! still owes ([`faktory_proto::worker::Worker::read_threshold`]), so that the `+OK` of an ACK
//! does not wake it when the job of the FETCH sent with it is bound to follow: one wake-up and
//! one read per job instead of two (see `faktory_proto::worker`, "Reading less often").
//!
//! Linux (and Android) only, where it is safe to rely on: a non-blocking read still returns
//! whatever is there, epoll reports the socket readable once the mark is reached (and at EOF or
//! on an error regardless), and lowering the mark wakes a reader whose bytes now suffice.
//! Elsewhere nothing is set.
//!
//! This is the crate's one `unsafe` block: neither std nor socket2 sets this option, so it is one
//! `setsockopt(2)` call through libc, on a descriptor this module owns (a duplicate of the
//! socket's, closed with it). Measured: against the test server at the real server's pace, it
//! saves 30% of the worker's context switches and 14% of its CPU per job (benches README).

use std::io;

/// A handle on a TCP socket to set its receive low-water mark, kept beside the (boxed) stream;
/// plain TCP only (under TLS, bytes on the socket are no measure of the replies read). It holds
/// a duplicate of the socket's descriptor, so it must not outlive the stream for long: the
/// socket is closed when both are.
#[derive(Debug)]
pub(crate) struct ReadThreshold {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::os::fd::OwnedFd,
    /// What the socket has now (the kernel's default is 1).
    current: usize,
}

impl ReadThreshold {
    /// A handle on `tcp`'s socket, when the runtime gives one and the platform has the option.
    pub(crate) fn of<R: crate::Runtime>(tcp: &R::Tcp) -> Option<ReadThreshold> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let fd = R::tcp_socket(tcp)?.try_clone_to_owned().ok()?;
            Some(ReadThreshold { fd, current: 1 })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = tcp;
            None
        }
    }

    /// Sets the low-water mark to `bytes` (at least 1) unless it is already that.
    pub(crate) fn set(&mut self, bytes: usize) -> io::Result<()> {
        let bytes = bytes.max(1);
        if bytes == self.current {
            return Ok(());
        }
        sys::set_rcvlowat(self, bytes)?;
        self.current = bytes;
        Ok(())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    #![allow(unsafe_code)]

    use std::io;
    use std::os::fd::AsRawFd;

    pub(super) fn set_rcvlowat(t: &super::ReadThreshold, bytes: usize) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
            .map_err(|_| io::Error::other("socklen_t overflow"))?;
        // SAFETY: `t.fd` is an open descriptor this handle owns; the option value points to a
        // live `c_int` on the stack and `len` is its size, as setsockopt(2) requires for
        // SO_RCVLOWAT. The call reads the value and writes nothing back.
        let rc = unsafe {
            libc::setsockopt(
                t.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast::<libc::c_void>(),
                len,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sys {
    use std::io;

    pub(super) fn set_rcvlowat(_t: &super::ReadThreshold, _bytes: usize) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use crate::testrt::TestRt;
    use futures_lite::future;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// Whether `socket` becomes readable (as epoll sees it) within `wait`.
    fn readable_within(socket: &async_io::Async<std::net::TcpStream>, wait: Duration) -> bool {
        future::block_on(future::or(
            async { socket.readable().await.is_ok() },
            async {
                async_io::Timer::after(wait).await;
                false
            },
        ))
    }

    #[test]
    fn below_the_mark_a_socket_is_not_readable_and_lowering_it_makes_it_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = future::block_on(<TestRt as crate::Runtime>::connect_tcp(
            &TestRt::default(),
            addr,
        ))
        .unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut threshold = ReadThreshold::of::<TestRt>(&tcp).expect("a Linux TCP socket");
        // The same socket through a second descriptor, watched by the reactor (epoll).
        let watched = {
            use std::os::fd::AsFd;
            let fd = tcp.as_fd().try_clone_to_owned().unwrap();
            async_io::Async::new(std::net::TcpStream::from(fd)).unwrap()
        };

        threshold.set(6).unwrap();
        server.write_all(b"+OK\r\n").unwrap();
        assert!(
            !readable_within(&watched, Duration::from_millis(300)),
            "with the mark at 6, 5 waiting bytes do not make the socket readable"
        );
        server.write_all(b"$-1\r\n").unwrap();
        assert!(readable_within(&watched, Duration::from_secs(10)));
        let mut buf = [0u8; 64];
        let n = watched.get_ref().read(&mut buf).unwrap();
        assert_eq!(
            buf.get(..n),
            Some(&b"+OK\r\n$-1\r\n"[..]),
            "both replies in one read"
        );

        server.write_all(b"+").unwrap();
        assert!(!readable_within(&watched, Duration::from_millis(300)));
        threshold.set(1).unwrap();
        assert!(
            readable_within(&watched, Duration::from_secs(10)),
            "lowering the mark wakes the reader of what now suffices"
        );
        assert_eq!(watched.get_ref().read(&mut buf).unwrap(), 1);
    }
}

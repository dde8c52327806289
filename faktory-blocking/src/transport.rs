//! Sockets: TCP with TCP_NODELAY, keepalive and timeouts, TLS with rustls (configured by
//! `faktory_proto::tls::TlsConfig`), or a stream the user supplies; and their split into a read half
//! (for a reader thread) and a write half.
//!
//! Opening a socket reports what failed as a `ConnectFailure` for the protocol machines: which
//! step (resolving, TCP, TLS), why, and whether another attempt can help (a certificate that does
//! not verify, or a host that is not a TLS server name, cannot).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faktory_proto::api::ReadBuffer;
use faktory_proto::client::{ConnectFailure, ConnectPhase};

use crate::error::Error;

/// Any duplex byte stream the client can run over (a `TcpStream`, a TLS stream, an in-memory pipe).
///
/// A `std::net::TcpStream` given to [`ClientBuilder::connect_with_stream`] is read by its own
/// thread like the client's own sockets; any other stream cannot be read and written from two
/// threads at once, so it is read only while replies are due (see
/// [`ClientBuilder::connect_with_stream`]).
///
/// [`ClientBuilder::connect_with_stream`]: crate::ClientBuilder::connect_with_stream
pub trait Stream: Read + Write + Send + 'static {}
impl<T: Read + Write + Send + 'static> Stream for T {}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// TCP_NODELAY (Faktory is request/reply: Nagle would stall every pipelined write) and TCP
/// keepalive (a server that vanished without a FIN or RST, behind a NAT or a firewall that dropped
/// the flow, is noticed by the kernel even on an idle connection; the reply timeouts cover busy
/// ones). `std::net` has no setter for keepalive: `socket2` sets it on the same socket. A socket
/// that refuses keepalive is still used (the reply timeouts remain).
pub(crate) fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    if let Err(e) = socket2::SockRef::from(stream).set_keepalive(true) {
        tracing::debug!(error = %e, "cannot enable TCP keepalive");
    }
    Ok(())
}

/// Opens a TCP connection (see [`tune`]), trying each resolved address until `deadline`. Name
/// resolution itself cannot be bounded with `std` (it uses the system resolver).
pub(crate) fn connect_tcp(
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<TcpStream, ConnectFailure> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| ConnectFailure::transient(ConnectPhase::Resolve, format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(ConnectFailure::transient(
            ConnectPhase::Resolve,
            format!("{host} resolved to no address"),
        ));
    }
    let mut last = None;
    for &addr in &addrs {
        let Some(left) = remaining(deadline) else {
            break;
        };
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                return match tune(&stream) {
                    Ok(()) => Ok(stream),
                    Err(e) => Err(ConnectFailure::transient(
                        ConnectPhase::Tcp,
                        format!("{addr}: setting TCP_NODELAY: {e}"),
                    )),
                };
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    // The resolved address is named only when the host has several (the error already names
    // `host:port`).
    let several = addrs.len() > 1;
    Err(match last {
        Some((addr, e)) if !is_timeout(&e) => ConnectFailure::transient(
            ConnectPhase::Tcp,
            if several {
                format!("{addr}: {e}")
            } else {
                e.to_string()
            },
        ),
        _ if several => {
            let tried: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            ConnectFailure::transient(
                ConnectPhase::Tcp,
                format!("timed out (tried {})", tried.join(", ")),
            )
        }
        _ => ConnectFailure::transient(ConnectPhase::Tcp, "timed out"),
    })
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls_config: faktory_proto::tls::TlsConfig,
    pub(crate) connect_timeout: Duration,
}

impl Target {
    pub(crate) fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// TCP (and TLS) connection, bounded by `deadline`.
    pub(crate) fn open(&self, deadline: Instant) -> Result<Opened, ConnectFailure> {
        let tcp = connect_tcp(&self.host, self.port, deadline)?;
        if !self.tls {
            return Ok(Opened::Tcp(tcp));
        }
        #[cfg(feature = "tls")]
        {
            self.tls_handshake(tcp, deadline)
        }
        #[cfg(not(feature = "tls"))]
        {
            drop(tcp);
            Err(ConnectFailure::permanent(
                ConnectPhase::Tls,
                "tcp+tls:// needs the `tls` feature of faktory-blocking",
            ))
        }
    }

    #[cfg(feature = "tls")]
    fn tls_handshake(
        &self,
        mut tcp: TcpStream,
        deadline: Instant,
    ) -> Result<Opened, ConnectFailure> {
        let permanent = |reason: String| ConnectFailure::permanent(ConnectPhase::Tls, reason);
        let config = self
            .tls_config
            .client_config()
            .map_err(|e| permanent(e.to_string()))?;
        let name =
            faktory_proto::tls::server_name(&self.host).map_err(|e| permanent(e.to_string()))?;
        let mut conn =
            rustls::ClientConnection::new(config, name).map_err(|e| permanent(e.to_string()))?;
        let timed_out = || ConnectFailure::transient(ConnectPhase::Tls, "handshake timed out");
        while conn.is_handshaking() {
            let Some(left) = remaining(deadline) else {
                return Err(timed_out());
            };
            let set = tcp
                .set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)));
            if let Err(e) = set {
                return Err(ConnectFailure::transient(ConnectPhase::Tls, e.to_string()));
            }
            match conn.complete_io(&mut tcp) {
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(timed_out()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(tls_failure(&e)),
            }
        }
        Ok(Opened::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// A failed TLS handshake, classified once in `faktory_proto::tls` (certificate problems, what the
/// server refuses of ours and a plain-text server are permanent).
#[cfg(feature = "tls")]
fn tls_failure(e: &io::Error) -> ConnectFailure {
    faktory_proto::tls::failure_of(e.get_ref(), || e.to_string())
}

/// A connected stream, before it is split.
pub(crate) enum Opened {
    /// A TCP socket.
    Tcp(TcpStream),
    /// A TLS session over TCP, handshaken.
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// A stream given by the user: it cannot be split, nor given timeouts.
    User(Box<dyn Stream>),
}

impl Opened {
    /// Wraps a user's stream; a `TcpStream` is recognised and gets the full-duplex treatment.
    pub(crate) fn from_user<S: Stream>(stream: S) -> Result<Opened, Error> {
        let mut slot = Some(stream);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(tcp) = any
            .downcast_mut::<Option<TcpStream>>()
            .and_then(Option::take)
        {
            if let Err(e) = tune(&tcp) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on the user's stream");
            }
            return Ok(Opened::Tcp(tcp));
        }
        match slot {
            Some(s) => Ok(Opened::User(Box::new(s))),
            None => Err(Error::Usage("the stream was taken")),
        }
    }

    /// Bounds the next reads (no effect on a user's stream).
    pub(crate) fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Opened::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(feature = "tls")]
            Opened::Tls(s) => s.sock.set_read_timeout(timeout),
            Opened::User(_) => Ok(()),
        }
    }

    /// Bounds every write (no effect on a user's stream).
    pub(crate) fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Opened::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(feature = "tls")]
            Opened::Tls(s) => s.sock.set_write_timeout(timeout),
            Opened::User(_) => Ok(()),
        }
    }

    /// Splits into a read half and a write half that work from two threads at once; a user's
    /// stream cannot be split and comes back as it is.
    pub(crate) fn split(self) -> Result<(Reader, Writer), Opened> {
        match self {
            Opened::Tcp(tcp) => {
                let reader = match tcp.try_clone() {
                    Ok(r) => r,
                    Err(_) => return Err(Opened::Tcp(tcp)),
                };
                let _ = reader.set_read_timeout(None);
                Ok((Reader::Tcp(reader), Writer::Tcp(tcp)))
            }
            #[cfg(feature = "tls")]
            Opened::Tls(stream) => {
                let rustls::StreamOwned { conn, sock } = *stream;
                let reader_sock = match sock.try_clone() {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(Opened::Tls(Box::new(rustls::StreamOwned::new(conn, sock))));
                    }
                };
                let _ = reader_sock.set_read_timeout(None);
                let (reader, writer) = tls::split(conn, reader_sock, sock);
                Ok((Reader::Tls(reader), Writer::Tls(writer)))
            }
            Opened::User(s) => Err(Opened::User(s)),
        }
    }
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Opened::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Opened::Tls(s) => match s.read(buf) {
                // A TCP close without close_notify: plain EOF for the protocol machine, which
                // notices a cut frame itself.
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
            Opened::User(s) => s.read(buf),
        }
    }
}

impl Write for Opened {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Opened::Tcp(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Opened::Tls(s) => s.write(buf),
            Opened::User(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Opened::Tcp(s) => s.flush(),
            #[cfg(feature = "tls")]
            Opened::Tls(s) => s.flush(),
            Opened::User(s) => s.flush(),
        }
    }
}

/// The read half of a split connection, owned by a reader thread.
pub(crate) enum Reader {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(tls::TlsReader),
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Reader::Tls(s) => s.read(buf),
        }
    }
}

/// What a reader thread saw.
pub(crate) enum ReadEvent {
    Data(Bytes),
    Eof,
    Error(io::Error),
}

/// Reads until EOF or an error, handing each chunk to `deliver`; stops early when `deliver`
/// returns `false` (nobody listens any more).
pub(crate) fn read_loop(mut reader: Reader, mut deliver: impl FnMut(ReadEvent) -> bool) {
    let mut buf = ReadBuffer::new();
    let mut would_block = 0u32;
    loop {
        let event = match reader.read(buf.space()) {
            Ok(0) => ReadEvent::Eof,
            Ok(n) => {
                let data = Bytes::copy_from_slice(buf.space().get(..n).unwrap_or_default());
                buf.read(n);
                ReadEvent::Data(data)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Only while `Writer::probe` has the socket non-blocking, for a few microseconds: yield
            // until it is blocking again (sleep if that somehow takes long).
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                would_block = would_block.saturating_add(1);
                if would_block < 1000 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            Err(e) => ReadEvent::Error(e),
        };
        would_block = 0;
        let more = matches!(event, ReadEvent::Data(_));
        if !deliver(event) || !more {
            return;
        }
    }
}

/// What [`Writer::probe`] found.
pub(crate) enum Probe {
    /// Nothing to report (or bytes waiting for the reader thread).
    Alive,
    /// The server closed the connection.
    Eof,
    /// The socket failed.
    Error(io::Error),
}

/// The write half of a split connection. Dropping it shuts the socket down, which also ends the
/// reader thread's blocking read.
pub(crate) enum Writer {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(tls::TlsWriter),
}

impl Writer {
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(s) => s.write_all(bytes),
            #[cfg(feature = "tls")]
            Writer::Tls(s) => s.write_all(bytes),
        }
    }

    /// The socket (also the TLS session's).
    fn sock(&self) -> &TcpStream {
        #[allow(clippy::infallible_destructuring_match)] // not infallible with the `tls` feature
        let sock = match self {
            Writer::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Writer::Tls(s) => s.sock(),
        };
        sock
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) {
        let _ = self.sock().set_write_timeout(timeout);
    }

    /// Whether the server closed an idle connection that the reader thread may not have reported
    /// yet: a non-blocking peek at the socket. The reader thread's blocking read in progress is not
    /// affected by the instant of non-blocking mode (Linux and the BSDs read the flag when a read
    /// starts); a read that starts in that instant sees `WouldBlock` and is retried.
    pub(crate) fn probe(&self) -> Probe {
        let sock = self.sock();
        if sock.set_nonblocking(true).is_err() {
            return Probe::Alive;
        }
        let peeked = sock.peek(&mut [0u8; 1]);
        let _ = sock.set_nonblocking(false);
        match peeked {
            Ok(0) => Probe::Eof,
            Ok(_) => Probe::Alive,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Probe::Alive
            }
            Err(e) => Probe::Error(e),
        }
    }

    /// Ends the session (TLS close_notify) and shuts the socket down both ways.
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    pub(crate) fn close(mut self) {
        #[cfg(feature = "tls")]
        if let Writer::Tls(s) = &mut self {
            s.close_notify();
        }
        self.shutdown();
    }

    fn shutdown(&self) {
        let _ = self.sock().shutdown(Shutdown::Both);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(feature = "tls")]
mod tls {
    //! A rustls session read and written from two threads at once.
    //!
    //! `rustls::StreamOwned` is one object that both reads and writes, so a thread blocked in its
    //! `read` would hold up every write. After the handshake (done through `StreamOwned`), the
    //! session is split: the reader thread reads raw bytes from its own handle of the socket
    //! without any lock, then locks the `ClientConnection` just long enough to decrypt; the writer
    //! locks it just long enough to encrypt, then writes to the socket without the lock. No I/O
    //! happens under the lock, so neither side can block the other.

    use std::io::{self, ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use rustls::ClientConnection;

    type Shared = Arc<Mutex<ClientConnection>>;

    fn lock(c: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
        c.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn split(
        mut conn: ClientConnection,
        reader: TcpStream,
        writer: TcpStream,
    ) -> (TlsReader, TlsWriter) {
        // The writer encrypts whole writes at once (their size is bounded by what the caller
        // writes), so rustls needs no send-buffer limit.
        conn.set_buffer_limit(None);
        let shared: Shared = Arc::new(Mutex::new(conn));
        (
            TlsReader {
                sock: reader,
                conn: Arc::clone(&shared),
                raw: vec![0u8; 16 * 1024],
                start: 0,
                end: 0,
            },
            TlsWriter {
                sock: writer,
                conn: shared,
                out: Vec::new(),
            },
        )
    }

    pub(crate) struct TlsReader {
        sock: TcpStream,
        conn: Shared,
        /// Raw bytes read from the socket; `start..end` not yet given to rustls.
        raw: Vec<u8>,
        start: usize,
        end: usize,
    }

    impl Read for TlsReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if buf.is_empty() {
                return Ok(0);
            }
            loop {
                {
                    let mut conn = lock(&self.conn);
                    match conn.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        // TCP closed without close_notify: EOF for the protocol machine, which
                        // notices a cut frame itself.
                        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(0),
                        Err(e) => return Err(e),
                    }
                    if self.start < self.end {
                        let mut pending = self.raw.get(self.start..self.end).unwrap_or_default();
                        let before = pending.len();
                        let taken = conn.read_tls(&mut pending)?;
                        if taken == 0 && before > 0 {
                            return Err(io::Error::other("TLS session stopped reading"));
                        }
                        self.start += before - pending.len();
                        conn.process_new_packets()
                            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                        continue;
                    }
                }
                let n = self.sock.read(&mut self.raw)?;
                self.start = 0;
                self.end = n;
                if n == 0 {
                    let mut conn = lock(&self.conn);
                    let _ = conn.read_tls(&mut io::empty());
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
                    return match conn.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::UnexpectedEof | ErrorKind::WouldBlock
                            ) =>
                        {
                            Ok(0)
                        }
                        Err(e) => Err(e),
                    };
                }
            }
        }
    }

    pub(crate) struct TlsWriter {
        sock: TcpStream,
        conn: Shared,
        out: Vec<u8>,
    }

    impl TlsWriter {
        pub(crate) fn sock(&self) -> &TcpStream {
            &self.sock
        }

        pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.out.clear();
            {
                let mut conn = lock(&self.conn);
                conn.writer().write_all(bytes)?;
                while conn.wants_write() {
                    conn.write_tls(&mut self.out)?;
                }
            }
            self.sock.write_all(&self.out)
        }

        pub(crate) fn close_notify(&mut self) {
            self.out.clear();
            {
                let mut conn = lock(&self.conn);
                conn.send_close_notify();
                while conn.wants_write() {
                    if conn.write_tls(&mut self.out).is_err() {
                        break;
                    }
                }
            }
            let _ = self.sock.write_all(&self.out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_sockets_get_nodelay_and_keepalive() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(5);
        let stream = connect_tcp("127.0.0.1", port, deadline).unwrap();
        assert!(stream.nodelay().unwrap());
        assert!(socket2::SockRef::from(&stream).keepalive().unwrap());
    }

    #[test]
    fn failures_name_their_phase() {
        // A port nobody listens on (bound, then closed).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let f = connect_tcp("127.0.0.1", port, deadline).unwrap_err();
        assert_eq!(f.phase, ConnectPhase::Tcp);
        assert!(!f.permanent, "{f}");
        let f = connect_tcp("no-such-host.invalid", 7419, deadline).unwrap_err();
        assert_eq!(f.phase, ConnectPhase::Resolve, "{f}");
        assert!(!f.permanent);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_failures_say_whether_retrying_can_help() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            tls: true,
            tls_config: faktory_proto::tls::TlsConfig::default(),
            connect_timeout: Duration::from_secs(5),
        };
        // The listener never answers the ClientHello: the handshake times out, which may pass.
        let f = match target.open(Instant::now() + Duration::from_millis(200)) {
            Err(f) => f,
            Ok(_) => panic!("no TLS server there"),
        };
        assert_eq!(f.phase, ConnectPhase::Tls);
        assert!(!f.permanent, "{f}");
        // A host that is not a TLS server name never will be.
        let bad = Target {
            host: "not a host!".into(),
            ..target
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let f = match bad.tls_handshake(tcp, Instant::now() + Duration::from_secs(1)) {
            Err(f) => f,
            Ok(_) => panic!("not a server name"),
        };
        assert_eq!(f.phase, ConnectPhase::Tls);
        assert!(f.permanent, "{f}");
    }
}

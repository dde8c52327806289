//! The cheapest possible FETCH/ACK client, on raw sockets: the server's ceiling and the CPU floor
//! the worker is compared with.
//!
//! Each connection is a thread with a blocking socket that says HELLO with a wid, keeps exactly one
//! FETCH outstanding, and sends each ACK together with the next FETCH in one write. No library,
//! no runtime, no tasks: what it costs is the kernel's work for about one write and one read per
//! job.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faktory_proto::config::ServerUrl;
use faktory_proto::handshake::{Hi, password_hash};

/// The client's name in reports.
pub const CLIENT: &str = "raw socket";

/// Runs `connections` raw FETCH/ACK loops on `queue` until `jobs` jobs were ACKed in all (or a
/// FETCH came back empty, which ends that connection's loop, or `stop` said so before a FETCH).
/// `done` counts the ACKs the server answered. All connections are open (HELLO answered) before
/// the first FETCH.
pub fn fetch_ack(
    url: &ServerUrl,
    queue: &str,
    connections: usize,
    jobs: u64,
    done: &Arc<AtomicU64>,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<()> {
    let claimed = AtomicU64::new(0);
    let wid = format!("raw-{:x}", std::process::id());
    let socks = (0..connections.max(1))
        .map(|_| open(url, &wid))
        .collect::<io::Result<Vec<_>>>()?;
    std::thread::scope(|s| {
        let threads: Vec<_> = socks
            .into_iter()
            .map(|sock| {
                let (claimed, done) = (&claimed, &**done);
                std::thread::Builder::new()
                    .name("fk-raw".into())
                    .spawn_scoped(s, move || run_one(sock, queue, jobs, claimed, done, stop))
            })
            .collect();
        let mut result = Ok(());
        for t in threads {
            let r = match t {
                Ok(t) => t
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("a raw connection thread panicked"))),
                Err(e) => Err(e),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// Reads RESP lines and bulk bodies from the socket through one buffer, allocated once (no
/// zeroing or shifting per read: the floor this client sets should be the kernel's work).
struct Reader {
    sock: TcpStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl Reader {
    const SIZE: usize = 64 * 1024;

    fn new(sock: TcpStream) -> Reader {
        Reader {
            sock,
            buf: vec![0; Reader::SIZE],
            start: 0,
            end: 0,
        }
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Reads more bytes after the unread ones (moving them to the front, or growing the buffer,
    /// only when there is no room after them).
    fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self
            .sock
            .read(self.buf.get_mut(self.end..).unwrap_or_default())?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// The next line, without its CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let rest = self.unread();
            if let Some(pos) = rest.windows(2).position(|w| w == b"\r\n") {
                let line = rest.get(..pos).unwrap_or_default().to_vec();
                self.start += pos + 2;
                return Ok(line);
            }
            self.fill()?;
        }
    }

    /// A bulk body of `len` bytes and its CRLF.
    fn body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.end - self.start < len + 2 {
            self.fill()?;
        }
        let body = self.unread().get(..len).unwrap_or_default().to_vec();
        self.start += len + 2;
        Ok(body)
    }
}

fn bad(what: &str, line: &[u8]) -> io::Error {
    io::Error::other(format!("{what}: {}", String::from_utf8_lossy(line)))
}

fn jid_of(job: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"jid\":\"";
    let at = job.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = job.get(at..)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// A connection that said HELLO, with its reader and its writer.
struct Conn {
    r: Reader,
    writer: TcpStream,
}

fn open(url: &ServerUrl, wid: &str) -> io::Result<Conn> {
    let sock = TcpStream::connect(url.authority())?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = sock.try_clone()?;
    let mut r = Reader::new(sock);
    let hi = r.line()?;
    let hi = Hi::parse(hi.strip_prefix(b"+").unwrap_or(&hi)).map_err(io::Error::other)?;
    let mut hello = format!("HELLO {{\"v\":2,\"wid\":\"{wid}\"");
    if let (Some(salt), Some(pw)) = (hi.s.as_deref(), url.password.as_ref()) {
        let hash = password_hash(pw.expose(), salt, hi.i.unwrap_or(1));
        hello.push_str(&format!(",\"pwdhash\":\"{hash}\""));
    }
    hello.push_str("}\r\n");
    writer.write_all(hello.as_bytes())?;
    let ok = r.line()?;
    if ok != b"+OK" {
        return Err(bad("HELLO refused", &ok));
    }
    Ok(Conn { r, writer })
}

fn run_one(
    conn: Conn,
    queue: &str,
    jobs: u64,
    claimed: &AtomicU64,
    done: &AtomicU64,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<()> {
    let Conn { mut r, mut writer } = conn;
    let fetch = format!("FETCH {queue}\r\n");
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut owed: Option<String> = None;
    loop {
        let more = !stop() && claimed.fetch_add(1, Ordering::Relaxed) < jobs;
        out.clear();
        let acking = owed.take();
        if let Some(jid) = &acking {
            out.extend_from_slice(format!("ACK {{\"jid\":\"{jid}\"}}\r\n").as_bytes());
        }
        if more {
            out.extend_from_slice(fetch.as_bytes());
        }
        if out.is_empty() {
            return Ok(());
        }
        // The ACK and the FETCH that refills the slot: one write.
        writer.write_all(&out)?;
        if acking.is_some() {
            let ack = r.line()?;
            if ack != b"+OK" {
                return Err(bad("ACK refused", &ack));
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        if !more {
            return Ok(());
        }
        let head = r.line()?;
        let len: i64 = head
            .strip_prefix(b"$")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("FETCH reply", &head))?;
        if len < 0 {
            return Ok(()); // the queue is empty
        }
        let job = r.body(usize::try_from(len).map_err(io::Error::other)?)?;
        owed = Some(
            jid_of(&job)
                .ok_or_else(|| bad("job without jid", &job))?
                .to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jid_of_a_job() {
        assert_eq!(
            jid_of(br#"{"jid":"abc123","jobtype":"Noop"}"#),
            Some("abc123")
        );
        assert_eq!(jid_of(br#"{"jobtype":"Noop"}"#), None);
        assert_eq!(jid_of(br#"{"jid":"unterminated"#), None);
    }

    #[test]
    fn the_reader_splits_lines_and_bodies_across_reads_and_grows() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let body = vec![b'x'; 100_000];
            let mut all = b"+OK\r\n$100000\r\n".to_vec();
            all.extend_from_slice(&body);
            all.extend_from_slice(b"\r\n+LAST\r\n");
            // Small writes, so lines and the body arrive split.
            for chunk in all.chunks(7_000) {
                s.write_all(chunk).unwrap();
                s.flush().unwrap();
            }
        });
        let mut r = Reader::new(TcpStream::connect(addr).unwrap());
        assert_eq!(r.line().unwrap(), b"+OK");
        assert_eq!(r.line().unwrap(), b"$100000");
        assert_eq!(r.body(100_000).unwrap(), vec![b'x'; 100_000]);
        assert_eq!(r.line().unwrap(), b"+LAST");
        writer.join().unwrap();
        assert!(r.line().is_err(), "EOF");
    }

    #[test]
    fn the_raw_client_acks_every_prefilled_job() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt
            .block_on(faktory_testkit::TestServer::builder().start())
            .unwrap();
        let monitor = crate::monitor::Monitor::connect(&server.url()).unwrap();
        monitor.prefill(37, "rawq", "Noop", None).unwrap();
        let url = ServerUrl::parse(&server.url()).unwrap();
        let done = Arc::new(AtomicU64::new(0));
        fetch_ack(&url, "rawq", 3, 37, &done, &|| false).unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 37);
        assert_eq!(monitor.queue_len("rawq").unwrap(), 0);
        assert_eq!(monitor.snapshot().unwrap().processed, 37);
    }
}

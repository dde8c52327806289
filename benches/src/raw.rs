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

/// Runs `connections` raw FETCH/ACK loops on `queue` until `jobs` jobs were ACKed in all (or a
/// FETCH came back empty, which ends that connection's loop). `done` counts the ACKs the server
/// answered.
pub fn fetch_ack(
    url: &ServerUrl,
    queue: &str,
    connections: usize,
    jobs: u64,
    done: &Arc<AtomicU64>,
) -> io::Result<()> {
    let claimed = Arc::new(AtomicU64::new(0));
    let wid = format!("raw-{:x}", std::process::id());
    let threads: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (url, queue, wid) = (url.clone(), queue.to_owned(), wid.clone());
            let (claimed, done) = (Arc::clone(&claimed), Arc::clone(done));
            std::thread::spawn(move || run_one(&url, &queue, &wid, jobs, &claimed, &done))
        })
        .collect();
    let mut result = Ok(());
    for t in threads {
        let r = t
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a raw connection thread panicked")));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// Reads one RESP line (without CRLF) into `line`, buffering the rest in `buf`.
struct Reader {
    sock: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let n = self.sock.read(self.buf.get_mut(len..).unwrap_or_default())?;
        self.buf.truncate(len + n);
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The next line, without its CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            let rest = self.buf.get(self.start..).unwrap_or_default();
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
        while self.buf.len() - self.start < len + 2 {
            self.fill()?;
        }
        let body = self
            .buf
            .get(self.start..self.start + len)
            .unwrap_or_default()
            .to_vec();
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

fn run_one(
    url: &ServerUrl,
    queue: &str,
    wid: &str,
    jobs: u64,
    claimed: &AtomicU64,
    done: &AtomicU64,
) -> io::Result<()> {
    let sock = TcpStream::connect(url.authority())?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = sock.try_clone()?;
    let mut r = Reader {
        sock,
        buf: Vec::with_capacity(64 * 1024),
        start: 0,
    };
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
    let fetch = format!("FETCH {queue}\r\n");
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut owed: Option<String> = None;
    loop {
        let more = claimed.fetch_add(1, Ordering::Relaxed) < jobs;
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

//! The transcript format of `tests/data/*.txt` (recorded from a real Faktory 1.10.0), parsed into
//! sessions, and helpers shared by the test files that replay them.
//!
//! Format: lines `[label] S> b'...'  [t]` / `C> b'...'`, where the payload is a Python bytes
//! literal (escapes `\r \n \t \\ \' \" \xNN`); long payloads are elided as
//! `b'head' ...<N bytes total>... b'tail'`; `[EOF ...]` marks the server closing (also written
//! `S> b''  [EOF: ...]`); `=== title` lines and any other line are notes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    dead_code,
    unreachable_pub,
    missing_docs
)]

use std::path::PathBuf;

use faktory_proto::ServerError;
use faktory_proto::client::Reply;
use faktory_proto::command::{Command, WorkerState};
use faktory_proto::job::Job;

/// Who wrote a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `S>`: the server.
    Server,
    /// `C>`: the client.
    Client,
}

/// A payload, possibly elided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The bytes shown (all of them when not elided).
    pub head: Vec<u8>,
    /// The bytes shown after the elision (empty when not elided).
    pub tail: Vec<u8>,
    /// The announced total length, when elided.
    pub total: Option<usize>,
}

impl Payload {
    /// Whether the middle of the payload was left out of the transcript.
    pub fn is_elided(&self) -> bool {
        self.total.is_some()
    }

    /// The full payload. An elided one is rebuilt synthetically with its announced length: the
    /// middle repeats the first byte of the tail (`XXX…`, `aaa…`), and when the head stops inside
    /// a JSON timestamp string of a FETCH reply (`"enqueued_at":"2026-11-22T08`), the timestamp is
    /// completed and the args array opened (`:21:09.000000000Z","args":["`), so the rebuilt job is
    /// valid JSON of exactly the announced size.
    pub fn expand(&self) -> Vec<u8> {
        let Some(total) = self.total else {
            return self.head.clone();
        };
        let bridge = timestamp_bridge(&self.head);
        let fill = self.tail.first().copied().unwrap_or(b'x');
        let n = total
            .checked_sub(self.head.len() + bridge.len() + self.tail.len())
            .expect("elided payload shorter than its visible parts");
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&bridge);
        out.resize(out.len() + n, fill);
        out.extend_from_slice(&self.tail);
        assert_eq!(out.len(), total);
        out
    }
}

/// See [`Payload::expand`].
fn timestamp_bridge(head: &[u8]) -> Vec<u8> {
    const TEMPLATE: &[u8] = b"2026-11-22T08:21:09.000000000Z";
    let Some(quote) = head.iter().rposition(|&b| b == b'"') else {
        return Vec::new();
    };
    let partial = &head[quote + 1..];
    if partial.is_empty() || !TEMPLATE.starts_with(partial) {
        return Vec::new();
    }
    let mut bridge = TEMPLATE[partial.len()..].to_vec();
    bridge.extend_from_slice(b"\",\"args\":[\"");
    bridge
}

/// One transcript entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// Bytes sent by one side, with the recorded delay (seconds) when shown.
    Data {
        dir: Dir,
        payload: Payload,
        secs: Option<f64>,
    },
    /// The server closed the connection, after the recorded delay.
    Eof { secs: Option<f64> },
}

/// All entries of one connection: a labelled session, or the unlabelled lines of a file.
#[derive(Clone, Debug)]
pub struct Session {
    pub file: String,
    pub label: Option<String>,
    pub entries: Vec<Entry>,
}

/// The directory of the transcripts.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// Parses one transcript file into its sessions, in order of first appearance.
pub fn load(file: &str) -> Vec<Session> {
    let text = std::fs::read(data_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    parse(file, &text)
}

/// The session `label` (`None`: the unlabelled one) of `file`.
pub fn session(file: &str, label: Option<&str>) -> Session {
    load(file)
        .into_iter()
        .find(|s| s.label.as_deref() == label)
        .unwrap_or_else(|| panic!("{file} has no session {label:?}"))
}

/// Parses transcript text.
pub fn parse(file: &str, text: &[u8]) -> Vec<Session> {
    let mut sessions: Vec<Session> = Vec::new();
    for raw in text.split(|&b| b == b'\n') {
        let mut line = raw;
        if line.starts_with(b"===") || line.is_empty() {
            continue;
        }
        let mut label = None;
        if line.first() == Some(&b'[') && !line.starts_with(b"[EOF") {
            let end = line
                .iter()
                .position(|&b| b == b']')
                .expect("unterminated label");
            label = Some(String::from_utf8(line[1..end].to_vec()).unwrap());
            line = &line[end + 1..];
        }
        let rest = trim_start(line);
        let entries: Vec<Entry> = if let Some(p) = rest.strip_prefix(b"S> ") {
            parse_data(Dir::Server, p)
        } else if let Some(p) = rest.strip_prefix(b"C> ") {
            parse_data(Dir::Client, p)
        } else if rest.starts_with(b"[EOF") {
            vec![Entry::Eof {
                secs: parse_secs(rest),
            }]
        } else {
            // A note.
            continue;
        };
        let idx = match sessions.iter().position(|s| s.label == label) {
            Some(i) => i,
            None => {
                sessions.push(Session {
                    file: file.to_owned(),
                    label: label.clone(),
                    entries: Vec::new(),
                });
                sessions.len() - 1
            }
        };
        sessions[idx].entries.extend(entries);
    }
    sessions
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((b' ', rest)) = s.split_first() {
        s = rest;
    }
    s
}

/// `b'…'[ ...<N bytes total>... b'…']  [0.001s]` (or `[EOF: … after 0.000s]`).
fn parse_data(dir: Dir, s: &[u8]) -> Vec<Entry> {
    let (head, mut rest) = parse_literal(s);
    let mut payload = Payload {
        head,
        tail: Vec::new(),
        total: None,
    };
    if let Some(r) = rest.strip_prefix(b" ...<") {
        let end = r.iter().position(|&b| b == b' ').unwrap();
        let total: usize = std::str::from_utf8(&r[..end]).unwrap().parse().unwrap();
        let r = r
            .strip_prefix(format!("{total} bytes total>... ").as_bytes())
            .expect("elision");
        let (tail, r2) = parse_literal(r);
        payload.tail = tail;
        payload.total = Some(total);
        rest = r2;
    }
    let rest = trim_start(rest);
    let secs = parse_secs(rest);
    let mut out = Vec::new();
    if !payload.head.is_empty() || payload.is_elided() {
        out.push(Entry::Data { dir, payload, secs });
    }
    if rest.starts_with(b"[EOF") {
        out.push(Entry::Eof { secs });
    }
    out
}

/// The number before the `s]` at the end of a `[…]` annotation.
fn parse_secs(s: &[u8]) -> Option<f64> {
    let end = s.windows(2).rposition(|w| w == b"s]")?;
    let start = s[..end]
        .iter()
        .rposition(|&b| !(b.is_ascii_digit() || b == b'.'))
        .map_or(0, |i| i + 1);
    std::str::from_utf8(&s[start..end]).ok()?.parse().ok()
}

/// A Python bytes literal at the start of `s`; returns it and what follows.
fn parse_literal(s: &[u8]) -> (Vec<u8>, &[u8]) {
    assert_eq!(
        s.first(),
        Some(&b'b'),
        "not a bytes literal: {:?}",
        String::from_utf8_lossy(s)
    );
    let quote = s[1];
    assert!(quote == b'\'' || quote == b'"');
    let mut out = Vec::new();
    let mut i = 2;
    loop {
        let b = s[i];
        if b == quote {
            return (out, &s[i + 1..]);
        }
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        i += 2;
        match e {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let hex = std::str::from_utf8(&s[i..i + 2]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            other => panic!("unknown escape \\{}", other as char),
        }
    }
}

impl Session {
    /// A readable name.
    pub fn name(&self) -> String {
        match &self.label {
            Some(l) => format!("{}[{l}]", self.file),
            None => self.file.clone(),
        }
    }

    /// Everything the client sent, in order.
    pub fn client_bytes(&self) -> Vec<u8> {
        self.bytes(Dir::Client)
    }

    /// Everything the server sent, in order.
    pub fn server_bytes(&self) -> Vec<u8> {
        self.bytes(Dir::Server)
    }

    fn bytes(&self, want: Dir) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            if let Entry::Data { dir, payload, .. } = e {
                if *dir == want {
                    out.extend_from_slice(&payload.expand());
                }
            }
        }
        out
    }

    /// Whether the server closed the connection.
    pub fn server_closed(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Eof { .. }))
    }

    /// The delay recorded on the EOF entry.
    pub fn eof_secs(&self) -> Option<f64> {
        self.entries.iter().find_map(|e| match e {
            Entry::Eof { secs } => *secs,
            _ => None,
        })
    }

    /// The server's frames, each with the delay recorded on its entry (a frame never spans
    /// entries in these transcripts; this asserts it).
    pub fn server_frames(&self) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        for e in &self.entries {
            if let Entry::Data {
                dir: Dir::Server,
                payload,
                secs,
            } = e
            {
                for f in split_frames(&payload.expand()) {
                    out.push((f, secs.unwrap_or(0.0)));
                }
            }
        }
        out
    }

    /// The client's lines, each with its terminator (`\r\n` or `\n`).
    pub fn client_lines(&self) -> Vec<Vec<u8>> {
        split_lines(&self.client_bytes())
    }

    /// The session laid out as a conversation (see [`Flow`]).
    pub fn flow(&self) -> Flow {
        let mut frames = self.server_frames().into_iter();
        let mut lines = self.client_lines().into_iter();
        let hi = frames.next().expect("no HI");
        let hello = lines.next();
        let hello_reply = if hello.is_some() { frames.next() } else { None };
        let mut exchanges = Vec::new();
        for line in lines {
            let replies = if verb(&line) == b"END" {
                Vec::new()
            } else {
                frames.next().into_iter().collect()
            };
            exchanges.push(Exchange { line, replies });
        }
        assert!(
            frames.next().is_none(),
            "{}: server frames left over",
            self.name()
        );
        Flow {
            hi,
            hello,
            hello_reply,
            exchanges,
            server_closed: self.server_closed(),
        }
    }
}

/// A session as a conversation: the greeting, the HELLO and its reply, then each later client
/// line with the frames answering it (none for END; none when the server closed first).
#[derive(Clone, Debug)]
pub struct Flow {
    /// `+HI …` and its delay.
    pub hi: (Vec<u8>, f64),
    /// The first client line.
    pub hello: Option<Vec<u8>>,
    /// The server's answer to it, if any.
    pub hello_reply: Option<(Vec<u8>, f64)>,
    /// The later lines.
    pub exchanges: Vec<Exchange>,
    /// The server closed the connection at the end.
    pub server_closed: bool,
}

/// One client line after HELLO and the frames answering it (with their recorded delays).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub line: Vec<u8>,
    pub replies: Vec<(Vec<u8>, f64)>,
}

/// The verb of a client line (before the first space, without the terminator).
pub fn verb(line: &[u8]) -> &[u8] {
    let l = strip_terminator(line);
    match l.iter().position(|&b| b == b' ') {
        Some(i) => &l[..i],
        None => l,
    }
}

/// A line without its `\r\n` or `\n`.
pub fn strip_terminator(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line)
}

/// Splits client bytes into lines ending at `\n` (a trailing partial line is kept as is).
pub fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push(bytes[start..=i].to_vec());
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push(bytes[start..].to_vec());
    }
    out
}

/// Splits server bytes into RESP frames (`+`, `-`, `$n`, `$-1`), independently of the crate's
/// decoder. Panics on anything else: the transcripts hold nothing else.
pub fn split_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let line_end = bytes[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| i + p + 2)
            .expect("frame without CRLF");
        let end = match bytes[i] {
            b'+' | b'-' => line_end,
            b'$' => {
                let n: i64 = std::str::from_utf8(&bytes[i + 1..line_end - 2])
                    .unwrap()
                    .parse()
                    .unwrap();
                if n < 0 {
                    line_end
                } else {
                    line_end + n as usize + 2
                }
            }
            other => panic!("unexpected frame type {:?}", other as char),
        };
        out.push(bytes[i..end].to_vec());
        i = end;
    }
    out
}

/// A parsed transcript frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawFrame {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Bulk(Vec<u8>),
    Null,
}

/// Parses one frame produced by [`split_frames`].
pub fn raw_frame(frame: &[u8]) -> RawFrame {
    let body = &frame[1..frame.len() - 2];
    match frame[0] {
        b'+' => RawFrame::Simple(body.to_vec()),
        b'-' => RawFrame::Error(body.to_vec()),
        b'$' if body == b"-1" => RawFrame::Null,
        b'$' => {
            let nl = body.iter().position(|&b| b == b'\r').unwrap();
            RawFrame::Bulk(body[nl + 2..].to_vec())
        }
        _ => unreachable!(),
    }
}

/// The reply the client must report for `command` answered by `frame`, worked out from the
/// protocol's reply table (docs/protocol.md#reply-kinds) without the crate's decoder.
pub fn expected_reply(command: &Command, frame: &[u8]) -> Result<Reply, ServerError> {
    let raw = raw_frame(frame);
    if let RawFrame::Error(line) = &raw {
        return Err(ServerError::from_line(line));
    }
    Ok(match (command, raw) {
        (Command::Beat(_), RawFrame::Simple(t)) if t == b"OK" => Reply::Beat(None),
        (Command::Beat(_), RawFrame::Bulk(b)) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            let state: WorkerState = serde_json::from_value(v["state"].clone()).unwrap();
            Reply::Beat(Some(state))
        }
        (Command::Fetch(_), RawFrame::Null) => Reply::Job(None),
        (Command::Fetch(_), RawFrame::Bulk(b)) if b.is_empty() => Reply::Job(None),
        (Command::Fetch(_), RawFrame::Bulk(b)) => {
            Reply::Job(Some(Box::new(serde_json::from_slice::<Job>(&b).unwrap())))
        }
        (Command::PushBulk(_), RawFrame::Bulk(b)) => {
            Reply::PushBulk(serde_json::from_slice(&b).unwrap())
        }
        (
            Command::Info
            | Command::QueueLatency(_)
            | Command::BatchStatus(_)
            | Command::TrackGet(_),
            RawFrame::Bulk(b),
        ) => Reply::Json(b.into()),
        (Command::BatchNew(_) | Command::BatchOpen(_), RawFrame::Bulk(b)) => {
            Reply::Text(String::from_utf8(b).unwrap())
        }
        (_, RawFrame::Simple(t)) if t == b"OK" => Reply::Ok,
        (c, f) => panic!("no reply rule for {} answered by {f:?}", c.verb()),
    })
}

/// Whether an error reply of the real server comes from parsing the line (as opposed to the
/// server's storage or validation of a well-formed command): those are what `Command::parse`
/// must reproduce byte for byte.
pub fn is_parse_error(frame: &[u8]) -> bool {
    let RawFrame::Error(line) = raw_frame(frame) else {
        return false;
    };
    let msg = String::from_utf8_lossy(&line);
    let Some(msg) = msg.strip_prefix("ERR ") else {
        return false;
    };
    [
        "unknown command",
        "internal error",
        "invalid JSON",
        "invalid ACK",
        "invalid FAIL",
        "invalid BEAT",
        "missing JID",
        "must call fetch with at least one queue",
        "no such QUEUE subcommand",
        "QUEUE LATENCY does not support wildcards",
        "invalid format",
        "batch subsystem is only available",
        "tracking subsystem is only available",
        "unknown mutate operation",
        "invalid target for mutation command",
    ]
    .iter()
    .any(|p| msg.starts_with(p))
}

/// The password of the server recorded in `auth.txt`.
pub const AUTH_PASSWORD: &str = "s3cret-pw";

/// The `i` and `s` of a `+HI` frame, if it has them.
pub fn hi_salt(hi: &[u8]) -> Option<(String, u32)> {
    let RawFrame::Simple(text) = raw_frame(hi) else {
        panic!("HI is not a simple string");
    };
    let v: serde_json::Value = serde_json::from_slice(&text[3..]).unwrap();
    let s = v.get("s")?.as_str()?.to_owned();
    let i = u32::try_from(v.get("i")?.as_u64()?).unwrap();
    Some((s, i))
}

/// Every transcript file.
pub const FILES: [&str; 8] = [
    "basic.txt",
    "auth.txt",
    "extra.txt",
    "quirks.txt",
    "fidelity.txt",
    "big.txt",
    "timing.txt",
    "tls.txt",
];

/// Feeds `data` to `feed` in chunks of `chunk` bytes (the whole at once when `chunk` is 0).
pub fn chunks(data: &[u8], chunk: usize) -> Vec<&[u8]> {
    if chunk == 0 || data.is_empty() {
        vec![data]
    } else {
        data.chunks(chunk).collect()
    }
}

// ------------------------------------------------------------------------------------------------
// Replaying a session through `client::Connection`

use bytes::BytesMut;
use faktory_proto::client::ClientOptions;
use faktory_proto::handshake::Password;

/// A password for a client that is not the recorded server's.
pub const WRONG_PASSWORD: &str = "not-the-password";

/// The password the client of each session is configured with. The recorded client's HELLO is
/// the guide: sessions whose client sent a wrong or malformed hash get a wrong password, so our
/// client's correctly formed HELLO is refused the same way.
pub fn client_password(session: &Session) -> Option<&'static str> {
    match (session.file.as_str(), session.label.as_deref()) {
        ("auth.txt", Some("good-pwd" | "v1-single-sha256")) => Some(AUTH_PASSWORD),
        ("auth.txt", Some("no-pwdhash")) => None,
        ("auth.txt", _) => Some(WRONG_PASSWORD),
        // A client with a password talking to a server without one sends no hash.
        ("quirks.txt", Some("HELLO-with-pwdhash-no-password-server")) => Some(AUTH_PASSWORD),
        _ => None,
    }
}

/// Client options like those of the recorded client: hostname, pid, labels and wid from its
/// HELLO, and the password of [`client_password`].
pub fn client_options(session: &Session, hello: Option<&[u8]>) -> ClientOptions {
    let mut o = ClientOptions::default();
    o.password = client_password(session).map(Password::from);
    let json = hello
        .and_then(|h| strip_terminator(h).strip_prefix(b"HELLO "))
        .and_then(|j| serde_json::from_slice::<serde_json::Value>(j).ok());
    if let Some(v) = json {
        o.hostname = v["hostname"].as_str().map(str::to_owned);
        o.pid = v["pid"].as_u64().map(|p| u32::try_from(p).unwrap());
        o.labels = v["labels"]
            .as_array()
            .map(|a| a.iter().map(|l| l.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        o.wid = v["wid"].as_str().map(str::to_owned);
    }
    o
}

/// One command of a session our client can express.
#[derive(Clone, Debug)]
pub struct Scripted {
    /// The command, as [`Command::parse`] read the recorded line.
    pub command: Command,
    /// Its encoding.
    pub encoded: Vec<u8>,
    /// Whether the encoding equals the recorded line (terminator normalised to CRLF).
    pub exact: bool,
    /// The recorded frames answering it, with their delays.
    pub replies: Vec<(Vec<u8>, f64)>,
}

/// What a client replays of a session: its options, the commands it can express (the client
/// lines that [`Command::parse`] accepts and [`Command::encode`] can write), and the server's
/// frames for them.
#[derive(Clone, Debug)]
pub struct ClientScript {
    pub flow: Flow,
    pub options: ClientOptions,
    pub commands: Vec<Scripted>,
    /// `HI`, the HELLO reply, then the replies to `commands`, with their delays.
    pub frames: Vec<(Vec<u8>, f64)>,
    /// The server closed the connection at the end.
    pub server_closed: bool,
}

impl ClientScript {
    /// All server bytes of the script.
    pub fn server_bytes(&self) -> Vec<u8> {
        self.frames
            .iter()
            .flat_map(|(f, _)| f.iter().copied())
            .collect()
    }
}

/// Builds the [`ClientScript`] of a session.
pub fn client_script(session: &Session) -> ClientScript {
    let flow = session.flow();
    let options = client_options(session, flow.hello.as_deref());
    let mut commands = Vec::new();
    let mut frames = vec![flow.hi.clone()];
    frames.extend(flow.hello_reply.clone());
    for ex in &flow.exchanges {
        let Ok(command) = Command::parse(strip_terminator(&ex.line)) else {
            continue;
        };
        let mut buf = BytesMut::new();
        if command.encode(&mut buf).is_err() {
            continue;
        }
        let mut normalised = strip_terminator(&ex.line).to_vec();
        normalised.extend_from_slice(b"\r\n");
        frames.extend(ex.replies.iter().cloned());
        commands.push(Scripted {
            exact: buf.as_ref() == normalised.as_slice(),
            encoded: buf.to_vec(),
            command,
            replies: ex.replies.clone(),
        });
    }
    ClientScript {
        server_closed: flow.server_closed,
        flow,
        options,
        commands,
        frames,
    }
}

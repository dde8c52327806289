//! The handshake: the server's `HI`, the client's `HELLO`, and the password hash
//! (docs/protocol.md#handshake).
//!
//! CONTRACT:
//! - [`password_hash`]: `d = SHA256(password ++ salt)`, then `i - 1` more rounds of `SHA256(d)` over the
//!   raw digest; lowercase hex. `i <= 1` means one round. The three test vectors of
//!   docs/protocol.md#password-hash pass (the server's own unit test, its single-round variant,
//!   and one recorded from a live server).
//! - [`Hi::parse`] takes the text of the `+HI …` simple string (`HI {json}`).
//! - [`Hello`] serializes in the order `v, hostname, pid, labels, wid, pwdhash, username`, skipping
//!   absent fields.
//!
//! Server side:
//! - [`server_salt_and_iterations`] derives the `HI` salt (lowercase hex of a 63-bit number, not
//!   zero-padded) and iteration count (4000..=8095) from a seed.
//! - [`parse_hello`] reads the first line as the real server does: it must start with `HELLO {`, and
//!   the JSON must decode with Go's type rules (`"v":"2"`, `"v":300`, `"pid":"12"`, `"labels":"x"`
//!   are rejected; unknown fields and `null`s are fine; keys match case-insensitively).
//! - [`verify_password`] checks `pwdhash`: a `v` below 2 or absent means a single SHA-256 round
//!   whatever the iteration count; the comparison is constant-time and byte-exact (lowercase hex).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "server")]
use crate::command::parse::gojson::{self, GVal, StructTy, Ty};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 2;

/// A password, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Password::new(s)
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password::new(s)
    }
}

/// The server's greeting: `+HI {"v":2[,"i":N,"s":"salt"]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hi {
    /// Protocol version (always 2 on current servers).
    pub v: i64,
    /// Hash iterations, present when the server has a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<u32>,
    /// Salt, present when the server has a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
}

/// A greeting that is not `HI {json}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HiError {
    /// The text does not start with `HI `.
    #[error("server greeting does not start with \"HI \"")]
    NotHi,
    /// The JSON is invalid.
    #[error("server greeting JSON is invalid: {0}")]
    Json(String),
}

impl Hi {
    /// Parses the text of the `+HI …` simple string.
    pub fn parse(text: &[u8]) -> Result<Hi, HiError> {
        let json = text.strip_prefix(b"HI ").ok_or(HiError::NotHi)?;
        serde_json::from_slice(json).map_err(|e| HiError::Json(e.to_string()))
    }
    /// Whether the server wants a password hash.
    pub fn requires_password(&self) -> bool {
        self.s.is_some() || self.i.is_some()
    }
}

/// The client's `HELLO` payload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version: send 2 (absent or < 2 makes the server expect a single-round hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Display only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Worker id: non-empty makes this a worker connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wid: Option<String>,
    /// The password hash, when the server asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pwdhash: Option<String>,
    /// Ignored by Faktory (for proxies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The iterated SHA-256 password hash, lowercase hex.
pub fn password_hash(password: &str, salt: &str, iterations: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(password.as_bytes());
    hasher.update(salt.as_bytes());
    let mut digest = hasher.finalize();
    for _ in 1..iterations {
        digest = Sha256::digest(digest);
    }
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push(hex_digit(b >> 4));
        hex.push(hex_digit(b & 15));
    }
    hex
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// Server side: whether `pwdhash` proves `password` for the `HI` that offered `salt` and
/// `iterations`. A HELLO `v` below 2 (or absent) means the legacy single round. A missing hash
/// fails. The comparison takes the same time wherever the first difference is.
pub fn verify_password(
    password: &str,
    salt: &str,
    iterations: u32,
    hello_v: Option<u8>,
    pwdhash: Option<&str>,
) -> bool {
    let Some(given) = pwdhash else {
        return false;
    };
    let rounds = if hello_v.unwrap_or(0) >= 2 {
        iterations
    } else {
        1
    };
    let expected = password_hash(password, salt, rounds);
    constant_time_eq(expected.as_bytes(), given.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(feature = "server")]
/// Server side: the salt and iteration count of a `HI`, derived from `seed` (SplitMix64):
/// the salt is the lowercase hex of a 63-bit number without zero padding, the iterations are in
/// 4000..=8095, as the real server draws them.
pub fn server_salt_and_iterations(seed: u64) -> (String, u32) {
    let mut state = seed;
    let salt = splitmix64(&mut state) >> 1;
    let iterations = 4000 + (splitmix64(&mut state) % 4096) as u32;
    (format!("{salt:x}"), iterations)
}

#[cfg(feature = "server")]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Go struct the real server decodes `HELLO` into.
#[cfg(feature = "server")]
static CLIENT_DATA_GO: StructTy = StructTy {
    name: "ClientData",
    qualified: "server.ClientData",
    fields: &[
        ("hostname", Ty::Str("string")),
        ("wid", Ty::Str("string")),
        ("pid", Ty::Int("int")),
        ("labels", Ty::Slice(&Ty::Str("string"))),
        ("pwdhash", Ty::Str("string")),
        ("v", Ty::U8),
    ],
};
#[cfg(feature = "server")]
static CLIENT_DATA_TY: Ty = Ty::Struct(&CLIENT_DATA_GO);

#[cfg(feature = "server")]
/// Server side: the handshake line (without its terminator) as the real server reads it. `None`
/// means the server closes the connection without a reply: the line does not start with `HELLO {`,
/// or its JSON is invalid or has a field of the wrong type.
///
/// Fields the server ignores are read when they fit: `username` when it is a string; a `pid`
/// outside `u32` is dropped.
pub fn parse_hello(line: &[u8]) -> Option<Hello> {
    if !line.starts_with(b"HELLO {") {
        return None;
    }
    let json = line.get(6..)?;
    let tree = gojson::parse(json).ok()?;
    gojson::check(&tree, &CLIENT_DATA_TY).ok()?;
    let mut hello = Hello::default();
    let GVal::Obj(fields) = &tree else {
        return None;
    };
    for (key, value) in fields {
        match CLIENT_DATA_GO.field(key).map(|f| f.0) {
            Some("hostname") => gojson::set_opt_string(&mut hello.hostname, value),
            Some("wid") => gojson::set_opt_string(&mut hello.wid, value),
            Some("pwdhash") => gojson::set_opt_string(&mut hello.pwdhash, value),
            Some("labels") => {
                if let Some(labels) = gojson::strings(value) {
                    hello.labels = Some(labels);
                }
            }
            Some("pid") => {
                let mut n = None;
                gojson::set_int(&mut n, value);
                if let Some(n) = n {
                    hello.pid = u32::try_from(n).ok();
                }
            }
            Some("v") => {
                if let GVal::Num(n) = value {
                    hello.v = n.parse().ok();
                }
            }
            _ => {
                if key == "username" {
                    gojson::set_opt_string(&mut hello.username, value);
                }
            }
        }
    }
    Some(hello)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_vectors() {
        // docs/protocol.md#password-hash: the server's own unit test (and its single-round
        // variant), and a live server.
        assert_eq!(
            password_hash("foobar", "55104dc76695721d", 1545),
            "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30"
        );
        assert_eq!(
            password_hash("foobar", "55104dc76695721d", 1),
            "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313"
        );
        assert_eq!(
            password_hash("foobar", "55104dc76695721d", 0),
            password_hash("foobar", "55104dc76695721d", 1)
        );
        assert_eq!(
            password_hash("s3cret-pw", "5cd4e5d2eb28a61", 7946),
            "9ad13ef3f4f42d1493916dd0aecb1c611bf9c5734d353529a4f8b53ab522f346"
        );
    }

    #[test]
    fn verify_password_like_the_server() {
        let good = "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30";
        let single = "bda5ef54df4404655456165c27f46764614a296cdafcaffc747b7ab7cc1ea313";
        assert!(verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(2),
            Some(good)
        ));
        assert!(!verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(2),
            Some(single)
        ));
        assert!(!verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(2),
            Some(&good.to_uppercase())
        ));
        assert!(!verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(2),
            None
        ));
        assert!(!verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(2),
            Some("")
        ));
        // v < 2 or absent: a single round whatever the iterations.
        assert!(verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            Some(1),
            Some(single)
        ));
        assert!(verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            None,
            Some(single)
        ));
        assert!(!verify_password(
            "foobar",
            "55104dc76695721d",
            1545,
            None,
            Some(good)
        ));
    }

    #[test]
    #[cfg(feature = "server")]
    fn salts_and_iterations_look_like_the_servers() {
        let mut seen = std::collections::HashSet::new();
        let mut short = false;
        for seed in 0..2000u64 {
            let (salt, i) = server_salt_and_iterations(seed);
            assert!((4000..=8095).contains(&i));
            assert!(!salt.is_empty() && salt.len() <= 16);
            assert!(
                salt.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            assert!(
                !salt.starts_with('0') || salt == "0",
                "not zero-padded: {salt}"
            );
            assert!(u64::from_str_radix(&salt, 16).unwrap() < 1 << 63);
            short |= salt.len() < 16;
            seen.insert(salt);
        }
        assert!(short, "some salts are shorter than 16 digits");
        assert!(seen.len() > 1990);
        assert_eq!(server_salt_and_iterations(7), server_salt_and_iterations(7));
    }

    #[test]
    fn hi_parses_with_and_without_password() {
        assert_eq!(
            Hi::parse(b"HI {\"v\":2}").unwrap(),
            Hi {
                v: 2,
                i: None,
                s: None
            }
        );
        let hi = Hi::parse(b"HI {\"v\":2,\"i\":7946,\"s\":\"5cd4e5d2eb28a61\"}").unwrap();
        assert!(hi.requires_password());
        assert_eq!(
            (hi.i, hi.s.as_deref()),
            (Some(7946), Some("5cd4e5d2eb28a61"))
        );
        assert_eq!(Hi::parse(b"HELLO {}"), Err(HiError::NotHi));
        assert!(matches!(Hi::parse(b"HI {"), Err(HiError::Json(_))));
    }

    #[test]
    fn hello_serializes_in_contract_order() {
        let hello = Hello {
            v: Some(2),
            hostname: Some("probe-host".into()),
            pid: Some(4242),
            labels: Some(vec!["python-probe".into()]),
            wid: Some("probe-wid-0001".into()),
            pwdhash: Some("ab".into()),
            username: Some("u".into()),
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"v":2,"hostname":"probe-host","pid":4242,"labels":["python-probe"],"wid":"probe-wid-0001","pwdhash":"ab","username":"u"}"#
        );
        assert_eq!(serde_json::to_string(&Hello::default()).unwrap(), "{}");
    }

    #[test]
    #[cfg(feature = "server")]
    fn hello_line_is_read_like_the_server() {
        let h = parse_hello(br#"HELLO {"v":1,"foo":"bar","wid":"w-v1"}"#).unwrap();
        assert_eq!((h.v, h.wid.as_deref()), (Some(1), Some("w-v1")));
        assert_eq!(parse_hello(b"HELLO {}"), Some(Hello::default()));
        let h = parse_hello(br#"HELLO {"V":2,"PwdHash":"x","pid":null,"username":7}"#).unwrap();
        assert_eq!(
            (h.v, h.pwdhash.as_deref(), h.pid, h.username),
            (Some(2), Some("x"), None, None)
        );
        for bad in [
            &b"garbage line"[..],
            b"PUSH {\"jid\":\"x\"}",
            b"HELLO {not json",
            b"HELLO{}",
            b"HELLO  {}",
            b"hello {}",
            br#"HELLO {"v":"2"}"#,
            br#"HELLO {"v":300}"#,
            br#"HELLO {"v":2.0}"#,
            br#"HELLO {"pid":"12"}"#,
            br#"HELLO {"labels":"x"}"#,
            br#"HELLO {} x"#,
        ] {
            assert_eq!(parse_hello(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}

//! Redis glob matching (`ZSCAN … MATCH`), which the real server uses for MUTATE's `regexp` filter:
//! `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape, matched against the whole payload.

/// Whether `text` matches the Redis glob `pattern` (case-sensitive, over bytes).
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking; character classes handled inline.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let c = text.get(t).copied().unwrap_or(0);
        match pattern.get(p) {
            Some(b'*') => {
                // Collapse consecutive stars.
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, t));
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((matched, next)) = class(pattern, p + 1, c) {
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                } else if c == b'[' {
                    // An unterminated class matches like Redis: to the end of the pattern.
                    p += 1;
                    t += 1;
                    continue;
                }
            }
            Some(b'\\') if p + 1 < pattern.len() && pattern.get(p + 1) == Some(&c) => {
                p += 2;
                t += 1;
                continue;
            }
            Some(b'\\') if p + 1 < pattern.len() => {}
            Some(&pc) if pc == c => {
                p += 1;
                t += 1;
                continue;
            }
            Some(_) => {}
            None => {}
        }
        // Mismatch: backtrack to the last star, letting it eat one more byte.
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `start` (just after `[`). Returns whether it matched and
/// the index after the closing `]`, or `None` when the class is not terminated.
fn class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => return None,
            Some(b']') => break,
            Some(b'\\') if i + 1 < pattern.len() => {
                if pattern.get(i + 1) == Some(&c) {
                    matched = true;
                }
                i += 2;
            }
            Some(&lo)
                if pattern.get(i + 1) == Some(&b'-')
                    && pattern.get(i + 2).is_some_and(|&b| b != b']') =>
            {
                let hi = pattern.get(i + 2).copied().unwrap_or(lo);
                let (lo, hi) = if lo > hi { (hi, lo) } else { (lo, hi) };
                if (lo..=hi).contains(&c) {
                    matched = true;
                }
                i += 3;
            }
            Some(&x) => {
                if x == c {
                    matched = true;
                }
                i += 1;
            }
        }
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        let payload = br#"{"retry":25,"jid":"abc12345","queue":"default","jobtype":"SyncJob","args":["uid:123"]}"#;
        assert!(matches(br#"*"jobtype":"SyncJob"*"#, payload));
        assert!(!matches(br#"*"jobtype":"Sync"*"#, payload));
        assert!(matches(b"*uid:123*", payload));
        assert!(matches(b"*uid:1?3*", payload));
        assert!(matches(b"*uid:[0-9][0-9]3*", payload));
        assert!(!matches(b"*uid:[^1]*", payload));
        assert!(matches(b"*", b""));
        assert!(!matches(b"a", b""));
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!matches(b"*a*b*c", b"xxaxxbxxcxx"));
    }
}

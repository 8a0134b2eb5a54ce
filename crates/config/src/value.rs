//! Typed parameter values: booleans, integers, times with units, and lists.
//!
//! Lists split on commas and white space (postconf(5)); a `{ ... }` group is
//! one element, which keeps `inline:{ a=b, c=d }` and restriction arguments
//! with spaces intact.

/// `yes` or `no`, in any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if s.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// A time in seconds: a number and an optional unit (s, m, h, d, w); a bare
/// number takes `default_unit`.
pub fn parse_time(s: &str, default_unit: u8) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = match &s.as_bytes()[digits..] {
        [] => default_unit,
        [u] => u.to_ascii_lowercase(),
        _ => return None,
    };
    let scale = match unit {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86400,
        b'w' => 604800,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// A decimal integer, optionally signed.
pub fn parse_int(s: &str) -> Option<i64> {
    s.trim().parse().ok()
}

/// Splits a list value on commas and white space; `{...}` groups stay whole,
/// braces included (callers that want the inside use [`strip_braces`]).
pub fn split_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if is_sep(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut level = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => level += 1,
                b'}' => level = level.saturating_sub(1),
                b if level == 0 && is_sep(b) => break,
                _ => {}
            }
            i += 1;
        }
        out.push(&s[start..i]);
    }
    out
}

/// The inside of `{ text }`, trimmed; other text unchanged.
pub fn strip_braces(s: &str) -> &str {
    match s.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        Some(inner) => inner.trim(),
        None => s,
    }
}

fn is_sep(b: u8) -> bool {
    b == b',' || b.is_ascii_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("300s", b's'), Some(300));
        assert_eq!(parse_time("5", b'd'), Some(5 * 86400));
        assert_eq!(parse_time("1h", b's'), Some(3600));
        assert_eq!(parse_time("2w", b's'), Some(1209600));
        assert_eq!(parse_time("1x", b's'), None);
        assert_eq!(parse_time("h", b's'), None);
        assert_eq!(parse_time("1hh", b's'), None);
    }

    #[test]
    fn lists_keep_brace_groups() {
        assert_eq!(
            split_list(
                "permit_mynetworks,  reject_unauth_destination\n\tcheck_policy_service { inet:127.0.0.1:10023, timeout=10s }"
            ),
            [
                "permit_mynetworks",
                "reject_unauth_destination",
                "check_policy_service",
                "{ inet:127.0.0.1:10023, timeout=10s }"
            ]
        );
        assert_eq!(
            split_list("inline:{ a=b, c=d }, hash:/x"),
            ["inline:{ a=b, c=d }", "hash:/x"]
        );
        assert_eq!(strip_braces("{ a = b }"), "a = b");
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("no"), Some(false));
        assert_eq!(parse_bool("true"), None);
    }
}

//! Header lines (RFC 5322 section 2.2), the way Postfix's is_header()
//! sees them: a name of printable characters other than `:`, perhaps
//! white space, then the colon. One rule for cleanup, pickup and
//! sendmail -t.

/// The length of the header name `line` starts with (white space before
/// the colon not counted), or `None` when it is no header line.
pub fn name_len(line: &[u8]) -> Option<usize> {
    let name = line
        .iter()
        .position(|&b| !b.is_ascii_graphic() || b == b':')
        .unwrap_or(line.len());
    if name == 0 {
        return None;
    }
    let rest = &line[name..];
    let colon = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    (rest[colon] == b':').then_some(name)
}

/// Whether `line` starts a header.
pub fn is_header(line: &[u8]) -> bool {
    name_len(line).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_colons() {
        assert_eq!(name_len(b"To: x"), Some(2));
        assert_eq!(name_len(b"To : x"), Some(2));
        assert_eq!(name_len(b"X-A\t: x"), Some(3));
        assert_eq!(name_len(b"Subject:"), Some(7));
        assert_eq!(name_len(b": x"), None);
        assert_eq!(name_len(b"Not a header"), None);
        assert_eq!(name_len(b"two words: x"), None);
        assert_eq!(name_len(b""), None);
        assert_eq!(name_len(b" To: x"), None);
    }
}

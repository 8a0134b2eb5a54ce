//! Envelope addresses in MAIL FROM and RCPT TO (RFC 5321 section 4.1.2),
//! parsed as leniently as Postfix's smtpd is with the default
//! `strict_rfc821_envelopes = no`: `<addr>`, bare `addr`, white space after
//! the colon, source routes (`<@a,@b:user@d>`, the route dropped), and
//! quoted local parts, which are unquoted into the internal form
//! (`"a b"@d` becomes `a b@d`) that the rest of the system works with.

/// A parsed path and what follows it on the line (the ESMTP parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path<'a> {
    /// The address in internal form; empty for the null sender `<>`.
    pub address: String,
    /// Whether the client wrote the address in angle brackets.
    pub bracketed: bool,
    /// The rest of the command line after the path.
    pub rest: &'a str,
}

/// Why a path is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Nothing where the address should be.
    Missing,
    /// Unbalanced `<`, `>` or quotes, or bytes that are not allowed.
    Syntax,
    /// `<addr>` required (`strict_rfc821_envelopes = yes`).
    NotBracketed,
}

/// Parses the text after `FROM:` or `TO:`.
pub fn parse(text: &str, strict: bool) -> Result<Path<'_>, PathError> {
    let text = text.trim_start_matches([' ', '\t']);
    if text.is_empty() {
        return Err(PathError::Missing);
    }
    let (inner, rest, bracketed) = if let Some(body) = text.strip_prefix('<') {
        let end = closing_bracket(body).ok_or(PathError::Syntax)?;
        // `<<addr>>` is `addr`, as Postfix's parser has it.
        let mut inner = &body[..end];
        while let Some(i) = inner.strip_prefix('<').and_then(|i| i.strip_suffix('>')) {
            inner = i;
        }
        (inner, &body[end + 1..], true)
    } else {
        if strict {
            return Err(PathError::NotBracketed);
        }
        let end = token_end(text).ok_or(PathError::Syntax)?;
        (&text[..end], &text[end..], false)
    };
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(PathError::Syntax);
    }
    // RFC 821 has no white space in a path but inside quotes.
    if strict && token_end(inner) != Some(inner.len()) {
        return Err(PathError::Syntax);
    }
    let address = internal_form(strip_route(inner))?;
    Ok(Path {
        address,
        bracketed,
        rest: rest.trim_start_matches([' ', '\t']),
    })
}

/// The index of the `>` that closes the path (quotes respected, nested
/// brackets balanced).
fn closing_bracket(body: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted && depth == 0 => return Some(i),
            '>' if !quoted => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The end of a bare address: white space outside quotes.
fn token_end(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Some(i),
            '<' | '>' if !quoted => return None,
            _ => {}
        }
    }
    (!quoted).then_some(text.len())
}

/// `@a,@b:user@d` is `user@d`: RFC 5321 says to ignore source routes.
fn strip_route(addr: &str) -> &str {
    if addr.starts_with('@')
        && let Some(colon) = addr.find(':')
    {
        return &addr[colon + 1..];
    }
    addr
}

/// Unquotes the local part (`"a b"@d` to `a b@d`, `\x` to `x`) and refuses
/// control characters.
fn internal_form(addr: &str) -> Result<String, PathError> {
    if addr.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(PathError::Syntax);
    }
    let mut out = String::with_capacity(addr.len());
    let mut quoted = false;
    let mut chars = addr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => return Err(PathError::Syntax),
            },
            _ => out.push(c),
        }
    }
    if quoted {
        return Err(PathError::Syntax);
    }
    Ok(out)
}

/// The external form of an address the queue keeps in internal form:
/// the local part quoted (`"a b"@d`) when RFC 5322 wants it, as Postfix
/// writes addresses in logs, SMTP commands and headers (its
/// quote_822_local). The local part is what comes before the last `@`.
pub fn external_form(addr: &str) -> String {
    let (local, domain) = match addr.rfind('@') {
        Some(at) => (&addr[..at], Some(&addr[at + 1..])),
        None => (addr, None),
    };
    if !needs_quotes(local) {
        return addr.to_string();
    }
    let mut out = String::with_capacity(addr.len() + 4);
    out.push('"');
    for c in local.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    if let Some(d) = domain {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// A local part that is not a dot-atom (RFC 5322 section 3.2.3).
fn needs_quotes(local: &str) -> bool {
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
    if local.is_empty() {
        return false;
    }
    local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || ATEXT.contains(c) || !c.is_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_forms() {
        assert_eq!(
            external_form("user+ext@example.com"),
            "user+ext@example.com"
        );
        assert_eq!(
            external_form("John Doe+Tag@Flag.EXAMPLE"),
            "\"John Doe+Tag\"@Flag.EXAMPLE"
        );
        assert_eq!(external_form("a\"b@x"), "\"a\\\"b\"@x");
        assert_eq!(external_form(".dot@x"), "\".dot\"@x");
        assert_eq!(external_form("a@b@x"), "\"a@b\"@x");
        assert_eq!(external_form(""), "");
        assert_eq!(external_form("MAILER-DAEMON"), "MAILER-DAEMON");
    }

    fn addr(text: &str) -> Result<(String, bool, &str), PathError> {
        parse(text, false).map(|p| (p.address, p.bracketed, p.rest))
    }

    #[test]
    fn forms_postfix_accepts() {
        assert_eq!(addr("<a@b>").unwrap(), ("a@b".into(), true, ""));
        assert_eq!(
            addr(" <a@b> SIZE=10").unwrap(),
            ("a@b".into(), true, "SIZE=10")
        );
        assert_eq!(
            addr("someone@somedomain.org").unwrap(),
            ("someone@somedomain.org".into(), false, "")
        );
        assert_eq!(addr("<>").unwrap(), (String::new(), true, ""));
        assert_eq!(
            addr("<@relay.a,@relay.b:user@d.example>").unwrap().0,
            "user@d.example"
        );
        assert_eq!(
            addr("<\"user@outside.example\"@example.test>").unwrap().0,
            "user@outside.example@example.test"
        );
        assert_eq!(addr("<\"a b\"@d>").unwrap().0, "a b@d");
        assert_eq!(addr("<a\\@b@d>").unwrap().0, "a@b@d");
        assert_eq!(addr("<<a@b>>").unwrap().0, "a@b");
    }

    #[test]
    fn forms_refused() {
        assert_eq!(addr(""), Err(PathError::Missing));
        assert_eq!(addr("<a@b"), Err(PathError::Syntax));
        assert_eq!(addr("<a@b>x"), Err(PathError::Syntax));
        assert_eq!(addr("<\"a@b>"), Err(PathError::Syntax));
        assert_eq!(addr("<a\u{1}b@c>"), Err(PathError::Syntax));
        assert_eq!(parse("a@b", true), Err(PathError::NotBracketed));
    }
}

//! The text formats postmap(1) and postalias(1) read.
//!
//! postmap: each logical line (see `rostfix_config::lines`) is `key
//! whitespace value`. postalias (aliases(5)): `name: value, value...`,
//! where the name may be quoted (`"a b": x`). Bad lines are skipped with a
//! warning naming file and line, as Postfix does.

use std::borrow::Cow;

use rostfix_config::lines::{Logical, logical_lines};

/// One `key value` pair and the line it came from, borrowed from the input
/// where possible (a million-line table should not cost two million
/// allocations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry<'a> {
    pub key: Cow<'a, str>,
    pub value: Cow<'a, str>,
    pub line: usize,
}

/// Parsed input: entries in file order, and warnings with the line they
/// are about (so callers can merge their own warnings in file order).
#[derive(Debug, Default)]
pub struct Source<'a> {
    pub entries: Vec<SourceEntry<'a>>,
    pub warnings: Vec<(usize, String)>,
}

fn logical(text: &str) -> Vec<Logical<'_>> {
    let lines: Vec<&str> = text.lines().collect();
    logical_lines(&lines)
}

/// `part` (a slice of `whole`'s text) with `whole`'s lifetime when `whole`
/// borrows the input, else copied.
fn sub<'a>(whole: &Cow<'a, str>, part: &str) -> Cow<'a, str> {
    match whole {
        Cow::Borrowed(t) => {
            let start = part.as_ptr() as usize - t.as_ptr() as usize;
            Cow::Borrowed(&t[start..start + part.len()])
        }
        Cow::Owned(_) => Cow::Owned(part.to_string()),
    }
}

pub use rostfix_config::lines::printable;

/// Splits off the first white-space-delimited token; double quotes group
/// white space into the token and stay part of it (`"a b" value` has the
/// key `"a b"`). `None` for an unbalanced quote.
fn split_key(text: &str) -> Option<(&str, &str)> {
    // Bytes suffice: the delimiters are ASCII, and a UTF-8 sequence never
    // contains an ASCII byte.
    let mut quoted = false;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b if b.is_ascii_whitespace() && !quoted => return Some((&text[..i], &text[i..])),
            _ => {}
        }
    }
    (!quoted).then_some((text, ""))
}

/// Which reader is parsing: the wording of one warning differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Postmap,
    Texthash,
}

/// Parses postmap input (also texthash files). With `utf8`, lines that are
/// not valid UTF-8 are skipped with a warning, as Postfix does when
/// smtputf8_enable is on.
pub fn parse_table<'a>(path: &str, bytes: &'a [u8], utf8: bool, reader: Reader) -> Source<'a> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(text) => parse_table_text(path, text, bytes, false, reader),
        Cow::Owned(text) => {
            // Invalid UTF-8 somewhere: entries cannot borrow the input, and
            // with smtputf8 the offending lines are skipped.
            let src = parse_table_text(path, &text, bytes, utf8, reader);
            Source {
                entries: src
                    .entries
                    .into_iter()
                    .map(|e| SourceEntry {
                        key: Cow::Owned(e.key.into_owned()),
                        value: Cow::Owned(e.value.into_owned()),
                        line: e.line,
                    })
                    .collect(),
                warnings: src.warnings,
            }
        }
    }
}

/// `check_utf8`: skip (with a warning) lines that are not valid UTF-8.
fn parse_table_text<'a>(
    path: &str,
    text: &'a str,
    bytes: &[u8],
    check_utf8: bool,
    reader: Reader,
) -> Source<'a> {
    let mut src = Source::default();
    let mut warned_alias_format = false;
    let raw_lines: Vec<&[u8]> = if check_utf8 {
        bytes.split(|&b| b == b'\n').collect()
    } else {
        Vec::new()
    };
    for l in logical(text) {
        let line = l.line();
        if check_utf8
            && raw_lines[l.start..l.end]
                .iter()
                .any(|r| std::str::from_utf8(r).is_err())
        {
            let raw: Vec<u8> = raw_lines[l.start..l.end]
                .iter()
                .filter(|r| {
                    let t = String::from_utf8_lossy(r);
                    let t = t.trim_start();
                    !t.is_empty() && !t.starts_with('#')
                })
                .flat_map(|r| r.iter().copied())
                .collect();
            let raw = raw.trim_ascii_end();
            src.warnings.push((
                line,
                format!(
                    "{path}, line {line}: non-UTF-8 input \"{}\" -- ignoring this line",
                    printable(raw)
                ),
            ));
            continue;
        }
        if l.text.starts_with(|c: char| c.is_ascii_whitespace()) {
            src.warnings.push((
                line,
                format!(
                    "{path}, line {line}: logical line must not start with whitespace: \"{}\"",
                    l.text
                ),
            ));
            continue;
        }
        let Some((key, rest)) = split_key(&l.text) else {
            src.warnings.push((
                line,
                format!(
                    "{path}, line {line}: unbalanced '\"' in '{}' -- ignoring this line",
                    l.text
                ),
            ));
            continue;
        };
        if key.ends_with(':') && !warned_alias_format {
            warned_alias_format = true;
            src.warnings.push((
                line,
                format!("{path}, line {line}: record is in \"key: value\" format; is this an alias file?"),
            ));
        }
        let value = rest.trim();
        if value.is_empty() {
            src.warnings.push((
                line,
                match reader {
                    Reader::Postmap => format!("{path}, line {line}: expected format: key whitespace value"),
                    Reader::Texthash => format!(
                        "{path}, line {line}: expected format: key whitespace value -- ignoring this line"
                    ),
                },
            ));
            continue;
        }
        src.entries.push(SourceEntry {
            key: sub(&l.text, key),
            value: sub(&l.text, value),
            line,
        });
    }
    src
}

/// Parses aliases(5) input.
pub fn parse_aliases(path: &str, bytes: &[u8]) -> Source<'static> {
    let mut src = Source::default();
    let text = String::from_utf8_lossy(bytes);
    for l in logical(&text) {
        let line = l.line();
        if l.text.starts_with(|c: char| c.is_ascii_whitespace()) {
            src.warnings.push((
                line,
                format!(
                    "{path}, line {line}: logical line must not start with whitespace: \"{}\"",
                    l.text
                ),
            ));
            continue;
        }
        match split_alias(&l.text) {
            // A quoted name may hold anything; a bare one must be local.
            Some((name, _)) if name.contains('@') && !l.text.starts_with('"') => {
                src.warnings
                    .push((line, format!("{path}, line {line}: name must be local")));
            }
            Some((name, value)) if !name.is_empty() => {
                if value.is_empty() {
                    src.warnings
                        .push((line, format!("{path}, line {line}: need name:value pair")));
                    continue;
                }
                src.entries.push(SourceEntry {
                    key: Cow::Owned(name),
                    value: Cow::Owned(normalize_address_list(value)),
                    line: l.line(),
                });
            }
            _ => src
                .warnings
                .push((line, format!("{path}, line {line}: need name:value pair"))),
        }
    }
    src
}

/// An RFC 822 token of an alias value.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// An atom, a quoted string (quotes kept) or a domain literal.
    Word(String),
    /// A comment, parentheses kept.
    Comment(String),
    Special(char),
}

/// An alias value the way postalias stores it: the RFC 822 address list
/// re-written from its tokens (Postfix's tok822 externalisation), so that
/// `a ,b` becomes `a, b` and runs of white space become one space.
pub fn normalize_address_list(value: &str) -> String {
    let mut tokens: Vec<Token> = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                let mut w = String::from('"');
                chars.next();
                while let Some(c) = chars.next() {
                    w.push(c);
                    if c == '\\' {
                        if let Some(n) = chars.next() {
                            w.push(n);
                        }
                    } else if c == '"' {
                        break;
                    }
                }
                tokens.push(Token::Word(w));
            }
            '(' => {
                let mut w = String::new();
                let mut level = 0;
                for c in chars.by_ref() {
                    w.push(c);
                    match c {
                        '(' => level += 1,
                        ')' => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                tokens.push(Token::Comment(w));
            }
            '[' => {
                let mut w = String::new();
                for c in chars.by_ref() {
                    w.push(c);
                    if c == ']' {
                        break;
                    }
                }
                tokens.push(Token::Word(w));
            }
            ')' | '<' | '>' | '@' | ',' | ';' | ':' | '.' | ']' => {
                chars.next();
                tokens.push(Token::Special(c));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()<>@,;:\".[]".contains(c) && c != '\\' {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        // A quoted pair stands for the character itself.
                        if let Some(n) = chars.next() {
                            w.push(n);
                        }
                    } else {
                        w.push(c);
                    }
                }
                tokens.push(Token::Word(w));
            }
        }
    }
    let mut out = String::with_capacity(value.len());
    let mut prev: Option<&Token> = None;
    for t in &tokens {
        // A space after every comma, and between two words (a comment, a
        // closing bracket, an opening angle bracket count as words here).
        let space = matches!(
            (prev, t),
            (Some(Token::Special(',')), _)
                | (
                    Some(Token::Word(_) | Token::Comment(_) | Token::Special(')' | '>')),
                    Token::Word(_) | Token::Comment(_) | Token::Special('<'),
                )
        );
        if space {
            out.push(' ');
        }
        match t {
            Token::Word(w) | Token::Comment(w) => out.push_str(w),
            Token::Special(c) => out.push(*c),
        }
        prev = Some(t);
    }
    if matches!(prev, Some(Token::Special(','))) {
        out.push(' ');
    }
    out
}

/// `name: value`, with a quoted name unquoted.
fn split_alias(text: &str) -> Option<(String, &str)> {
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        name.push(n);
                    }
                }
                '"' => {
                    let after = rest[i + 1..].trim_start();
                    let value = after.strip_prefix(':')?;
                    return Some((name, value.trim()));
                }
                _ => name.push(c),
            }
        }
        return None;
    }
    let colon = text.find(':')?;
    let name = text[..colon].trim_end();
    if name.contains(char::is_whitespace) || name.contains('"') {
        return None;
    }
    Some((name.to_string(), text[colon + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lines() {
        let src = parse_table(
            "t",
            b"# c\nKey1   Value one  \n  continued\nnovalue\nk2 v2\n\"a b\" q\n\"x y\n",
            true,
            Reader::Texthash,
        );
        assert_eq!(src.entries.len(), 3);
        assert_eq!(src.entries[2].key, "\"a b\"");
        assert_eq!(src.entries[0].key, "Key1");
        assert_eq!(src.entries[0].value, "Value one    continued");
        assert_eq!((&*src.entries[1].key, src.entries[1].line), ("k2", 5));
        assert_eq!(
            src.warnings,
            [
                (
                    4,
                    "t, line 4: expected format: key whitespace value -- ignoring this line"
                        .to_string()
                ),
                (
                    7,
                    "t, line 7: unbalanced '\"' in '\"x y' -- ignoring this line".to_string()
                )
            ]
        );
        let bad = parse_table("t", b"bad \xff\xfe key\ngood v\n", true, Reader::Postmap);
        assert_eq!(bad.entries.len(), 1);
        assert_eq!(
            bad.warnings[0].1,
            "t, line 1: non-UTF-8 input \"bad ?? key\" -- ignoring this line"
        );
    }

    #[test]
    fn alias_values_are_rewritten_as_address_lists() {
        for (raw, want) in [
            ("a ,b,c ,  d", "a, b, c, d"),
            ("Full Name <a@b.example>", "Full Name <a@b.example>"),
            ("a (a comment) , b", "a (a comment), b"),
            ("list: a, b;", "list:a, b;"),
            ("a; b", "a;b"),
            ("\\root", "root"),
            ("\"x y\"@example.com", "\"x y\"@example.com"),
            ("a,", "a, "),
            (",a", ", a"),
            ("|/usr/bin/procmail -a x", "|/usr/bin/procmail -a x"),
            (
                "d.mazzocchio@kernel-panic.it",
                "d.mazzocchio@kernel-panic.it",
            ),
        ] {
            assert_eq!(normalize_address_list(raw), want, "{raw}");
        }
    }

    #[test]
    fn alias_lines() {
        let src = parse_aliases(
            "aliases",
            b"root: d.mazzocchio@kernel-panic.it\nMAILER-DAEMON: postmaster\n\"a b\": x,\n  y\nbad line\nowner-x:\t|/bin/cmd arg\n",
        );
        let got: Vec<(&str, &str)> = src.entries.iter().map(|e| (&*e.key, &*e.value)).collect();
        assert_eq!(
            got,
            [
                ("root", "d.mazzocchio@kernel-panic.it"),
                ("MAILER-DAEMON", "postmaster"),
                ("a b", "x, y"),
                ("owner-x", "|/bin/cmd arg")
            ]
        );
        assert_eq!(
            src.warnings,
            [(5, "aliases, line 5: need name:value pair".to_string())]
        );
    }
}

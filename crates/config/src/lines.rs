//! Logical lines, the rule every Postfix text file shares (main.cf, master.cf
//! aside, and every text lookup table): a logical line starts with
//! non-white-space text and goes on over the following lines that start with
//! white space; empty lines, white-space-only lines and lines whose first
//! non-white-space character is `#` are skipped and do not end a logical
//! line. Physical lines are joined as they are, without their newlines, and
//! trailing white space is dropped.

use std::borrow::Cow;

/// One logical line; borrowed from the input unless continuation lines had
/// to be joined (the common one-line case allocates nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logical<'a> {
    pub text: Cow<'a, str>,
    /// 0-based index of the first physical line.
    pub start: usize,
    /// 0-based index just past the last physical line it uses.
    pub end: usize,
}

impl Logical<'_> {
    /// The 1-based line number Postfix reports for this logical line.
    pub fn line(&self) -> usize {
        self.start + 1
    }
}

/// Splits physical lines into logical lines. A first line that starts with
/// white space becomes a logical line of its own; callers decide whether
/// that is an error (main.cf warns, tables warn).
pub fn logical_lines<'a>(lines: &[&'a str]) -> Vec<Logical<'a>> {
    let mut out: Vec<Logical<'a>> = Vec::new();
    for (i, &line) in lines.iter().enumerate() {
        if is_blank_or_comment(line) {
            continue;
        }
        let continues = starts_with_space(line);
        match out.last_mut() {
            Some(l) if continues => {
                l.text.to_mut().push_str(line);
                l.end = i + 1;
            }
            _ => out.push(Logical {
                text: Cow::Borrowed(line),
                start: i,
                end: i + 1,
            }),
        }
    }
    for l in &mut out {
        let keep = l
            .text
            .trim_end_matches(|c: char| c.is_ascii_whitespace())
            .len();
        match &mut l.text {
            Cow::Borrowed(t) => *t = &t[..keep],
            Cow::Owned(t) => t.truncate(keep),
        }
    }
    out
}

/// White space as the C library's isspace() knows it in the C locale: ASCII
/// only (a no-break space is text, as in Postfix).
pub fn starts_with_space(line: &str) -> bool {
    line.starts_with(|c: char| c.is_ascii_whitespace())
}

/// Empty, white space only, or a `#` comment.
pub fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
    t.is_empty() || t.starts_with('#')
}

/// Physical lines of a file: split at `\n`, a carriage return kept as
/// part of its line (it is white space to the parsers), and no empty last
/// line for a final newline.
pub fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

/// Text as Postfix shows untrusted input in messages: every byte outside
/// printable ASCII becomes `?`.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_continuations_across_comments() {
        let lines = ["a 1", "  2", "# c", "", "   3", "b 4 ", "\tc"];
        let got = logical_lines(&lines);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].text, "a 1  2   3");
        assert_eq!((got[0].line(), got[0].end), (1, 5));
        assert_eq!(got[1].text, "b 4 \tc");
    }
}

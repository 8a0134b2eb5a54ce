//! Logical lines, the rule every Postfix text file shares (main.cf, master.cf
//! aside, and every text lookup table): a logical line starts with
//! non-white-space text and goes on over the following lines that start with
//! white space; empty lines, white-space-only lines and lines whose first
//! non-white-space character is `#` are skipped and do not end a logical
//! line. Physical lines are joined as they are, without their newlines, and
//! trailing white space is dropped.

/// One logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logical {
    pub text: String,
    /// 0-based index of the first physical line.
    pub start: usize,
    /// 0-based index just past the last physical line it uses.
    pub end: usize,
}

impl Logical {
    /// The 1-based line number Postfix reports for this logical line.
    pub fn line(&self) -> usize {
        self.start + 1
    }
}

/// Splits physical lines into logical lines. A first line that starts with
/// white space becomes a logical line of its own; callers decide whether
/// that is an error (main.cf warns, tables warn).
pub fn logical_lines<S: AsRef<str>>(lines: &[S]) -> Vec<Logical> {
    let mut out: Vec<Logical> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.as_ref();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = line.starts_with(|c: char| c.is_ascii_whitespace());
        match out.last_mut() {
            Some(l) if continues => {
                l.text.push_str(line);
                l.end = i + 1;
            }
            _ => out.push(Logical {
                text: line.to_string(),
                start: i,
                end: i + 1,
            }),
        }
    }
    for l in &mut out {
        let keep = l.text.trim_end().len();
        l.text.truncate(keep);
    }
    out
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

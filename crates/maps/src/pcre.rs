//! `pcre:` tables (pcre_table(5)) with PCRE2, the library Postfix 3.7 links.
//! Flags: `i` toggles caseless matching (on by default), `m` multi-line,
//! `s` dot-all, `x` extended, `A` anchored, `U` ungreedy; `E` and `X` are
//! accepted (PCRE2 has no separate switch for them here).

use crate::DictError;
use crate::pattern::{CompileError, Matcher, Pattern, PatternDict};

/// A compiled PCRE2 pattern.
#[derive(Debug)]
pub struct PcreRegex {
    re: pcre2::bytes::Regex,
}

impl Matcher for PcreRegex {
    fn captures(&self, subject: &str) -> Option<Vec<Option<(usize, usize)>>> {
        let caps = self.re.captures(subject.as_bytes()).ok()??;
        Some(
            (0..caps.len())
                .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                .collect(),
        )
    }

    fn groups(&self) -> usize {
        self.re.captures_len().saturating_sub(1)
    }
}

/// Compiles a pcre_table(5) pattern with its flags.
pub fn compile(p: &Pattern, note: &mut dyn FnMut(&str)) -> Result<PcreRegex, CompileError> {
    let mut b = pcre2::bytes::RegexBuilder::new();
    // Defaults as pcre_table(5) gives them: caseless and dot-all on.
    let (mut caseless, mut multi, mut dotall, mut extended) = (true, false, true, false);
    let (mut anchored, mut ungreedy, mut dollar_endonly) = (false, false, false);
    for f in p.flags.chars() {
        match f {
            'i' => caseless = !caseless,
            'm' => multi = !multi,
            's' => dotall = !dotall,
            'x' => extended = !extended,
            'A' => anchored = !anchored,
            'U' => ungreedy = !ungreedy,
            'E' => dollar_endonly = !dollar_endonly,
            'X' => note(&format!("ignoring obsolete regexp option \"{f}\"")),
            other => {
                return Err(CompileError::Flag(format!(
                    "unknown regexp option \"{other}\""
                )));
            }
        }
    }
    b.caseless(caseless)
        .multi_line(multi)
        .dotall(dotall)
        .extended(extended)
        .utf(true)
        .jit_if_available(true);
    let mut text = if dollar_endonly && !multi {
        end_only_dollars(&p.text)
    } else {
        p.text.clone()
    };
    if ungreedy {
        text.insert_str(0, "(?U)");
    }
    if anchored {
        text = format!("\\A(?:{text})");
    }
    let re = b.build(&text).map_err(|e| {
        // The crate keeps PCRE2's bare message private; take it from the
        // Display text, whose prefix is fixed.
        let text = e.to_string();
        CompileError::Pattern(match e.offset() {
            Some(off) => {
                let prefix = format!("PCRE2: error compiling pattern at offset {off}: ");
                format!(
                    "error in regex at offset {off}: {}",
                    text.strip_prefix(&prefix).unwrap_or(&text)
                )
            }
            None => format!(
                "error in regex: {}",
                text.strip_prefix("PCRE2: error compiling pattern: ")
                    .unwrap_or(&text)
            ),
        })
    })?;
    Ok(PcreRegex { re })
}

/// PCRE2's DOLLAR_ENDONLY, which the pcre2 crate does not expose: every
/// `$` outside a character class and not escaped becomes `\z` (end of
/// subject, not before a final newline).
fn end_only_dollars(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class => out.push_str("\\z"),
            _ => out.push(c),
        }
    }
    out
}

/// A `pcre:/path` table.
pub type PcreDict = PatternDict<PcreRegex>;

/// Opens a `pcre:/path` table.
pub fn open(path: &str) -> Result<PcreDict, DictError> {
    PatternDict::open("pcre", path, compile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dict;

    #[test]
    fn lookaround_and_captures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcre");
        std::fs::write(
            &path,
            "/^(?!admin)(\\w+)@example\\.com$/ user $1\n/^admin@/ REJECT\n",
        )
        .unwrap();
        let d = open(path.to_str().unwrap()).unwrap();
        assert_eq!(
            d.lookup("Joe@Example.COM").unwrap().as_deref(),
            Some("user Joe")
        );
        assert_eq!(
            d.lookup("admin@example.com").unwrap().as_deref(),
            Some("REJECT")
        );
        assert_eq!(d.lookup("x@y").unwrap(), None);
    }
}

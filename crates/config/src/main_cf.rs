//! main.cf: the reader and the in-place editor that `postconf -e/-X/-#` use.
//!
//! Syntax (postconf(5)): a logical line starts with non-white-space text and
//! goes on over the following lines that start with white space; lines that
//! are empty, white space only, or whose first non-white-space character is
//! `#` are skipped and do not end a logical line. Physical lines are joined
//! without their newlines. Each logical line is `name = value`; white space
//! around the name and the value is dropped. A later entry overrides an
//! earlier one with a warning; a line without `=` is fatal, as in Postfix.

use std::path::{Path, PathBuf};

/// One `name = value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: String,
    /// 1-based number of the physical line the entry starts on.
    pub line: usize,
    /// 0-based physical line indexes the entry spans, end exclusive.
    span: (usize, usize),
}

/// A parsed main.cf, keeping its physical lines for editing.
#[derive(Debug, Clone, Default)]
pub struct MainCf {
    pub path: PathBuf,
    lines: Vec<String>,
    /// Entries in file order, duplicates included.
    pub entries: Vec<Entry>,
    /// Non-fatal diagnostics, already worded as Postfix words them.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MainCfError {
    #[error("open {}: {}", path.display(), crate::io_text(source))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {what}: \"{text}\"", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        what: &'static str,
        text: String,
    },
}

impl MainCf {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<MainCf, MainCfError> {
        let text = std::fs::read(path).map_err(|source| MainCfError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        MainCf::parse(path, &String::from_utf8_lossy(&text))
    }

    pub fn parse(path: &Path, text: &str) -> Result<MainCf, MainCfError> {
        let mut cf = MainCf {
            path: path.to_path_buf(),
            lines: text.lines().map(str::to_string).collect(),
            ..MainCf::default()
        };
        for crate::lines::Logical {
            text: logical,
            start,
            end,
        } in crate::lines::logical_lines(&cf.lines)
        {
            if logical.starts_with(|c: char| c.is_ascii_whitespace()) {
                cf.warnings.push(format!(
                    "{}: logical line must not start with whitespace: \"{}\"",
                    path.display(),
                    logical
                ));
                continue;
            }
            let (name, value) = split_nameval(&logical).map_err(|what| MainCfError::Syntax {
                path: path.to_path_buf(),
                line: start + 1,
                what,
                text: logical.clone(),
            })?;
            if let Some(old) = cf.entries.iter().rev().find(|e| e.name == name) {
                cf.warnings.push(format!(
                    "{}, line {}: overriding earlier entry: {}={}",
                    path.display(),
                    start + 1,
                    old.name,
                    old.value
                ));
            }
            cf.entries.push(Entry {
                name: name.to_string(),
                value: value.to_string(),
                line: start + 1,
                span: (start, end),
            });
        }
        Ok(cf)
    }

    /// The value in effect for `name` (the last entry wins).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value.as_str())
    }

    /// The entry in effect for each name, sorted by name.
    pub fn effective(&self) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            if let Some(slot) = out.iter_mut().find(|x| x.name == e.name) {
                *slot = e;
            } else {
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// `postconf -e`: sets each `(name, value)`. An existing entry is replaced
    /// where it stands (its continuation lines go with it, later duplicates
    /// are removed); a new one is appended at the end.
    pub fn set(&mut self, edits: &[(String, String)]) {
        for (name, value) in edits {
            let new_line = format!("{name} = {value}");
            let spans: Vec<(usize, usize)> = self
                .entries
                .iter()
                .filter(|e| &e.name == name)
                .map(|e| e.span)
                .collect();
            match spans.split_first() {
                Some((first, rest)) => {
                    // Later duplicates go first so that `first` keeps its place.
                    for span in rest.iter().rev() {
                        self.replace_span(*span, Vec::new());
                    }
                    self.replace_span(*first, vec![new_line]);
                }
                None => self.lines.push(new_line),
            }
            self.reparse();
        }
    }

    /// `postconf -X`: removes the named entries with their continuation lines.
    pub fn remove(&mut self, names: &[String]) {
        self.rewrite_entries(names, |_| Vec::new());
    }

    /// `postconf -#`: comments out the named entries.
    pub fn comment_out(&mut self, names: &[String]) {
        self.rewrite_entries(names, |lines| {
            lines.iter().map(|l| format!("#{l}")).collect()
        });
    }

    /// The file's text after edits.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// Writes the edited file: a temporary file beside it, renamed into place.
    pub fn write(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("cf.tmp");
        std::fs::write(&tmp, self.text())?;
        if let Ok(meta) = std::fs::metadata(&self.path) {
            std::fs::set_permissions(&tmp, meta.permissions())?;
        }
        std::fs::rename(&tmp, &self.path)
    }

    fn rewrite_entries(&mut self, names: &[String], f: impl Fn(&[String]) -> Vec<String>) {
        let mut spans: Vec<(usize, usize)> = self
            .entries
            .iter()
            .filter(|e| names.contains(&e.name))
            .map(|e| e.span)
            .collect();
        spans.sort();
        for span in spans.into_iter().rev() {
            let replacement = f(&self.lines[span.0..span.1]);
            self.replace_span(span, replacement);
        }
        self.reparse();
    }

    fn replace_span(&mut self, (start, end): (usize, usize), with: Vec<String>) {
        self.lines.splice(start..end, with);
    }

    fn reparse(&mut self) {
        let text = self.text();
        if let Ok(cf) = MainCf::parse(&self.path, &text) {
            self.entries = cf.entries;
        }
    }
}

/// Splits `name = value` the way Postfix's split_nameval does.
pub fn split_nameval(text: &str) -> Result<(&str, &str), &'static str> {
    let text = text.trim_start();
    let name_end = text
        .find(|c: char| c.is_ascii_whitespace() || c == '=')
        .unwrap_or(text.len());
    if name_end == 0 {
        return Err("missing attribute name");
    }
    let rest = text[name_end..].trim_start();
    let Some(value) = rest.strip_prefix('=') else {
        return Err("missing '=' after attribute name");
    };
    Ok((&text[..name_end], value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MainCf {
        MainCf::parse(Path::new("./main.cf"), text).unwrap()
    }

    #[test]
    fn continuation_lines_skip_comments_and_blank_lines() {
        let cf = parse("a_b = x,\n   y\n#c\n   z\n\n  w\nmydestination=  foo   bar  \n");
        assert_eq!(cf.get("a_b"), Some("x,   y   z  w"));
        assert_eq!(cf.get("mydestination"), Some("foo   bar"));
        assert_eq!(cf.entries[1].line, 7);
    }

    #[test]
    fn errors_and_warnings_as_postfix_words_them() {
        let cf = parse("  leading = 1\nmyorigin = x\nmyorigin = y\n");
        assert_eq!(
            cf.warnings,
            [
                "./main.cf: logical line must not start with whitespace: \"  leading = 1\"",
                "./main.cf, line 3: overriding earlier entry: myorigin=x"
            ]
        );
        assert_eq!(cf.get("myorigin"), Some("y"));
        let err = MainCf::parse(Path::new("./main.cf"), "myorigin = x\nfoo bar\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "./main.cf, line 2: missing '=' after attribute name: \"foo bar\""
        );
        let err = MainCf::parse(Path::new("./main.cf"), "=bar\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "./main.cf, line 1: missing attribute name: \"=bar\""
        );
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let mut cf = parse("# top\nmyorigin = x\n  y\n# mid\nrelayhost = a\nmyorigin = z\n");
        cf.set(&[
            ("myorigin".into(), "new".into()),
            ("extra".into(), "1 2".into()),
        ]);
        assert_eq!(
            cf.text(),
            "# top\nmyorigin = new\n# mid\nrelayhost = a\nextra = 1 2\n"
        );
        cf.comment_out(&["relayhost".into()]);
        assert_eq!(
            cf.text(),
            "# top\nmyorigin = new\n# mid\n#relayhost = a\nextra = 1 2\n"
        );
        cf.remove(&["myorigin".into()]);
        assert_eq!(cf.text(), "# top\n# mid\n#relayhost = a\nextra = 1 2\n");
    }
}

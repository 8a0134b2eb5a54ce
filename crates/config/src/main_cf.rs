//! main.cf: the reader and the in-place editor that `postconf -e/-X/-#` use.
//!
//! Syntax (postconf(5)): a logical line starts with non-white-space text and
//! goes on over the following lines that start with white space; lines that
//! are empty, white space only, or whose first non-white-space character is
//! `#` are skipped and do not end a logical line. Physical lines are joined
//! without their newlines. Each logical line is `name = value`; white space
//! around the name and the value is dropped. A later entry overrides an
//! earlier one (with a warning when the value differs); a line without `=`
//! is fatal, as in Postfix. White space is ASCII white space only.

use std::path::{Path, PathBuf};

use crate::lines::{
    is_blank_or_comment, logical_lines, physical_lines, printable, starts_with_space,
};

/// One `name = value` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: String,
    /// 1-based number of the physical line the entry starts on (0 for the
    /// setting `-c DIR` makes before the file is read).
    pub line: usize,
}

/// A parsed main.cf.
#[derive(Debug, Clone, Default)]
pub struct MainCf {
    pub path: PathBuf,
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
        MainCf::read_with(path, Vec::new())
    }

    /// Reads `path` on top of `preset` entries (the `config_directory` that
    /// `-c DIR` sets before main.cf is read).
    pub fn read_with(path: &Path, preset: Vec<Entry>) -> Result<MainCf, MainCfError> {
        let text = std::fs::read(path).map_err(|source| MainCfError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        MainCf::parse_with(path, &String::from_utf8_lossy(&text), preset)
    }

    pub fn parse(path: &Path, text: &str) -> Result<MainCf, MainCfError> {
        MainCf::parse_with(path, text, Vec::new())
    }

    fn parse_with(path: &Path, text: &str, preset: Vec<Entry>) -> Result<MainCf, MainCfError> {
        let mut cf = MainCf {
            path: path.to_path_buf(),
            entries: preset,
            warnings: Vec::new(),
        };
        let lines = physical_lines(text);
        for l in logical_lines(&lines) {
            let shown = printable(l.text.as_bytes());
            if starts_with_space(&l.text) {
                cf.warnings.push(format!(
                    "{}: logical line must not start with whitespace: \"{shown}\"",
                    path.display()
                ));
                continue;
            }
            let (name, value) = split_nameval(&l.text).map_err(|what| MainCfError::Syntax {
                path: path.to_path_buf(),
                line: l.line(),
                what,
                text: shown.clone(),
            })?;
            if let Some(old) = cf.entries.iter().rev().find(|e| e.name == name)
                && old.value != value
            {
                cf.warnings.push(format!(
                    "{}, line {}: overriding earlier entry: {}={}",
                    path.display(),
                    l.line(),
                    old.name,
                    old.value
                ));
            }
            cf.entries.push(Entry {
                name: name.to_string(),
                value: value.to_string(),
                line: l.line(),
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
            match out.iter_mut().find(|x| x.name == e.name) {
                Some(slot) => *slot = e,
                None => out.push(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Sets values in memory (`postconf -o`, per-service `-o` overrides).
    pub fn set(&mut self, edits: &[(String, String)]) {
        for (name, value) in edits {
            self.entries.push(Entry {
                name: name.clone(),
                value: value.clone(),
                line: 0,
            });
        }
    }
}

/// What an edit does to the named entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMode {
    /// `-e`: replace each entry (continuation lines dropped), append the
    /// names not found.
    Set,
    /// `-X`: remove each entry with its continuation lines.
    Remove,
    /// `-#`: comment each entry out, continuation lines included.
    CommentOut,
}

/// Edits main.cf text the way `postconf -e/-X/-#` do: lines that are not
/// part of an edited entry pass through byte for byte (comments and blank
/// lines inside an edited entry too), every entry of an edited name is
/// rewritten, and a second entry of the same name draws a warning through
/// `warn`. `edits` holds `(name, value)`; the value is ignored for -X/-#.
pub fn edit_text(
    text: &str,
    mode: EditMode,
    edits: &[(String, String)],
    warn: &mut dyn FnMut(String),
) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut found = vec![0usize; edits.len()];
    let mut interesting = false;
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if is_blank_or_comment(line) {
            out.push_str(line);
            continue;
        }
        if starts_with_space(line) {
            match (interesting, mode) {
                (false, _) => out.push_str(line),
                (true, EditMode::CommentOut) => {
                    out.push('#');
                    out.push_str(line);
                }
                (true, _) => {}
            }
            continue;
        }
        let key_len = line
            .find([' ', '\t', '\r', '\n', '='])
            .unwrap_or(line.len());
        let key = &line[..key_len];
        let Some(i) = edits.iter().position(|(n, _)| n == key) else {
            interesting = false;
            out.push_str(line);
            continue;
        };
        interesting = true;
        found[i] += 1;
        if found[i] == 2 {
            warn(format!("multiple entries for \"{key}\""));
        }
        match mode {
            EditMode::Set => out.push_str(&format!("{key} = {}\n", edits[i].1)),
            EditMode::CommentOut => {
                out.push('#');
                out.push_str(line);
            }
            EditMode::Remove => {}
        }
    }
    if mode == EditMode::Set {
        for (i, (name, value)) in edits.iter().enumerate() {
            if found[i] == 0 {
                // Unlike Postfix, never glue a new entry onto a last line
                // that lacks its newline.
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&format!("{name} = {value}\n"));
            }
        }
    }
    out
}

/// Splits `name = value` the way Postfix's split_nameval does (ASCII white
/// space only).
pub fn split_nameval(text: &str) -> Result<(&str, &str), &'static str> {
    let ws = |c: char| c.is_ascii_whitespace();
    let text = text.trim_start_matches(ws);
    let name_end = text.find(|c: char| ws(c) || c == '=').unwrap_or(text.len());
    if name_end == 0 {
        return Err("missing attribute name");
    }
    let rest = text[name_end..].trim_start_matches(ws);
    let Some(value) = rest.strip_prefix('=') else {
        return Err("missing '=' after attribute name");
    };
    Ok((&text[..name_end], value.trim_matches(ws)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MainCf {
        MainCf::parse(Path::new("./main.cf"), text).unwrap()
    }

    #[test]
    fn continuation_lines_skip_comments_and_blank_lines() {
        let cf = parse("a_b = x,\n   y\n#c\n   z\n\n  w\nmydestination=  foo   bar  \r\n");
        assert_eq!(cf.get("a_b"), Some("x,   y   z  w"));
        assert_eq!(cf.get("mydestination"), Some("foo   bar"));
        assert_eq!(cf.entries[1].line, 7);
    }

    #[test]
    fn errors_and_warnings_as_postfix_words_them() {
        let cf = parse("\tleading = 1\nmyorigin = x\nmyorigin = y\nmyorigin = y\n");
        assert_eq!(
            cf.warnings,
            [
                "./main.cf: logical line must not start with whitespace: \"?leading = 1\"",
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
        // A no-break space is not white space: this is a new logical line.
        let err = MainCf::parse(Path::new("./main.cf"), "a = 1\n\u{a0}b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "./main.cf, line 2: missing '=' after attribute name: \"??b\""
        );
    }

    #[test]
    fn edits_keep_comments_and_order() {
        let text = "# top\nmyorigin = x\n  y\n# mid\nrelayhost = a\nmyorigin = z\n";
        let mut warnings = Vec::new();
        let edited = edit_text(
            text,
            EditMode::Set,
            &[
                ("myorigin".into(), "new".into()),
                ("extra".into(), "1 2".into()),
            ],
            &mut |w| warnings.push(w),
        );
        assert_eq!(
            edited,
            "# top\nmyorigin = new\n# mid\nrelayhost = a\nmyorigin = new\nextra = 1 2\n"
        );
        assert_eq!(warnings, ["multiple entries for \"myorigin\""]);
        let out = edit_text(
            text,
            EditMode::CommentOut,
            &[("myorigin".into(), String::new())],
            &mut |_| {},
        );
        assert_eq!(
            out,
            "# top\n#myorigin = x\n#  y\n# mid\nrelayhost = a\n#myorigin = z\n"
        );
        let out = edit_text(
            text,
            EditMode::Remove,
            &[("myorigin".into(), String::new())],
            &mut |_| {},
        );
        assert_eq!(out, "# top\n# mid\nrelayhost = a\n");
        let out = edit_text(
            "a = 1",
            EditMode::Set,
            &[("b".into(), "2".into())],
            &mut |_| {},
        );
        assert_eq!(out, "a = 1\nb = 2\n");
    }
}

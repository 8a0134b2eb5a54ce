//! The text formats postmap(1) and postalias(1) read.
//!
//! postmap: each logical line (see `rostfix_config::lines`) is `key
//! whitespace value`. postalias (aliases(5)): `name: value, value...`,
//! where the name may be quoted (`"a b": x`). Bad lines are skipped with a
//! warning naming file and line, as Postfix does.

use rostfix_config::lines::{Logical, logical_lines};

/// One `key value` pair and the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parsed input: entries in file order, warnings for skipped lines.
#[derive(Debug, Default)]
pub struct Source {
    pub entries: Vec<SourceEntry>,
    pub warnings: Vec<String>,
}

fn logical(text: &str) -> Vec<Logical> {
    let lines: Vec<&str> = text.lines().collect();
    logical_lines(&lines)
}

/// Parses postmap input. `path` is used in warnings only.
pub fn parse_table(path: &str, text: &str) -> Source {
    let mut src = Source::default();
    for l in logical(text) {
        if l.text.starts_with(|c: char| c.is_ascii_whitespace()) {
            src.warnings.push(format!(
                "{path}, line {}: logical line must not start with whitespace: \"{}\"",
                l.line(),
                l.text
            ));
            continue;
        }
        let key_end = l
            .text
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(l.text.len());
        let key = &l.text[..key_end];
        let value = l.text[key_end..].trim();
        if value.is_empty() {
            src.warnings.push(format!(
                "{path}, line {}: expected format: key whitespace value",
                l.line()
            ));
            continue;
        }
        src.entries.push(SourceEntry {
            key: key.to_string(),
            value: value.to_string(),
            line: l.line(),
        });
    }
    src
}

/// Parses aliases(5) input.
pub fn parse_aliases(path: &str, text: &str) -> Source {
    let mut src = Source::default();
    for l in logical(text) {
        if l.text.starts_with(|c: char| c.is_ascii_whitespace()) {
            src.warnings.push(format!(
                "{path}, line {}: logical line must not start with whitespace: \"{}\"",
                l.line(),
                l.text
            ));
            continue;
        }
        match split_alias(&l.text) {
            Some((name, value)) if !name.is_empty() => {
                if value.is_empty() {
                    src.warnings
                        .push(format!("{path}, line {}: need name:value pair", l.line()));
                    continue;
                }
                src.entries.push(SourceEntry {
                    key: name,
                    value: value.to_string(),
                    line: l.line(),
                });
            }
            _ => src
                .warnings
                .push(format!("{path}, line {}: need name:value pair", l.line())),
        }
    }
    src
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
    if name.contains(char::is_whitespace) {
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
            "# c\nKey1   Value one  \n  continued\nnovalue\nk2 v2\n",
        );
        assert_eq!(src.entries.len(), 2);
        assert_eq!(src.entries[0].key, "Key1");
        assert_eq!(src.entries[0].value, "Value one    continued");
        assert_eq!(
            (src.entries[1].key.as_str(), src.entries[1].line),
            ("k2", 5)
        );
        assert_eq!(
            src.warnings,
            ["t, line 4: expected format: key whitespace value"]
        );
    }

    #[test]
    fn alias_lines() {
        let src = parse_aliases(
            "aliases",
            "root: d.mazzocchio@kernel-panic.it\nMAILER-DAEMON: postmaster\n\"a b\": x,\n  y\nbad line\nowner-x:\t|/bin/cmd arg\n",
        );
        let got: Vec<(&str, &str)> = src
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("root", "d.mazzocchio@kernel-panic.it"),
                ("MAILER-DAEMON", "postmaster"),
                ("a b", "x,  y"),
                ("owner-x", "|/bin/cmd arg")
            ]
        );
        assert_eq!(src.warnings, ["aliases, line 5: need name:value pair"]);
    }
}

//! What regexp_table(5) and pcre_table(5) share: the line syntax
//! (`/pattern/flags result`, `!/pattern/flags result`, `if /pattern/flags`,
//! `endif`), `$n` substitution in results, and the walk that applies rules
//! in order with if..endif blocks. The regular-expression engines live in
//! `regexp.rs` (POSIX, as Postfix gets from the C library) and `pcre.rs`.

use rostfix_config::lines::logical_lines;

use crate::{Dict, DictError};

/// A compiled pattern of either engine.
pub trait Matcher: Send + Sync {
    /// Capture spans (group 0 first) when `subject` matches.
    fn captures(&self, subject: &str) -> Option<Vec<Option<(usize, usize)>>>;
    /// Number of capturing groups.
    fn groups(&self) -> usize;
}

/// Why a pattern could not be compiled: a bad flag (the rule is skipped
/// with "skipping this rule") or the engine's own complaint (printed as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    Flag(String),
    Pattern(String),
}

/// One parsed pattern before compiling: text, flags, negation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    pub flags: String,
    pub negate: bool,
}

pub(crate) enum Rule<M> {
    Match {
        matcher: M,
        negate: bool,
        result: String,
    },
    /// `if`: when the test fails, continue at `skip_to` (past its endif).
    If {
        matcher: M,
        negate: bool,
        skip_to: usize,
    },
    Endif,
}

/// A pattern table: rules in file order.
pub(crate) struct Rules<M> {
    rules: Vec<Rule<M>>,
}

#[derive(Debug, PartialEq, Eq)]
enum PatternError {
    /// The line does not start with a delimiter.
    Unrecognized,
    NoClosingDelimiter(char),
}

/// Parses `[!]<d>pattern<d>flags` at the start of `text`; returns the
/// pattern and the rest of the line.
fn parse_pattern(text: &str) -> Result<(Pattern, &str), PatternError> {
    let (negate, text) = match text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut chars = text.char_indices();
    let Some((_, delim)) = chars.next() else {
        return Err(PatternError::Unrecognized);
    };
    if delim.is_ascii_alphanumeric() || delim.is_whitespace() {
        return Err(PatternError::Unrecognized);
    }
    let start = delim.len_utf8();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == delim {
            end = Some(i);
            break;
        }
    }
    let end = end.ok_or(PatternError::NoClosingDelimiter(delim))?;
    let after = &text[end + delim.len_utf8()..];
    let flag_len = after.find(char::is_whitespace).unwrap_or(after.len());
    Ok((
        Pattern {
            text: text[start..end].to_string(),
            flags: after[..flag_len].to_string(),
            negate,
        },
        &after[flag_len..],
    ))
}

/// The highest `$n` a result refers to, or an error for a bad reference.
fn max_reference(result: &str) -> Result<usize, String> {
    let b = result.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        match b.get(i) {
            Some(b'$') => i += 1,
            Some(b'{') | Some(b'(') => {
                let close = if b[i] == b'{' { b'}' } else { b')' };
                let end = b[i..].iter().position(|&c| c == close).map(|p| p + i);
                let end = end.ok_or_else(|| "unbalanced replacement bracket".to_string())?;
                let n: usize = result[i + 1..end]
                    .parse()
                    .map_err(|_| format!("bad replacement syntax \"{}\"", &result[i - 1..=end]))?;
                max = max.max(n);
                i = end + 1;
            }
            Some(c) if c.is_ascii_digit() => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                max = max.max(result[start..i].parse().unwrap_or(usize::MAX));
            }
            _ => return Err(format!("bad replacement syntax \"{}\"", &result[i - 1..])),
        }
    }
    Ok(max)
}

/// Replaces `$n`, `${n}`, `$(n)` and `$$` in `result`.
fn substitute(result: &str, subject: &str, caps: &[Option<(usize, usize)>]) -> String {
    let b = result.as_bytes();
    let mut out = String::with_capacity(result.len() + subject.len());
    let mut i = 0;
    let group = |n: usize, out: &mut String| {
        if let Some(Some((s, e))) = caps.get(n) {
            out.push_str(&subject[*s..*e]);
        }
    };
    while i < b.len() {
        let Some(off) = result[i..].find('$') else {
            out.push_str(&result[i..]);
            break;
        };
        out.push_str(&result[i..i + off]);
        i += off + 1;
        match b.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(b'{') | Some(b'(') => {
                let close = if b[i] == b'{' { '}' } else { ')' };
                let end = result[i..].find(close).map_or(b.len(), |p| p + i);
                group(result[i + 1..end].parse().unwrap_or(usize::MAX), &mut out);
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                group(result[start..i].parse().unwrap_or(usize::MAX), &mut out);
            }
        }
    }
    out
}

impl<M: Matcher> Rules<M> {
    /// Reads a table file. `kind` is "regexp" or "pcre" (for messages);
    /// `compile` turns a pattern into a matcher or an error text. Bad rules
    /// are skipped with a warning, as Postfix does.
    pub(crate) fn read(
        kind: &str,
        path: &str,
        compile: impl Fn(&Pattern, &mut dyn FnMut(&str)) -> Result<M, CompileError>,
    ) -> Result<Rules<M>, DictError> {
        let text = std::fs::read(path).map_err(|e| {
            DictError::retry(
                &format!("{kind}:{path}"),
                format!("open {path}: {}", rostfix_config::io_text(&e)),
            )
        })?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let mut rules: Vec<Rule<M>> = Vec::new();
        let mut open_ifs: Vec<(usize, usize)> = Vec::new();
        let warn =
            |line: usize, msg: &str| crate::warn(&format!("{kind} map {path}, line {line}: {msg}"));
        for l in logical_lines(&lines) {
            let line = l.line();
            let t: &str = &l.text;
            if t.starts_with(|c: char| c.is_whitespace()) {
                warn(
                    line,
                    &format!("logical line must not start with whitespace: \"{t}\""),
                );
                continue;
            }
            let word_end = t.find(char::is_whitespace).unwrap_or(t.len());
            let word = &t[..word_end];
            if word.eq_ignore_ascii_case("endif") {
                match open_ifs.pop() {
                    Some((idx, _)) => {
                        rules.push(Rule::Endif);
                        let after = rules.len();
                        if let Rule::If { skip_to, .. } = &mut rules[idx] {
                            *skip_to = after;
                        }
                    }
                    None => warn(line, "ignoring ENDIF without matching IF"),
                }
                continue;
            }
            let is_if = word.eq_ignore_ascii_case("if") && word_end < t.len();
            let body = if is_if { t[word_end..].trim_start() } else { t };
            let (pattern, rest) = match parse_pattern(body) {
                Ok(p) => p,
                Err(PatternError::Unrecognized) => {
                    warn(line, "ignoring unrecognized request");
                    continue;
                }
                Err(PatternError::NoClosingDelimiter(d)) => {
                    // Postfix words this one differently per table type.
                    let verb = if kind == "pcre" {
                        "ignoring"
                    } else {
                        "skipping"
                    };
                    warn(
                        line,
                        &format!("no closing regexp delimiter \"{d}\": {verb} this rule"),
                    );
                    continue;
                }
            };
            let matcher = match compile(&pattern, &mut |note| warn(line, note)) {
                Ok(m) => m,
                Err(CompileError::Flag(e)) => {
                    warn(line, &format!("{e}: skipping this rule"));
                    continue;
                }
                Err(CompileError::Pattern(e)) => {
                    warn(line, &e);
                    continue;
                }
            };
            if is_if {
                if !rest.trim().is_empty() {
                    warn(line, "ignoring extra text after IF pattern");
                }
                open_ifs.push((rules.len(), line));
                rules.push(Rule::If {
                    matcher,
                    negate: pattern.negate,
                    skip_to: 0,
                });
                continue;
            }
            let result = rest.trim();
            if result.is_empty() {
                warn(line, "no replacement text: using empty string");
            }
            match max_reference(result) {
                Err(e) => {
                    warn(line, &format!("{e}: skipping this rule"));
                    continue;
                }
                Ok(n) if n > 0 && pattern.negate => {
                    warn(
                        line,
                        "$number found in negative match replacement text: skipping this rule",
                    );
                    continue;
                }
                Ok(n) if n > matcher.groups() => {
                    warn(
                        line,
                        &format!("out of range replacement index \"{n}\": skipping this rule"),
                    );
                    continue;
                }
                Ok(_) => {}
            }
            rules.push(Rule::Match {
                matcher,
                negate: pattern.negate,
                result: result.to_string(),
            });
        }
        for (idx, line) in open_ifs.into_iter().rev() {
            warn(line, "IF has no matching ENDIF");
            let end = rules.len();
            if let Rule::If { skip_to, .. } = &mut rules[idx] {
                *skip_to = end;
            }
        }
        Ok(Rules { rules })
    }

    /// The first matching rule's result, substituted.
    pub(crate) fn lookup(&self, key: &str) -> Option<String> {
        let mut i = 0;
        while i < self.rules.len() {
            match &self.rules[i] {
                Rule::Match {
                    matcher,
                    negate,
                    result,
                } => match (matcher.captures(key), negate) {
                    (Some(caps), false) => return Some(substitute(result, key, &caps)),
                    (None, true) => return Some(substitute(result, key, &[])),
                    _ => {}
                },
                Rule::If {
                    matcher,
                    negate,
                    skip_to,
                } => {
                    if matcher.captures(key).is_some() == *negate {
                        i = *skip_to;
                        continue;
                    }
                }
                Rule::Endif => {}
            }
            i += 1;
        }
        None
    }
}

/// A pattern table of either engine: `regexp:` or `pcre:`.
pub struct PatternDict<M> {
    name: String,
    rules: Rules<M>,
}

impl<M> std::fmt::Debug for PatternDict<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternDict")
            .field("name", &self.name)
            .finish()
    }
}

impl<M: Matcher> PatternDict<M> {
    pub(crate) fn open(
        kind: &str,
        path: &str,
        compile: impl Fn(&Pattern, &mut dyn FnMut(&str)) -> Result<M, CompileError>,
    ) -> Result<PatternDict<M>, DictError> {
        Ok(PatternDict {
            name: format!("{kind}:{path}"),
            rules: Rules::read(kind, path, compile)?,
        })
    }
}

impl<M: Matcher> Dict for PatternDict<M> {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        Ok(self.rules.lookup(key))
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_syntax() {
        let (p, rest) = parse_pattern("/^(.*)@example\\.com$/i  $1").unwrap();
        assert_eq!(p.text, "^(.*)@example\\.com$");
        assert_eq!(p.flags, "i");
        assert!(!p.negate);
        assert_eq!(rest, "  $1");
        let (p, _) = parse_pattern("!#a/b#x").unwrap();
        assert!(p.negate);
        assert_eq!(p.text, "a/b");
        assert_eq!(
            parse_pattern("/abc").unwrap_err(),
            PatternError::NoClosingDelimiter('/')
        );
        assert_eq!(
            parse_pattern("foo bar").unwrap_err(),
            PatternError::Unrecognized
        );
    }

    #[test]
    fn substitution() {
        let caps = [Some((0, 7)), Some((0, 3)), None];
        assert_eq!(
            substitute("<$1>${1}$(1)$$ $2.", "abc@def", &caps),
            "<abc>abcabc$ ."
        );
        assert_eq!(max_reference("$1 ${12} $$3").unwrap(), 12);
        assert!(max_reference("${x}").is_err());
    }
}

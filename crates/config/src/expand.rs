//! `$name` expansion in parameter values, as postconf(5) defines it.
//!
//! Forms: `$name`, `${name}`, `$(name)`, `$$` for a literal `$`;
//! `${name?value}` (value when name is non-empty), `${name:value}` (value
//! when name is empty), the braced forms `${name?{value}}`, `${name:{value}}`,
//! `${name?{value1}:{value2}}`, and the Postfix 3.3+ logical forms
//! `${{text} == {text} ? {value1} : {value2}}` with `==`, `!=`, `<`, `<=`,
//! `>`, `>=` and the compatibility-level comparisons `<level`, `<=level`,
//! `>level`, `>=level`. Referenced values are expanded recursively; a
//! reference chain deeper than [`MAX_NESTING`] is a loop.

use std::cmp::Ordering;

/// How deep `$name` references may nest before we call it a loop (Postfix
/// uses the same bound in mac_expand).
pub const MAX_NESTING: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A reference loop: the name whose expansion went too deep, and what
    /// the expansion it appeared in had produced so far (Postfix reports
    /// that first when it is not empty).
    #[error("unreasonable macro call nesting: \"{0}\"")]
    Nesting(String, String),
    /// `${bad-name}`: the text before and after the bad character.
    #[error("attribute name syntax error at: \"...{0}>>>{1}\"")]
    NameSyntax(String, String),
    #[error("truncated macro reference: \"{0}\"")]
    Truncated(String),
    #[error("empty macro name: \"{0}\"")]
    EmptyName(String),
    #[error(
        "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \"...{0}>>>{1}\""
    )]
    Operator(String, String),
    #[error("\"{{expression}}\" expected at: \"...{0}>>>{1}\"")]
    Expression(String, String),
    #[error("syntax error in \"{0}\": {1}")]
    Syntax(String, &'static str),
}

impl ExpandError {
    /// Errors in the text itself, as opposed to a reference loop.
    pub fn is_syntax(&self) -> bool {
        !matches!(self, ExpandError::Nesting(..))
    }
}

/// Expands `text`; `lookup` returns the raw (unexpanded) value of a name, or
/// `None` for an unknown name. Names that `lookup` does not know are passed
/// to `undefined` and expand to the empty string.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    undefined: &mut dyn FnMut(&str),
) -> Result<String, ExpandError> {
    let mut ex = Expander { lookup, undefined };
    let mut out = String::with_capacity(text.len());
    ex.expand_into(text, 0, &mut out)?;
    Ok(out)
}

struct Expander<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    undefined: &'a mut dyn FnMut(&str),
}

impl Expander<'_> {
    fn expand_into(
        &mut self,
        text: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ExpandError> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let Some(off) = text[i..].find('$') else {
                out.push_str(&text[i..]);
                break;
            };
            out.push_str(&text[i..i + off]);
            let dollar = i + off;
            i = dollar + 1;
            match bytes.get(i) {
                Some(b'$') => {
                    out.push('$');
                    i += 1;
                }
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    let end = matching(bytes, i, open, close)
                        .ok_or_else(|| ExpandError::Truncated(text[dollar..].to_string()))?;
                    self.braced(&text[i + 1..end], depth, out)?;
                    i = end + 1;
                }
                Some(c) if is_name_byte(*c) => {
                    let start = i;
                    while i < bytes.len() && is_name_byte(bytes[i]) {
                        i += 1;
                    }
                    if let Err(ExpandError::Nesting(name, partial)) =
                        self.reference(&text[start..i], depth, out)
                    {
                        let partial = if partial.is_empty() {
                            out.clone()
                        } else {
                            partial
                        };
                        return Err(ExpandError::Nesting(name, partial));
                    }
                }
                _ => return Err(ExpandError::EmptyName(text.to_string())),
            }
        }
        Ok(())
    }

    /// The value of `name`, expanded.
    fn value(&mut self, name: &str, depth: usize) -> Result<String, ExpandError> {
        if depth > MAX_NESTING {
            return Err(ExpandError::Nesting(name.to_string(), String::new()));
        }
        match (self.lookup)(name) {
            Some(raw) => {
                let mut out = String::new();
                self.expand_into(&raw, depth + 1, &mut out)?;
                Ok(out)
            }
            None => {
                (self.undefined)(name);
                Ok(String::new())
            }
        }
    }

    fn reference(&mut self, name: &str, depth: usize, out: &mut String) -> Result<(), ExpandError> {
        let v = self.value(name, depth)?;
        out.push_str(&v);
        Ok(())
    }

    /// The inside of `${...}`.
    fn braced(&mut self, inner: &str, depth: usize, out: &mut String) -> Result<(), ExpandError> {
        let err = |why| ExpandError::Syntax(format!("${{{inner}}}"), why);
        let trimmed = inner.trim_start();
        if trimmed.starts_with('{') {
            return self.logical(trimmed, depth, out);
        }
        let name_len = inner.bytes().take_while(|&b| is_name_byte(b)).count();
        if name_len == 0 {
            return Err(ExpandError::NameSyntax(String::new(), inner.to_string()));
        }
        let name = &inner[..name_len];
        let rest = &inner[name_len..];
        let Some(op) = rest.chars().next() else {
            return self.reference(name, depth, out);
        };
        if op != '?' && op != ':' {
            return Err(ExpandError::NameSyntax(name.to_string(), rest.to_string()));
        }
        let nonempty = !self.value(name, depth)?.is_empty();
        let arg = &rest[1..];
        let (when_true, when_false) = if arg.trim_start().starts_with('{') {
            let mut parts = braced_parts(arg).ok_or_else(|| err("unbalanced brackets"))?;
            match (op, parts.len()) {
                ('?', 1) => (Some(parts.remove(0)), None),
                ('?', 2) => {
                    let f = parts.remove(1);
                    (Some(parts.remove(0)), Some(f))
                }
                (':', 1) => (None, Some(parts.remove(0))),
                _ => return Err(err("bad {value} list")),
            }
        } else if op == '?' {
            (Some(arg), None)
        } else {
            (None, Some(arg))
        };
        let chosen = if nonempty { when_true } else { when_false };
        if let Some(text) = chosen {
            self.expand_into(text, depth + 1, out)?;
        }
        Ok(())
    }

    /// `{left} OP {right} ? {then} : {else}`.
    fn logical(&mut self, text: &str, depth: usize, out: &mut String) -> Result<(), ExpandError> {
        let syntax = |why| ExpandError::Syntax(text.to_string(), why);
        let (left, rest) = take_braced(text).ok_or(syntax("unbalanced brackets"))?;
        let after_left = text.len() - rest.len();
        let rest = rest.trim_start();
        let op_len = rest
            .bytes()
            .take_while(|b| !b.is_ascii_whitespace() && *b != b'{')
            .count();
        let op = &rest[..op_len];
        if !is_operator(op) {
            // Postfix shows the rest without the expression's last brace.
            let shown = rest.strip_suffix('}').unwrap_or(rest);
            return Err(ExpandError::Operator(
                format!("{left}}}"),
                shown.to_string(),
            ));
        }
        let Some((right, rest)) = take_braced(&rest[op_len..]) else {
            let at = text.len() - rest.len() + op_len;
            let _ = after_left;
            return Err(ExpandError::Expression(
                text[..at].to_string(),
                text[at..].to_string(),
            ));
        };
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('?').ok_or(syntax("missing '?'"))?;
        let (then, rest) = take_braced(rest).ok_or(syntax("missing {value} after '?'"))?;
        let rest = rest.trim_start();
        let otherwise = if let Some(r) = rest.strip_prefix(':') {
            let (e, tail) = take_braced(r).ok_or(syntax("missing {value} after ':'"))?;
            if !tail.trim().is_empty() {
                return Err(syntax("text after {value}"));
            }
            Some(e)
        } else if rest.trim().is_empty() {
            None
        } else {
            return Err(syntax("text after {value}"));
        };
        let mut l = String::new();
        self.expand_into(left, depth + 1, &mut l)?;
        let mut r = String::new();
        self.expand_into(right, depth + 1, &mut r)?;
        let truth = compare(op, l.trim(), r.trim()).ok_or(syntax("unknown operator"))?;
        let chosen = if truth { Some(then) } else { otherwise };
        if let Some(text) = chosen {
            self.expand_into(text, depth + 1, out)?;
        }
        Ok(())
    }
}

fn is_operator(op: &str) -> bool {
    matches!(
        op,
        "==" | "!=" | "<" | "<=" | ">" | ">=" | "<level" | "<=level" | ">level" | ">=level"
    )
}

fn compare(op: &str, l: &str, r: &str) -> Option<bool> {
    let num = |f: fn(Ordering) -> bool| -> Option<bool> {
        let a: i64 = l.parse().ok()?;
        let b: i64 = r.parse().ok()?;
        Some(f(a.cmp(&b)))
    };
    let level = |f: fn(Ordering) -> bool| Some(f(compare_levels(l, r)));
    match op {
        "==" => Some(l == r),
        "!=" => Some(l != r),
        "<" => num(Ordering::is_lt),
        "<=" => num(Ordering::is_le),
        ">" => num(Ordering::is_gt),
        ">=" => num(Ordering::is_ge),
        "<level" => level(Ordering::is_lt),
        "<=level" => level(Ordering::is_le),
        ">level" => level(Ordering::is_gt),
        ">=level" => level(Ordering::is_ge),
        _ => None,
    }
}

/// Compares compatibility levels `major[.minor[.patch]]`; an empty level is 0.
pub fn compare_levels(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> [u64; 3] {
        let mut out = [0; 3];
        for (slot, part) in out.iter_mut().zip(s.split('.')) {
            *slot = part.parse().unwrap_or(0);
        }
        out
    };
    parts(a).cmp(&parts(b))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Index of the bracket that closes the one at `open_at`.
fn matching(bytes: &[u8], open_at: usize, open: u8, close: u8) -> Option<usize> {
    let mut level = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(open_at) {
        if b == open {
            level += 1;
        } else if b == close {
            level -= 1;
            if level == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Splits leading white space and one `{...}` group off `text`: the group's
/// inside and what follows it.
fn take_braced(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if !text.starts_with('{') {
        return None;
    }
    let end = matching(text.as_bytes(), 0, b'{', b'}')?;
    Some((&text[1..end], &text[end + 1..]))
}

/// `{a}` or `{a}:{b}` (white space allowed around the parts).
fn braced_parts(text: &str) -> Option<Vec<&str>> {
    let (first, rest) = take_braced(text)?;
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Some(vec![first]);
    }
    let (second, tail) = take_braced(rest.strip_prefix(':')?)?;
    tail.trim().is_empty().then(|| vec![first, second])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, vars: &[(&str, &str)]) -> Result<String, ExpandError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let lookup = move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        expand(text, &lookup, &mut |_| {})
    }

    #[test]
    fn plain_references() {
        let v = [("a", "A"), ("b", "[$a]"), ("empty", "")];
        assert_eq!(ex("$a ${a} $(a) $$a", &v).unwrap(), "A A A $a");
        assert_eq!(ex("x$b.y", &v).unwrap(), "x[A].y");
        assert_eq!(ex("$undefined|", &v).unwrap(), "|");
        assert_eq!(
            ex("cost $", &v),
            Err(ExpandError::EmptyName("cost $".into()))
        );
    }

    #[test]
    fn conditionals() {
        let v = [("a", "A"), ("empty", "")];
        assert_eq!(ex("${a?yes}${empty?no}", &v).unwrap(), "yes");
        assert_eq!(ex("${a:no}${empty:yes}", &v).unwrap(), "yes");
        assert_eq!(
            ex("${a?{x y}:{z}}|${empty?{x}:{z w}}", &v).unwrap(),
            "x y|z w"
        );
        assert_eq!(ex("${empty:{$a}}", &v).unwrap(), "A");
        assert_eq!(
            ex("${stress?{10}:{300}}s", &[("stress", "")]).unwrap(),
            "300s"
        );
        assert_eq!(
            ex("${stress?{10}:{300}}s", &[("stress", "yes")]).unwrap(),
            "10s"
        );
    }

    #[test]
    fn logical_expressions() {
        let level = |l: &str| {
            ex(
                "${{$compatibility_level} <level {2} ? {subnet} : {host}}",
                &[("compatibility_level", l)],
            )
            .unwrap()
        };
        assert_eq!(level("0"), "subnet");
        assert_eq!(level("1"), "subnet");
        assert_eq!(level("2"), "host");
        assert_eq!(level("3.6"), "host");
        let v = [("s", "dane")];
        assert_eq!(
            ex("${{$s} == {dane} ? {dane} : {may}}", &v).unwrap(),
            "dane"
        );
        assert_eq!(ex("${{$s} != {dane} ? {x}}", &v).unwrap(), "");
        assert_eq!(ex("${{10} < {9} ? {a} : {b}}", &v).unwrap(), "b");
        assert_eq!(
            ex(
                "${{$c} <level {1} ? {} : {permit_mynetworks, defer}}",
                &[("c", "3.6")]
            )
            .unwrap(),
            "permit_mynetworks, defer"
        );
    }

    #[test]
    fn loops_and_syntax_errors() {
        assert!(matches!(
            ex("$a", &[("a", "$b"), ("b", "$a")]),
            Err(ExpandError::Nesting(..))
        ));
        assert!(matches!(
            ex("$a", &[("a", "$a")]),
            Err(ExpandError::Nesting(..))
        ));
        assert_eq!(ex("x ${a", &[]), Err(ExpandError::Truncated("${a".into())));
        assert_eq!(
            ex("${my-origin}", &[]).unwrap_err().to_string(),
            "attribute name syntax error at: \"...my>>>-origin\""
        );
        assert!(matches!(
            ex("${{a} ~ {b} ? {c}}", &[]),
            Err(ExpandError::Operator(..))
        ));
    }

    #[test]
    fn levels_compare_numerically() {
        assert_eq!(compare_levels("3.10", "3.6"), Ordering::Greater);
        assert_eq!(compare_levels("2", "2.0.0"), Ordering::Equal);
        assert_eq!(compare_levels("", "1"), Ordering::Less);
    }
}

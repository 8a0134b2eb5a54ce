//! Tables held in memory: `texthash` (a postmap input file read at open
//! time), `inline:{ key=value, ... }`, `static:value` and `fail:name`.

use std::collections::HashMap;

use rostfix_config::value::{split_list, strip_braces};

use crate::{Dict, DictError, Duplicates, OpenOptions, fold, source};

/// `texthash:/path`: a postmap source file, read once.
#[derive(Debug)]
pub struct TextHash {
    name: String,
    map: HashMap<String, String>,
    order: Vec<String>,
}

impl TextHash {
    pub fn open(path: &str, opts: &OpenOptions) -> Result<TextHash, DictError> {
        let name = format!("texthash:{path}");
        let bytes = std::fs::read(path).map_err(|e| {
            DictError::retry(
                &name,
                format!("open database {path}: {}", rostfix_config::io_text(&e)),
            )
        })?;
        let src = source::parse_table(path, &bytes, opts.utf8, source::Reader::Texthash);
        for (_, w) in &src.warnings {
            crate::warn(w);
        }
        let mut map: HashMap<String, String> = HashMap::with_capacity(src.entries.len());
        let mut order = Vec::with_capacity(src.entries.len());
        for e in src.entries {
            let key = if opts.fold {
                fold(&e.key, opts.utf8).into_owned()
            } else {
                e.key.to_string()
            };
            if let Some(old) = map.get_mut(&key) {
                match opts.duplicates {
                    // Postfix names the key as the file spells it.
                    Duplicates::Warn => crate::warn(&format!(
                        "{path}, line {}: duplicate entry: \"{}\"",
                        e.line, e.key
                    )),
                    Duplicates::Replace => *old = e.value.into_owned(),
                    Duplicates::Ignore => {}
                }
                continue;
            }
            order.push(key.clone());
            map.insert(key, e.value.into_owned());
        }
        Ok(TextHash { name, map, order })
    }
}

impl Dict for TextHash {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        Ok(self.map.get(key).cloned())
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        Ok(self
            .order
            .iter()
            .map(|k| (k.clone(), self.map[k].clone()))
            .collect())
    }
}

/// `inline:{ key=value, { key = text with spaces } }`.
#[derive(Debug)]
pub struct Inline {
    name: String,
    entries: Vec<(String, String)>,
}

impl Inline {
    pub fn open(spec: &str, opts: &OpenOptions) -> Result<Inline, DictError> {
        let name = format!("inline:{spec}");
        let need =
            |what: &str| DictError::Config(format!("{what}; need \"inline:{{name=value...}}\""));
        let inner = spec
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| need(&format!("bad syntax: \"{name}\"")))?;
        let mut entries: Vec<(String, String)> = Vec::new();
        for item in split_list(inner) {
            let (k, v) = rostfix_config::main_cf::split_nameval(strip_braces(item))
                .map_err(|why| need(&format!("{why}: \"{name}\"")))?;
            let k = if opts.fold {
                fold(k, opts.utf8).into_owned()
            } else {
                k.to_string()
            };
            match entries.iter_mut().find(|(ek, _)| *ek == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => entries.push((k, v.to_string())),
            }
        }
        Ok(Inline { name, entries })
    }
}

impl Dict for Inline {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        Ok(self
            .entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone()))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        Ok(self.entries.clone())
    }
}

/// `static:value` or `static:{ value with spaces }`: every key finds it.
#[derive(Debug)]
pub struct Static {
    name: String,
    value: String,
}

impl Static {
    pub fn new(spec: &str) -> Result<Static, DictError> {
        let value = match spec.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| {
                    DictError::Config(format!(
                        "bad static:name syntax: missing '}}' in \"{spec}\""
                    ))
                })?
                .trim(),
            None => spec,
        };
        Ok(Static {
            name: format!("static:{spec}"),
            value: value.to_string(),
        })
    }
}

impl Dict for Static {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, DictError> {
        Ok(Some(self.value.clone()))
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

/// `nis:map`: Rostfix has no NIS client; like Postfix on a host without an
/// NIS domain, the table is there and finds nothing.
#[derive(Debug)]
pub struct Nis {
    name: String,
}

impl Nis {
    pub fn new(spec: &str) -> Nis {
        crate::warn("dict_nis_init: NIS domain name not set - NIS lookups disabled");
        Nis {
            name: format!("nis:{spec}"),
        }
    }
}

impl Dict for Nis {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, DictError> {
        Ok(None)
    }
}

/// `fail:name`: every lookup is a temporary failure (for testing how the
/// rest of the system copes).
#[derive(Debug)]
pub struct Fail {
    name: String,
}

impl Fail {
    pub fn new(spec: &str) -> Fail {
        Fail {
            name: format!("fail:{spec}"),
        }
    }
}

impl Dict for Fail {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, _key: &str) -> Result<Option<String>, DictError> {
        Err(DictError::retry(&self.name, "Application error"))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        Err(DictError::retry(&self.name, "Application error"))
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_static() {
        let o = OpenOptions::default();
        let t = Inline::open("{ a=1, B=2 , { c = three four } }", &o).unwrap();
        assert_eq!(t.lookup("a").unwrap().as_deref(), Some("1"));
        assert_eq!(t.lookup("b").unwrap().as_deref(), Some("2"));
        assert_eq!(t.lookup("c").unwrap().as_deref(), Some("three four"));
        assert_eq!(t.lookup("d").unwrap(), None);
        assert!(Inline::open("{ a }", &o).is_err());
        assert!(
            Inline::open("{ a = b }", &o).is_err(),
            "spaces around = need braces"
        );
        let s = Static::new("{ text with spaces }").unwrap();
        assert_eq!(
            s.lookup("anything").unwrap().as_deref(),
            Some("text with spaces")
        );
    }

    #[test]
    fn fail_is_temporary() {
        assert!(matches!(
            Fail::new("x").lookup("k"),
            Err(DictError::Retry { .. })
        ));
    }
}

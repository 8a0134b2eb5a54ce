//! Tables built from tables: `pipemap:{a, b, ...}` feeds each result into
//! the next table; `unionmap:{a, b, ...}` joins every table's result with
//! commas. Either gives "not found" when nothing is found, and a temporary
//! failure of any part is a temporary failure of the whole.

use rostfix_config::value::{split_list, strip_braces};

use crate::{Dict, DictError, OpenOptions};

fn open_parts(kind: &str, spec: &str, opts: &OpenOptions) -> Result<Vec<Box<dyn Dict>>, DictError> {
    let syntax = || {
        DictError::Config(format!(
            "bad syntax: \"{kind}:{spec}\"; need \"{kind}:{{type:name...}}\""
        ))
    };
    let inner = spec
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(syntax)?;
    let parts: Vec<Box<dyn Dict>> = split_list(inner)
        .into_iter()
        .map(|p| crate::open(strip_braces(p), opts))
        .collect::<Result<_, _>>()?;
    if parts.is_empty() {
        return Err(syntax());
    }
    Ok(parts)
}

/// A part's temporary failure, reported under the composite's name.
fn rename(err: DictError, name: &str) -> DictError {
    match err {
        DictError::Retry { reason, .. } => DictError::retry(name, reason),
        other => other,
    }
}

#[derive(Debug)]
pub struct Pipemap {
    name: String,
    parts: Vec<Box<dyn Dict>>,
}

impl Pipemap {
    pub fn open(spec: &str, opts: &OpenOptions) -> Result<Pipemap, DictError> {
        let parts = open_parts("pipemap", spec, opts)?;
        Ok(Pipemap {
            name: format!("pipemap:{spec}"),
            parts,
        })
    }
}

impl Dict for Pipemap {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        let mut current = key.to_string();
        for part in &self.parts {
            match part.lookup(&current).map_err(|e| rename(e, &self.name))? {
                Some(v) => current = v,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub struct Unionmap {
    name: String,
    parts: Vec<Box<dyn Dict>>,
}

impl Unionmap {
    pub fn open(spec: &str, opts: &OpenOptions) -> Result<Unionmap, DictError> {
        Ok(Unionmap {
            name: format!("unionmap:{spec}"),
            parts: open_parts("unionmap", spec, opts)?,
        })
    }
}

impl Dict for Unionmap {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        let mut found: Vec<String> = Vec::new();
        for part in &self.parts {
            if let Some(v) = part.lookup(key).map_err(|e| rename(e, &self.name))? {
                found.push(v);
            }
        }
        Ok((!found.is_empty()).then(|| found.join(",")))
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_and_union() {
        let o = OpenOptions::default();
        let p = crate::open("pipemap:{inline:{a=b}, inline:{b=c}}", &o).unwrap();
        assert_eq!(p.lookup("a").unwrap().as_deref(), Some("c"));
        assert_eq!(p.lookup("b").unwrap(), None);
        let u = crate::open("unionmap:{inline:{a=1}, inline:{a=2}, inline:{x=3}}", &o).unwrap();
        assert_eq!(u.lookup("A").unwrap().as_deref(), Some("1,2"));
        assert_eq!(u.lookup("q").unwrap(), None);
        let f = crate::open("unionmap:{inline:{a=1}, fail:x}", &o).unwrap();
        assert!(f.lookup("a").is_err());
    }
}

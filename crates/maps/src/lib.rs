//! Lookup tables (Postfix's `dict_*` and DATABASE_README): one trait for
//! every table type, the table types themselves, the lookup orders that the
//! manuals define per use (`order`), and the writers behind postmap and
//! postalias (`build`).
//!
//! A lookup answers found, not found, or a temporary failure: a table that
//! cannot be read is never "user unknown" (DESIGN.md section 6). Types:
//! `lmdb`, `cdb` (files interchangeable with Postfix's), `hash`, `btree` and
//! `dbm` (stored as lmdb under the `.db` name), `texthash`, `inline`,
//! `static`, `regexp`, `pcre`, `cidr`, `unix`, `fail`, `pipemap`,
//! `unionmap` and `proxy`. The SQL and LDAP clients come with a later issue
//! and plug into the same trait.
//!
//! Lookups are synchronous: every type here answers from memory or a mapped
//! file in well under a microsecond. Network tables will answer through a
//! connection pool behind the same trait (the engine calls them off its
//! reactor threads).

pub mod build;
pub mod cidr;
pub mod compose;
pub mod indexed;
pub mod order;
pub mod pattern;
pub mod pcre;
pub mod regexp;
pub mod simple;
pub mod source;
pub mod unix;

use std::fmt;
use std::sync::OnceLock;

pub use build::{BuildOptions, TableWriter};
use std::borrow::Cow;

static WARN: OnceLock<fn(&str)> = OnceLock::new();

/// Where tables send warnings about their content (a bad line, a duplicate
/// key): the commands print them as `prog: warning: ...`, the engine logs
/// them. Set once at start.
pub fn set_warning_sink(sink: fn(&str)) {
    let _ = WARN.set(sink);
}

pub(crate) fn warn(msg: &str) {
    match WARN.get() {
        Some(sink) => sink(msg),
        None => eprintln!("warning: {msg}"),
    }
}

/// A lookup that could not be answered. Callers defer (4xx), never bounce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DictError {
    /// The table exists but could not be read now (I/O, server down, the
    /// `fail:` type): try again later.
    #[error("table {table}: {reason}")]
    Retry { table: String, reason: String },
    /// The table is misconfigured (bad type, bad syntax at open time).
    #[error("{0}")]
    Config(String),
}

impl DictError {
    pub fn retry(table: &str, reason: impl fmt::Display) -> DictError {
        DictError::Retry {
            table: table.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A lookup table.
pub trait Dict: Send + Sync + fmt::Debug {
    /// `type:name` as the configuration spelled it.
    fn name(&self) -> &str;

    /// Looks `key` up: `Ok(Some(value))`, `Ok(None)` for not found.
    fn lookup(&self, key: &str) -> Result<Option<String>, DictError>;

    /// Every entry, for `postmap -s`; tables that cannot list their
    /// entries say so (Postfix: "sequence operation is not supported").
    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        Err(DictError::Config(format!(
            "table {}: sequence operation is not supported",
            self.name()
        )))
    }

    /// True for exact-match tables, whose keys are folded to lower case
    /// unless the caller asks otherwise; false for pattern tables (regexp,
    /// pcre, cidr), which see the key as given.
    fn is_fixed(&self) -> bool {
        true
    }
}

/// How a table is opened.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Fold keys of exact-match tables to lower case, at lookup and where a
    /// table is loaded from text (postmap -f turns this off).
    pub fold: bool,
    /// Fold with Unicode rules (`smtputf8_enable`); ASCII-only otherwise
    /// (postmap -u).
    pub utf8: bool,
    /// Which NUL convention indexed files are read (and written) with.
    pub nul: NulMode,
    /// Duplicate keys in tables loaded from text (texthash).
    pub duplicates: Duplicates,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            fold: true,
            utf8: true,
            nul: NulMode::Auto,
            duplicates: Duplicates::Warn,
        }
    }
}

/// What to do with a key seen twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Keep the first, warn about the others (postmap's default).
    Warn,
    /// Keep the last, silently (`-r`).
    Replace,
    /// Keep the first, silently (`-w`).
    Ignore,
}

/// A key folded to lower case: Unicode rules with `utf8`, else ASCII only.
pub fn fold(key: &str, utf8: bool) -> Cow<'_, str> {
    // One pass decides: nothing to do (the common case), ASCII folding, or
    // Unicode folding.
    let mut upper = false;
    for &b in key.as_bytes() {
        if b >= 0x80 && utf8 {
            return Cow::Owned(key.to_lowercase());
        }
        upper |= b.is_ascii_uppercase();
    }
    if upper {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        Cow::Borrowed(key)
    }
}

/// Whether keys and values of an indexed file carry a trailing NUL byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NulMode {
    /// The type's convention: lmdb (and the `.db` types) with NUL, cdb
    /// without, as Postfix writes them; readers try both.
    Auto,
    /// `postmap -N`.
    With,
    /// `postmap -n`.
    Without,
}

/// The table types this build supports, for `postconf -m`.
pub const TYPES: &[&str] = &[
    "btree", "cdb", "cidr", "dbm", "fail", "hash", "inline", "lmdb", "nis", "pcre", "pipemap",
    "proxy", "regexp", "static", "texthash", "unionmap", "unix",
];

/// Splits `type:name`.
pub fn split_spec(spec: &str) -> Result<(&str, &str), DictError> {
    match spec.split_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() => Ok((t, n)),
        _ => Err(DictError::Config(format!(
            "open dictionary: expecting \"type:name\" form instead of \"{spec}\""
        ))),
    }
}

/// Opens the table `type:name`.
pub fn open(spec: &str, opts: &OpenOptions) -> Result<Box<dyn Dict>, DictError> {
    let (kind, name) = split_spec(spec)?;
    let dict: Box<dyn Dict> = match kind {
        "lmdb" | "hash" | "btree" | "dbm" => {
            Box::new(indexed::LmdbDict::open(kind, name, opts.nul)?)
        }
        "cdb" => Box::new(indexed::CdbDict::open(name, opts.nul)?),
        "texthash" => Box::new(simple::TextHash::open(name, opts)?),
        "inline" => Box::new(simple::Inline::open(name, opts)?),
        "static" => Box::new(simple::Static::new(name)?),
        "fail" => Box::new(simple::Fail::new(name)),
        "nis" => Box::new(simple::Nis::new(name)),
        "regexp" => Box::new(regexp::open(name)?),
        "pcre" => Box::new(pcre::open(name)?),
        "cidr" => Box::new(cidr::CidrDict::open(name)?),
        "unix" => Box::new(unix::UnixDict::open(name)?),
        "pipemap" => Box::new(compose::Pipemap::open(name, opts)?),
        "unionmap" => Box::new(compose::Unionmap::open(name, opts)?),
        // Rostfix has no proxymap daemon to go through: the engine already
        // holds its tables open, so proxy: is the table itself.
        "proxy" => return open(name, opts),
        _ => {
            return Err(DictError::Config(format!(
                "unsupported dictionary type: {kind}"
            )));
        }
    };
    Ok(if opts.fold && dict.is_fixed() {
        Box::new(Folded {
            dict,
            utf8: opts.utf8,
        })
    } else {
        dict
    })
}

/// An exact-match table whose keys are folded to lower case before lookup.
#[derive(Debug)]
struct Folded {
    dict: Box<dyn Dict>,
    utf8: bool,
}

impl Dict for Folded {
    fn name(&self) -> &str {
        self.dict.name()
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        self.dict.lookup(&fold(key, self.utf8))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        self.dict.sequence()
    }

    fn is_fixed(&self) -> bool {
        true
    }
}

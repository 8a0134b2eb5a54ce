//! Indexed files that postmap/postalias build: `lmdb` (and `hash`, `btree`,
//! `dbm`, which Rostfix stores as lmdb under the `.db` name) and `cdb`.
//!
//! Formats are Postfix's own, so existing files keep working and Postfix
//! reads ours: lmdb is a single file (`MDB_NOSUBDIR`, no lock file; Postfix
//! locks with flock) with the entries in the unnamed database, keys and
//! values ending in a NUL byte; cdb is D. J. Bernstein's format with keys and
//! values without NUL. Readers try both conventions, as Postfix does.

use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions};

use crate::{Dict, DictError, NulMode};

/// The file suffix Postfix uses for an indexed type.
pub fn suffix(kind: &str) -> &'static str {
    match kind {
        "cdb" => ".cdb",
        "lmdb" => ".lmdb",
        _ => ".db",
    }
}

/// `name` + the type's suffix.
pub fn file_path(kind: &str, name: &str) -> PathBuf {
    PathBuf::from(format!("{name}{}", suffix(kind)))
}

/// A heed error as Postfix would word the underlying failure.
pub(crate) fn heed_text(e: &heed::Error) -> String {
    match e {
        heed::Error::Io(io) => rostfix_config::io_text(io),
        other => other.to_string(),
    }
}
/// Which key forms a reader tries: with NUL, then without (Auto), or one.
/// Looks `key` up in the forms `nul` allows, the NUL-terminated form first
/// when `nul_first` (the type's own convention first). Keys up to 255
/// bytes get their NUL on the stack: lookups allocate nothing.
fn find_forms<T>(
    key: &str,
    nul: NulMode,
    nul_first: bool,
    mut get: impl FnMut(&[u8]) -> Result<Option<T>, DictError>,
) -> Result<Option<T>, DictError> {
    let mut stack = [0u8; 256];
    let heap: Vec<u8>;
    let plain = key.as_bytes();
    let with: &[u8] = if plain.len() < stack.len() {
        stack[..plain.len()].copy_from_slice(plain);
        &stack[..=plain.len()]
    } else {
        heap = [plain, b"\0"].concat();
        &heap
    };
    let forms: &[&[u8]] = match (nul, nul_first) {
        (NulMode::With, _) => &[with],
        (NulMode::Without, _) => &[plain],
        (NulMode::Auto, true) => &[with, plain],
        (NulMode::Auto, false) => &[plain, with],
    };
    for k in forms {
        // LMDB refuses empty keys; no table holds one.
        if k.is_empty() {
            continue;
        }
        if let Some(v) = get(k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Postfix warns when a table is older than the text it was built from.
fn warn_if_stale(db: &Path, source: &str) {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(db_time), Some(src_time)) = (mtime(db), mtime(Path::new(source)))
        && db_time < src_time
    {
        crate::warn(&format!(
            "database {} is older than source file {source}",
            db.display()
        ));
    }
}

/// An open environment and its main database.
type Reader = (Env, Database<'static, Bytes, Bytes>);

/// Environments open for reading, by file.
static READERS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<PathBuf, Reader>>> =
    std::sync::LazyLock::new(Default::default);

/// Forgets the shared environment of `path` (before a writer replaces or
/// updates the file in this process).
pub(crate) fn forget_reader(path: &Path) {
    if let Ok(mut r) = READERS.lock() {
        r.remove(path);
    }
}

/// An lmdb file opened for reading.
pub struct LmdbDict {
    name: String,
    env: Env,
    db: Database<'static, Bytes, Bytes>,
    nul: NulMode,
}

impl std::fmt::Debug for LmdbDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbDict")
            .field("name", &self.name)
            .finish()
    }
}

/// Opens the lmdb environment at `path` (a single file).
pub(crate) fn open_env(path: &Path, writable: bool, map_size: usize) -> heed::Result<Env> {
    // heed resolves the directory of a file that does not exist yet, and
    // "" is not a directory.
    let dotted;
    let path = if path.parent().is_some_and(|p| p.as_os_str().is_empty()) {
        dotted = Path::new(".").join(path);
        dotted.as_path()
    } else {
        path
    };
    let mut opts = EnvOpenOptions::new();
    opts.map_size(map_size.max(1 << 20).next_multiple_of(4096));
    let mut flags = EnvFlags::NO_SUB_DIR | EnvFlags::NO_LOCK;
    if !writable {
        flags |= EnvFlags::READ_ONLY;
    }
    // SAFETY: `flags` is unsafe because NO_LOCK leaves concurrent access to
    // the caller. Rostfix never writes a table in place while others read
    // it: postmap builds a new file and renames it over the old one, so a
    // reader keeps its own (old) inode; the in-place updates of `postmap -i`
    // and `-d` happen only on an explicit administrator request, as with
    // Postfix, which also opens its lmdb files with MDB_NOLOCK.
    unsafe { opts.flags(flags) };
    // SAFETY: `open` is unsafe because the file is memory-mapped: it must
    // not be truncated or changed under the map. The same argument as above
    // holds; heed's own registry refuses to open one path twice.
    unsafe { opts.open(path) }
}

impl LmdbDict {
    pub fn open(kind: &str, name: &str, nul: NulMode) -> Result<LmdbDict, DictError> {
        let spec = format!("{kind}:{name}");
        let path = file_path(kind, name);
        let fail = |what: String| DictError::retry(&spec, what);
        let meta = std::fs::metadata(&path).map_err(|e| {
            fail(format!(
                "open database {}: {}",
                path.display(),
                rostfix_config::io_text(&e)
            ))
        })?;
        // heed allows one environment per file in a process: tables named
        // by several parameters or services share it.
        let shared = READERS.lock().ok().and_then(|r| r.get(&path).cloned());
        if let Some((env, db)) = shared {
            warn_if_stale(&path, name);
            return Ok(LmdbDict {
                name: spec,
                env,
                db,
                nul,
            });
        }
        let env = open_env(&path, false, meta.len() as usize).map_err(|e| {
            fail(format!(
                "open database {}: {}",
                path.display(),
                heed_text(&e)
            ))
        })?;
        let rtxn = env.read_txn().map_err(|e| fail(e.to_string()))?;
        let db = env
            .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                Ok(CommitOrAbort::<_, ()>::Commit(
                    opener.open_database::<Bytes, Bytes>(rtxn, None)?,
                ))
            })
            .map_err(|e| {
                fail(format!(
                    "open database {}: {}",
                    path.display(),
                    heed_text(&e)
                ))
            })?;
        let db = match db {
            CommitOrAbort::Commit(Some(db)) => db,
            _ => {
                return Err(fail(format!(
                    "open database {}: no main database",
                    path.display()
                )));
            }
        };
        if let Ok(mut r) = READERS.lock() {
            r.insert(path.clone(), (env.clone(), db));
        }
        warn_if_stale(&path, name);
        Ok(LmdbDict {
            name: spec,
            env,
            db,
            nul,
        })
    }
}

impl Dict for LmdbDict {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| DictError::retry(&self.name, e))?;
        find_forms(key, self.nul, true, |k| {
            let v = self
                .db
                .get(&rtxn, k)
                .map_err(|e| DictError::retry(&self.name, e))?;
            Ok(v.map(text))
        })
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, DictError> {
        let rtxn = self
            .env
            .read_txn()
            .map_err(|e| DictError::retry(&self.name, e))?;
        let mut out = Vec::new();
        for item in self
            .db
            .iter(&rtxn)
            .map_err(|e| DictError::retry(&self.name, e))?
        {
            let (k, v) = item.map_err(|e| DictError::retry(&self.name, e))?;
            out.push((text(k), text(v)));
        }
        Ok(out)
    }
}

/// A stored key or value as text, without its trailing NUL.
pub(crate) fn text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// A cdb file opened for reading.
pub struct CdbDict {
    name: String,
    cdb: cdb2::CDB,
    nul: NulMode,
}

impl std::fmt::Debug for CdbDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdbDict").field("name", &self.name).finish()
    }
}

impl CdbDict {
    pub fn open(name: &str, nul: NulMode) -> Result<CdbDict, DictError> {
        let path = file_path("cdb", name);
        // Postfix names an open cdb table after its file.
        let spec = format!("cdb:{}", path.display());
        let cdb = cdb2::CDB::open(&path).map_err(|e| {
            DictError::retry(
                &spec,
                format!(
                    "open database {}: {}",
                    path.display(),
                    rostfix_config::io_text(&e)
                ),
            )
        })?;
        warn_if_stale(&path, name);
        Ok(CdbDict {
            name: spec,
            cdb,
            nul,
        })
    }
}

impl Dict for CdbDict {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        find_forms(key, self.nul, false, |k| match self.cdb.get(k) {
            Some(Ok(v)) => Ok(Some(text(&v))),
            Some(Err(e)) => Err(DictError::retry(&self.name, e)),
            None => Ok(None),
        })
    }
}

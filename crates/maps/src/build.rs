//! Writers for indexed tables (postmap, postalias): a new file is written
//! beside the old one, synced, and renamed into place, so a reader never
//! sees half a table and always sees either the old or the new one.
//!
//! Entries are sorted in memory and appended to lmdb in key order (LMDB's
//! fastest path); duplicate keys follow postmap's rules: first one kept with
//! a warning (default), last one kept silently (`-r`), first kept silently
//! (`-w`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CommitOrAbort, PutFlags};

use crate::indexed::{file_path, heed_text, open_env};
use crate::source::Source;
use crate::{DictError, Duplicates, NulMode, fold};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub nul: NulMode,
    pub fold: bool,
    pub utf8: bool,
    pub duplicates: Duplicates,
    /// `postmap -p`: a new file gets mode 0644 instead of the source's.
    pub default_mode: bool,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            nul: NulMode::Auto,
            fold: true,
            utf8: true,
            duplicates: Duplicates::Warn,
            default_mode: false,
        }
    }
}

/// A table being written: every key and value in one arena (a million
/// entries are a million slices, not two million allocations), deduplicated
/// by sorting, then written in key order (lmdb) or input order (cdb).
#[derive(Debug)]
pub struct TableWriter {
    kind: String,
    name: String,
    path: PathBuf,
    nul: bool,
    arena: Vec<u8>,
    records: Vec<Record>,
}

/// One entry: spans of the arena (NUL included when the convention wants
/// it), the source line, and whether a duplicate rule dropped it.
#[derive(Debug, Clone, Copy)]
struct Record {
    key: (u32, u32),
    value: (u32, u32),
    line: u32,
    alive: bool,
}

/// Types postmap and postalias can write.
pub fn is_writable_type(kind: &str) -> bool {
    matches!(kind, "lmdb" | "cdb" | "hash" | "btree" | "dbm")
}

impl TableWriter {
    pub fn new(kind: &str, name: &str, nul: NulMode) -> Result<TableWriter, DictError> {
        if !crate::TYPES.contains(&kind) {
            return Err(DictError::Config(format!(
                "unsupported dictionary type: {kind}. Is the postfix-{kind} package installed?"
            )));
        }
        if !is_writable_type(kind) {
            return Err(DictError::Config(format!(
                "unsupported dictionary type: {kind} does not support bulk-mode creation."
            )));
        }
        let nul = match nul {
            NulMode::With => true,
            NulMode::Without => false,
            NulMode::Auto => kind != "cdb",
        };
        Ok(TableWriter {
            kind: kind.to_string(),
            name: name.to_string(),
            path: file_path(kind, name),
            nul,
            arena: Vec::new(),
            records: Vec::new(),
        })
    }

    /// The file this writer produces.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How duplicate-entry warnings name this table (Postfix names a cdb
    /// table after its source, the others as type:name).
    fn label(&self) -> String {
        if self.kind == "cdb" {
            self.name.clone()
        } else {
            format!("{}:{}", self.kind, self.name)
        }
    }

    fn span(&mut self, bytes: &[u8], nul: bool) -> (u32, u32) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        if nul {
            self.arena.push(0);
        }
        (start as u32, (self.arena.len() - start) as u32)
    }

    fn push(&mut self, key: &[u8], value: &[u8], line: usize, nul: bool) {
        let key = self.span(key, nul);
        let value = self.span(value, nul);
        self.records.push(Record {
            key,
            value,
            line: line as u32,
            alive: true,
        });
    }

    fn bytes(&self, (start, len): (u32, u32)) -> &[u8] {
        &self.arena[start as usize..(start + len) as usize]
    }

    /// Adds the entries of a parsed source file under the duplicate rules;
    /// returns the source's warnings and the duplicate warnings, in line
    /// order, as Postfix prints them while it reads.
    pub fn add_source(&mut self, source: Source<'_>, opts: &BuildOptions) -> Vec<String> {
        let mut warnings = source.warnings;
        let first = self.records.len();
        self.arena.reserve(
            source
                .entries
                .iter()
                .map(|e| e.key.len() + e.value.len() + 2)
                .sum(),
        );
        self.records.reserve(source.entries.len());
        for e in &source.entries {
            let key = if opts.fold {
                fold(&e.key, opts.utf8)
            } else {
                std::borrow::Cow::Borrowed(&*e.key)
            };
            self.push(key.as_bytes(), e.value.as_bytes(), e.line, self.nul);
        }
        warnings.extend(self.dedupe(first, opts.duplicates));
        warnings.sort_by_key(|(line, _)| *line);
        warnings.into_iter().map(|(_, w)| w).collect()
    }

    /// Adds one entry under the writer's NUL convention; a key already
    /// present keeps its first value.
    pub fn put(&mut self, key: &str, value: &str) {
        self.push(key.as_bytes(), value.as_bytes(), usize::MAX >> 32, self.nul);
    }

    /// Adds one record exactly as given (postalias's YP entries carry no
    /// NUL whatever the convention).
    pub fn add_raw(&mut self, key: &[u8], value: &[u8]) {
        self.push(key, value, usize::MAX >> 32, false);
    }

    /// Indexes of live records sorted by key, equal keys in input order.
    fn sorted(&self) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.records.len() as u32)
            .filter(|&i| self.records[i as usize].alive)
            .collect();
        idx.sort_by(|&a, &b| {
            self.bytes(self.records[a as usize].key)
                .cmp(self.bytes(self.records[b as usize].key))
        });
        idx
    }

    /// Applies `dups` to records from `first` on that repeat a key seen
    /// before them; returns (line, warning) pairs.
    fn dedupe(&mut self, first: usize, dups: Duplicates) -> Vec<(usize, String)> {
        let idx = self.sorted();
        let mut warnings = Vec::new();
        let mut run_start = 0;
        while run_start < idx.len() {
            let key = self.records[idx[run_start] as usize].key;
            let mut run_end = run_start + 1;
            while run_end < idx.len()
                && self.bytes(self.records[idx[run_end] as usize].key) == self.bytes(key)
            {
                run_end += 1;
            }
            if run_end - run_start > 1 {
                let keep = match dups {
                    Duplicates::Replace => idx[run_end - 1],
                    Duplicates::Warn | Duplicates::Ignore => idx[run_start],
                };
                for &i in &idx[run_start..run_end] {
                    if i == keep {
                        continue;
                    }
                    let r = self.records[i as usize];
                    if dups == Duplicates::Warn && i as usize >= first {
                        let shown = self.bytes(r.key);
                        let shown = shown.strip_suffix(b"\0").unwrap_or(shown);
                        warnings.push((
                            r.line as usize,
                            format!(
                                "{}: duplicate entry: \"{}\"",
                                self.label(),
                                String::from_utf8_lossy(shown)
                            ),
                        ));
                    }
                    self.records[i as usize].alive = false;
                }
            }
            run_start = run_end;
        }
        warnings
    }

    /// Writes the file: temporary name, sync, rename over the old one. The
    /// mode is the old file's when there is one, else the source file's
    /// (`source`) without group/other write, else 0644.
    pub fn commit(
        mut self,
        source: Option<&Path>,
        default_mode: bool,
    ) -> Result<PathBuf, DictError> {
        let label = format!("{}:{}", self.kind, self.name);
        let fail = |e: String| DictError::retry(&label, e);
        let mode = match fs::metadata(&self.path) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(_) => match source.and_then(|p| fs::metadata(p).ok()) {
                Some(m) if !default_mode => m.permissions().mode() & 0o755,
                _ => 0o644,
            },
        };
        // Entries added one by one (postalias's @) yield to earlier ones.
        self.dedupe(self.records.len(), Duplicates::Ignore);
        let order: Vec<u32> = if self.kind == "cdb" {
            (0..self.records.len() as u32)
                .filter(|&i| self.records[i as usize].alive)
                .collect()
        } else {
            // LMDB's fastest load is in key order with APPEND.
            self.sorted()
        };
        let pairs = order.iter().map(|&i| {
            let r = self.records[i as usize];
            (self.bytes(r.key), self.bytes(r.value))
        });
        crate::indexed::forget_reader(&self.path);
        let tmp = temp_path(&self.path);
        let written = match self.kind.as_str() {
            "cdb" => write_cdb(&tmp, pairs),
            _ => write_lmdb(&tmp, pairs.collect(), self.arena.len()),
        };
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(fail(format!("open database {}: {e}", self.path.display())));
        }
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode));
        fs::rename(&tmp, &self.path)
            .map_err(|e| fail(format!("rename {}: {e}", self.path.display())))?;
        sync_parent(&self.path);
        Ok(self.path)
    }
}

/// `dir/.name.tmpPID`, beside the final file so rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    dir.join(format!(".{name}.tmp{}", std::process::id()))
}

fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
}

fn write_lmdb(path: &Path, records: Vec<(&[u8], &[u8])>, payload: usize) -> Result<(), String> {
    let mut map_size = payload * 2 + records.len() * 32 + (8 << 20);
    loop {
        let _ = fs::remove_file(path);
        match try_write_lmdb(path, &records, map_size) {
            Err(heed::Error::Mdb(heed::MdbError::MapFull)) => map_size *= 2,
            other => return other.map_err(|e| heed_text(&e)),
        }
    }
}

fn try_write_lmdb(path: &Path, records: &[(&[u8], &[u8])], map_size: usize) -> heed::Result<()> {
    let env = open_env(path, true, map_size)?;
    let wtxn = env.write_txn()?;
    let db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            Ok(CommitOrAbort::<_, ()>::Commit(
                opener.create_database::<Bytes, Bytes>(wtxn, None)?,
            ))
        })?
        .unwrap_commit();
    let mut wtxn = env.write_txn()?;
    for (k, v) in records {
        // Records are sorted and unique, so APPEND is valid and skips the
        // B-tree search for every key.
        db.put_with_flags(&mut wtxn, PutFlags::APPEND, k, v)?;
    }
    // Commit syncs the data file (LMDB's default durability).
    wtxn.commit()?;
    Ok(())
}

fn write_cdb<'r>(
    path: &Path,
    records: impl Iterator<Item = (&'r [u8], &'r [u8])>,
) -> Result<(), String> {
    let io = |e: std::io::Error| rostfix_config::io_text(&e);
    let file = fs::File::create(path).map_err(io)?;
    let mut sync = file.try_clone().map_err(io)?;
    let mut make = cdb2::CDBMake::new(file).map_err(io)?;
    for (k, v) in records {
        make.add(k, v).map_err(io)?;
    }
    make.finish().map_err(io)?;
    sync.flush().map_err(io)?;
    sync.sync_all().map_err(io)
}

/// What an in-place update did: duplicate-entry warnings (with the index
/// of the add they are about) and, per key to delete, whether it was found.
pub type Updated = (Vec<(usize, String)>, Vec<bool>);

/// In-place changes to an lmdb-format table (`postmap -i`, `-d`), created
/// when missing. Adds follow the duplicate rules against what the table
/// already holds; returns the warnings and, for each key to delete,
/// whether it was found.
pub fn update_in_place(
    kind: &str,
    name: &str,
    adds: &[(String, String)],
    deletes: &[String],
    nul: NulMode,
    dups: Duplicates,
) -> Result<Updated, DictError> {
    let spec = format!("{kind}:{name}");
    if kind == "cdb" {
        return Err(DictError::Config(
            "dict_cdb_open: inappropriate open flags for cdb database - specify O_RDONLY or O_WRONLY|O_CREAT|O_TRUNC"
                .to_string(),
        ));
    }
    if !is_writable_type(kind) {
        return Err(DictError::Config(format!(
            "{spec} map requires O_RDONLY access mode"
        )));
    }
    let path = file_path(kind, name);
    crate::indexed::forget_reader(&path);
    let with_nul = nul != NulMode::Without;
    let fail = |e: String| DictError::retry(&spec, e);
    let size = fs::metadata(&path).map(|m| m.len() as usize).unwrap_or(0);
    let extra: usize = adds.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
    let env = open_env(&path, true, size * 2 + extra * 2 + (8 << 20)).map_err(|e| {
        fail(format!(
            "open database {}: {}",
            path.display(),
            heed_text(&e)
        ))
    })?;
    if size == 0 {
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
    }
    let wtxn = env.write_txn().map_err(|e| fail(e.to_string()))?;
    let db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            Ok(CommitOrAbort::<_, ()>::Commit(
                opener.create_database::<Bytes, Bytes>(wtxn, None)?,
            ))
        })
        .map_err(|e| fail(e.to_string()))?
        .unwrap_commit();
    let mut wtxn = env.write_txn().map_err(|e| fail(e.to_string()))?;
    let enc = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        if with_nul {
            b.push(0);
        }
        b
    };
    let mut warnings = Vec::new();
    for (i, (k, v)) in adds.iter().enumerate() {
        let key = enc(k);
        let exists = db
            .get(&wtxn, &key)
            .map_err(|e| fail(e.to_string()))?
            .is_some();
        match (exists, dups) {
            (true, Duplicates::Warn) => {
                warnings.push((i, format!("{spec}: duplicate entry: \"{k}\"")))
            }
            (true, Duplicates::Ignore) => {}
            _ => db
                .put(&mut wtxn, &key, &enc(v))
                .map_err(|e| fail(e.to_string()))?,
        }
    }
    let mut found = Vec::with_capacity(deletes.len());
    for k in deletes {
        let a = db
            .delete(&mut wtxn, &enc(k))
            .map_err(|e| fail(e.to_string()))?;
        let b = db
            .delete(&mut wtxn, k.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        found.push(a || b);
    }
    wtxn.commit().map_err(|e| fail(e.to_string()))?;
    Ok((warnings, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceEntry;
    use crate::{Dict, indexed::CdbDict, indexed::LmdbDict};

    fn entries(pairs: &[(&str, &str)]) -> Source<'static> {
        Source {
            entries: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| SourceEntry {
                    key: k.to_string().into(),
                    value: v.to_string().into(),
                    line: i + 1,
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn lmdb_round_trip_with_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("t").display().to_string();
        let mut w = TableWriter::new("lmdb", &name, NulMode::Auto).unwrap();
        let warnings = w.add_source(
            entries(&[("Key1", "v1"), ("b", "x"), ("key1", "v2")]),
            &BuildOptions::default(),
        );
        assert_eq!(
            warnings,
            [format!("lmdb:{name}: duplicate entry: \"key1\"")]
        );
        w.commit(None, false).unwrap();
        let d = LmdbDict::open("lmdb", &name, NulMode::Auto).unwrap();
        assert_eq!(d.lookup("key1").unwrap().as_deref(), Some("v1"));
        assert_eq!(d.lookup("nope").unwrap(), None);
        assert_eq!(
            d.sequence().unwrap(),
            [
                ("b".to_string(), "x".to_string()),
                ("key1".into(), "v1".into())
            ]
        );
        drop(d);
        let (warnings, found) = update_in_place(
            "lmdb",
            &name,
            &[("c".into(), "y".into()), ("key1".into(), "v3".into())],
            &["b".into(), "zz".into()],
            NulMode::Auto,
            Duplicates::Warn,
        )
        .unwrap();
        assert_eq!(found, [true, false]);
        assert_eq!(
            warnings,
            [(1, format!("lmdb:{name}: duplicate entry: \"key1\""))]
        );
        let d = LmdbDict::open("lmdb", &name, NulMode::Auto).unwrap();
        assert_eq!(
            d.lookup("key1").unwrap().as_deref(),
            Some("v1"),
            "the existing entry wins"
        );
        assert_eq!(d.lookup("c").unwrap().as_deref(), Some("y"));
        assert_eq!(d.lookup("b").unwrap(), None);
    }

    #[test]
    fn cdb_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("t").display().to_string();
        let mut w = TableWriter::new("cdb", &name, NulMode::Auto).unwrap();
        let opts = BuildOptions {
            duplicates: Duplicates::Replace,
            ..BuildOptions::default()
        };
        assert!(
            w.add_source(entries(&[("a", "1"), ("a", "2")]), &opts)
                .is_empty()
        );
        w.commit(None, false).unwrap();
        let d = CdbDict::open(&name, NulMode::Auto).unwrap();
        assert_eq!(d.lookup("a").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn missing_file_is_a_temporary_failure() {
        let err = LmdbDict::open("lmdb", "/nonexistent/t", NulMode::Auto).unwrap_err();
        assert!(matches!(err, DictError::Retry { .. }), "{err:?}");
        assert!(matches!(
            CdbDict::open("/nonexistent/t", NulMode::Auto).unwrap_err(),
            DictError::Retry { .. }
        ));
    }
}

//! Writers for indexed tables (postmap, postalias): a new file is written
//! beside the old one, synced, and renamed into place, so a reader never
//! sees half a table and always sees either the old or the new one.
//!
//! Entries are sorted in memory and appended to lmdb in key order (LMDB's
//! fastest path); duplicate keys follow postmap's rules: first one kept with
//! a warning (default), last one kept silently (`-r`), first kept silently
//! (`-w`).

use std::collections::HashMap;
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

/// The on-disk form of a table being written.
#[derive(Debug)]
pub struct TableWriter {
    kind: String,
    name: String,
    path: PathBuf,
    nul: bool,
    /// Raw (key, value) pairs in insertion order, NUL already applied.
    records: Vec<(Vec<u8>, Vec<u8>)>,
    index: HashMap<Vec<u8>, usize>,
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
            records: Vec::new(),
            index: HashMap::new(),
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

    /// Adds the entries of a parsed source file under the duplicate rules;
    /// returns the source's warnings and the duplicate warnings, in line
    /// order, as Postfix prints them while it reads.
    pub fn add_source(&mut self, source: Source, opts: &BuildOptions) -> Vec<String> {
        let mut warnings = source.warnings;
        for e in source.entries {
            let key = if opts.fold {
                fold(&e.key, opts.utf8).into_owned()
            } else {
                e.key
            };
            if let Some(w) = self.put(&key, &e.value, opts.duplicates) {
                warnings.push((e.line, w));
            }
        }
        warnings.sort_by_key(|(line, _)| *line);
        warnings.into_iter().map(|(_, w)| w).collect()
    }

    /// Adds one entry; a duplicate is handled per `dups` and may produce a
    /// warning.
    pub fn put(&mut self, key: &str, value: &str, dups: Duplicates) -> Option<String> {
        let k = self.encode(key.as_bytes());
        let v = self.encode(value.as_bytes());
        match self.index.get(&k) {
            Some(&i) => match dups {
                Duplicates::Warn => Some(format!("{}: duplicate entry: \"{key}\"", self.label())),
                Duplicates::Replace => {
                    self.records[i].1 = v;
                    None
                }
                Duplicates::Ignore => None,
            },
            None => {
                self.index.insert(k.clone(), self.records.len());
                self.records.push((k, v));
                None
            }
        }
    }

    /// Adds one record exactly as given (postalias's YP entries carry no
    /// NUL whatever the convention).
    pub fn add_raw(&mut self, key: &[u8], value: &[u8]) {
        self.index.insert(key.to_vec(), self.records.len());
        self.records.push((key.to_vec(), value.to_vec()));
    }

    fn encode(&self, bytes: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.extend_from_slice(bytes);
        if self.nul {
            v.push(0);
        }
        v
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
        if self.kind != "cdb" {
            // LMDB's fastest load is in key order with APPEND.
            self.records.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        let tmp = temp_path(&self.path);
        let written = match self.kind.as_str() {
            "cdb" => write_cdb(&tmp, &self.records),
            _ => write_lmdb(&tmp, &self.records),
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

fn write_lmdb(path: &Path, records: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
    let payload: usize = records.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    let mut map_size = payload * 2 + (8 << 20);
    loop {
        let _ = fs::remove_file(path);
        match try_write_lmdb(path, records, map_size) {
            Err(heed::Error::Mdb(heed::MdbError::MapFull)) => map_size *= 2,
            other => return other.map_err(|e| heed_text(&e)),
        }
    }
}

fn try_write_lmdb(
    path: &Path,
    records: &[(Vec<u8>, Vec<u8>)],
    map_size: usize,
) -> heed::Result<()> {
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
    env.force_sync()?;
    Ok(())
}

fn write_cdb(path: &Path, records: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
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

    fn entries(pairs: &[(&str, &str)]) -> Source {
        Source {
            entries: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| SourceEntry {
                    key: k.to_string(),
                    value: v.to_string(),
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

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
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CommitOrAbort, PutFlags};

use crate::indexed::{file_path, open_env};
use crate::source::SourceEntry;
use crate::{DictError, NulMode};

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

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub nul: NulMode,
    pub fold: bool,
    pub duplicates: Duplicates,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions {
            nul: NulMode::Auto,
            fold: true,
            duplicates: Duplicates::Warn,
        }
    }
}

/// The on-disk form of a table being written.
#[derive(Debug)]
pub struct TableWriter {
    kind: String,
    path: PathBuf,
    nul: bool,
    /// Raw (key, value) pairs, NUL already applied.
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Types postmap and postalias can write.
pub fn is_writable_type(kind: &str) -> bool {
    matches!(kind, "lmdb" | "cdb" | "hash" | "btree" | "dbm")
}

impl TableWriter {
    pub fn new(kind: &str, name: &str, nul: NulMode) -> Result<TableWriter, DictError> {
        if !is_writable_type(kind) {
            return Err(DictError::Config(format!(
                "unsupported dictionary type: {kind}"
            )));
        }
        let nul = match nul {
            NulMode::With => true,
            NulMode::Without => false,
            NulMode::Auto => kind != "cdb",
        };
        Ok(TableWriter {
            kind: kind.to_string(),
            path: file_path(kind, name),
            nul,
            records: Vec::new(),
        })
    }

    /// The file this writer produces.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds the entries of a source file under the duplicate rules; returns
    /// the warnings, in line order.
    pub fn add_entries(
        &mut self,
        source: &str,
        entries: Vec<SourceEntry>,
        opts: &BuildOptions,
    ) -> Vec<String> {
        let mut entries: Vec<SourceEntry> = entries;
        if opts.fold {
            for e in &mut entries {
                e.key.make_ascii_lowercase();
            }
        }
        // Stable sort: equal keys stay in file order.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut warnings: Vec<(usize, String)> = Vec::new();
        let mut kept: Vec<SourceEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last_mut() {
                Some(last) if last.key == e.key => match opts.duplicates {
                    Duplicates::Warn => warnings.push((
                        e.line,
                        format!("{source}, line {}: duplicate entry: \"{}\"", e.line, e.key),
                    )),
                    Duplicates::Replace => *last = e,
                    Duplicates::Ignore => {}
                },
                _ => kept.push(e),
            }
        }
        self.records.reserve(kept.len());
        for e in kept {
            let (k, v) = (
                self.encode(e.key.into_bytes()),
                self.encode(e.value.into_bytes()),
            );
            self.records.push((k, v));
        }
        warnings.sort_by_key(|(line, _)| *line);
        warnings.into_iter().map(|(_, w)| w).collect()
    }

    /// Adds one record exactly as given (postalias's YP entries carry no
    /// NUL whatever the convention).
    pub fn add_raw(&mut self, key: &[u8], value: &[u8]) {
        self.records.push((key.to_vec(), value.to_vec()));
    }

    /// Adds one record under the writer's NUL convention.
    pub fn add(&mut self, key: &str, value: &str) {
        let (k, v) = (
            self.encode(key.as_bytes().to_vec()),
            self.encode(value.as_bytes().to_vec()),
        );
        self.records.push((k, v));
    }

    fn encode(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if self.nul {
            bytes.push(0);
        }
        bytes
    }

    /// Writes the file: temporary name, sync, rename over the old one, with
    /// the permissions of `like` (the source file) when given.
    pub fn commit(mut self, like: Option<&Path>) -> Result<PathBuf, DictError> {
        let fail =
            |e: String| DictError::retry(&format!("{}:{}", self.kind, self.path.display()), e);
        self.records.sort_by(|a, b| a.0.cmp(&b.0));
        self.records.dedup_by(|b, a| a.0 == b.0);
        let tmp = temp_path(&self.path);
        let written = match self.kind.as_str() {
            "cdb" => write_cdb(&tmp, &self.records),
            _ => write_lmdb(&tmp, &self.records),
        };
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(fail(format!("write {}: {e}", self.path.display())));
        }
        if let Some(meta) = like.and_then(|p| fs::metadata(p).ok()) {
            let _ = fs::set_permissions(&tmp, meta.permissions());
        }
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
            other => return other.map_err(|e| e.to_string()),
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
    let file = fs::File::create(path).map_err(|e| e.to_string())?;
    let sync = file.try_clone().map_err(|e| e.to_string())?;
    let mut make = cdb2::CDBMake::new(file).map_err(|e| e.to_string())?;
    for (k, v) in records {
        make.add(k, v).map_err(|e| e.to_string())?;
    }
    make.finish().map_err(|e| e.to_string())?;
    let mut sync = sync;
    sync.flush().map_err(|e| e.to_string())?;
    sync.sync_all().map_err(|e| e.to_string())
}

/// In-place changes to an existing lmdb-format table (`postmap -i`, `-d`).
/// Returns, for each key to delete, whether it was found.
pub fn update_in_place(
    kind: &str,
    name: &str,
    adds: &[(String, String)],
    deletes: &[String],
    nul: NulMode,
) -> Result<Vec<bool>, DictError> {
    let spec = format!("{kind}:{name}");
    if kind == "cdb" {
        return Err(DictError::Config(format!(
            "table {spec}: update operation is not supported"
        )));
    }
    let path = file_path(kind, name);
    let with_nul = nul != NulMode::Without;
    let fail = |e: String| DictError::retry(&spec, e);
    let size = fs::metadata(&path).map(|m| m.len() as usize).unwrap_or(0);
    let extra: usize = adds.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
    let env = open_env(&path, true, size * 2 + extra * 2 + (8 << 20))
        .map_err(|e| fail(format!("open database {}: {e}", path.display())))?;
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
    for (k, v) in adds {
        db.put(&mut wtxn, &enc(k), &enc(v))
            .map_err(|e| fail(e.to_string()))?;
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
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dict, indexed::CdbDict, indexed::LmdbDict};

    fn entries(pairs: &[(&str, &str)]) -> Vec<SourceEntry> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, (k, v))| SourceEntry {
                key: k.to_string(),
                value: v.to_string(),
                line: i + 1,
            })
            .collect()
    }

    #[test]
    fn lmdb_round_trip_with_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("t").display().to_string();
        let mut w = TableWriter::new("lmdb", &name, NulMode::Auto).unwrap();
        let warnings = w.add_entries(
            "t",
            entries(&[("Key1", "v1"), ("b", "x"), ("key1", "v2")]),
            &BuildOptions::default(),
        );
        assert_eq!(warnings, ["t, line 3: duplicate entry: \"key1\""]);
        w.commit(None).unwrap();
        let d = LmdbDict::open("lmdb", &name).unwrap();
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
        let found = update_in_place(
            "lmdb",
            &name,
            &[("c".into(), "y".into())],
            &["b".into(), "zz".into()],
            NulMode::Auto,
        )
        .unwrap();
        assert_eq!(found, [true, false]);
        let d = LmdbDict::open("lmdb", &name).unwrap();
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
            w.add_entries("t", entries(&[("a", "1"), ("a", "2")]), &opts)
                .is_empty()
        );
        w.commit(None).unwrap();
        let d = CdbDict::open(&name).unwrap();
        assert_eq!(d.lookup("a").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn missing_file_is_a_temporary_failure() {
        let err = LmdbDict::open("lmdb", "/nonexistent/t").unwrap_err();
        assert!(matches!(err, DictError::Retry { .. }), "{err:?}");
        assert!(matches!(
            CdbDict::open("/nonexistent/t").unwrap_err(),
            DictError::Retry { .. }
        ));
    }
}

//! Queue files kept for reuse, in `$queue_directory/incoming` under
//! names that are not queue IDs (`.` and the ID the file had last).
//!
//! Why: ext4 does not hand out an inode freed in the last few seconds
//! again, and finding a free one means stepping over every recently freed
//! inode in the directory's block group. A queue that creates and removes
//! hundreds of files a second makes that scan the largest cost of a
//! message (perf: `find_inode_bit`, `recently_deleted`,
//! `find_get_block_common` took half the machine's CPU under
//! bench/smtp-bench). So a delivered queue file is emptied and renamed
//! into the pool, and the next message is written into it under its new
//! name.
//!
//! Why in incoming/: new mail is written there and (qmgr delivers it
//! where it arrived) freed there, so taking and freeing are renames
//! within one directory. A rename between two directories holds a lock
//! of the whole file system on Linux (`s_vfs_rename_mutex`), which every
//! smtpd and delivery thread would wait for (a `free/` directory cost
//! ~15% of qmgr's CPU in renames). Every reader of incoming/ passes over
//! the pool by its names ([`is_pooled`]): they are never queue IDs.
//!
//! Crash safety: a file is truncated before it is renamed into the pool;
//! one taken from it is empty until its new content is written and
//! committed. A crash leaves an empty (incomplete) file, which recovery
//! removes. Without a file system journal the truncation and the renames
//! may reach the disk in any order: a file taken again may then come
//! back after a crash with the old, delivered message under the new ID,
//! which is delivered twice (allowed: DESIGN.md section 4), never lost.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

/// The directory of a queue the pool lives in.
const POOL_DIR: &str = "incoming";

/// Whether a name in a queue directory is a pooled (empty, unused) file.
pub fn is_pooled(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// Files kept in the pool at most; more are removed when it is read.
const MAX_FREE: usize = 4096;

/// After a read of the directory found the pool empty, how long new
/// files are made without reading it again: incoming/ holds the whole
/// backlog when mail arrives faster than it leaves, which is also when
/// nothing is freed.
const DRY_SPELL: Duration = Duration::from_secs(1);

/// A queue's pool of empty files.
#[derive(Debug)]
pub struct Pool {
    dir: PathBuf,
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    /// Seen in the directory and not taken yet.
    seen: Vec<OsString>,
    /// The last read found none: no other read before this.
    dry_until: Option<Instant>,
}

impl Pool {
    pub fn new(queue_directory: &Path) -> Pool {
        Pool {
            dir: queue_directory.join(POOL_DIR),
            names: Mutex::default(),
        }
    }

    /// Moves a free file to `to` (never replacing one there) and opens it
    /// for writing. `Ok(None)`: the pool is empty. `AlreadyExists`: `to`
    /// is taken; the free file stays in the pool.
    pub fn take(&self, to: &Path) -> io::Result<Option<File>> {
        let mut refilled = false;
        loop {
            let name = {
                let mut guard = self.names.lock().unwrap_or_else(|e| e.into_inner());
                let dry = guard.dry_until.is_some_and(|t| Instant::now() < t);
                let names = &mut *guard;
                match names.seen.pop() {
                    Some(n) => n,
                    None if refilled || dry => return Ok(None),
                    None => {
                        // One directory read serves many messages.
                        refilled = true;
                        if let Ok(entries) = fs::read_dir(&self.dir) {
                            names.seen.extend(
                                entries
                                    .filter_map(Result::ok)
                                    .map(|e| e.file_name())
                                    .filter(|n| is_pooled(n)),
                            );
                        }
                        while names.seen.len() > MAX_FREE {
                            if let Some(extra) = names.seen.pop() {
                                let _ = fs::remove_file(self.dir.join(extra));
                            }
                        }
                        names.dry_until = names.seen.is_empty().then(|| Instant::now() + DRY_SPELL);
                        continue;
                    }
                }
            };
            let from = self.dir.join(&name);
            match renameat2(AT_FDCWD, &from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
                Ok(()) => {}
                // Taken meanwhile (or gone): the next one.
                Err(nix::errno::Errno::ENOENT) => continue,
                Err(nix::errno::Errno::EEXIST) => {
                    self.names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .seen
                        .push(name);
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                Err(e) => return Err(io::Error::from(e)),
            }
            match OpenOptions::new().write(true).open(to) {
                Ok(f) if f.metadata().is_ok_and(|m| m.len() == 0) => return Ok(Some(f)),
                // Not writable for this process (made by another user) or
                // not empty: not for reuse.
                _ => {
                    let _ = fs::remove_file(to);
                }
            }
        }
    }

    /// Empties a queue file that is no longer needed and moves it into
    /// the pool (or removes it when that fails).
    pub fn free(&self, path: &Path) -> io::Result<()> {
        let kept = nix::unistd::truncate(path, 0).is_ok()
            && path.file_name().is_some_and(|n| {
                let mut pooled = OsString::from(".");
                pooled.push(n);
                let moved = fs::rename(path, self.dir.join(&pooled)).is_ok();
                let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
                // Known to this process's takers without a read (a process
                // that only frees keeps no more names than the pool's size).
                if moved && names.seen.len() < MAX_FREE {
                    names.seen.push(pooled);
                }
                moved
            });
        if kept { Ok(()) } else { fs::remove_file(path) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn freed_files_come_back_empty_under_new_names() {
        let q = tempfile::tempdir().unwrap();
        for d in ["active", "incoming"] {
            fs::create_dir(q.path().join(d)).unwrap();
        }
        let pool = Pool::new(q.path());
        assert!(pool.take(&q.path().join("incoming/A")).unwrap().is_none());
        let done = q.path().join("active/OLD");
        fs::write(&done, b"an old message").unwrap();
        pool.free(&done).unwrap();
        assert!(!done.exists());
        let new = q.path().join("incoming/NEW");
        let mut f = pool.take(&new).unwrap().expect("a pooled file");
        assert_eq!(fs::read(&new).unwrap(), b"");
        f.write_all(b"x").unwrap();
        // Only NEW is left in incoming/: the pool is empty again.
        assert_eq!(fs::read_dir(q.path().join("incoming")).unwrap().count(), 1);
        // A taken name is never replaced.
        fs::write(q.path().join("active/OLD2"), b"y").unwrap();
        pool.free(&q.path().join("active/OLD2")).unwrap();
        let e = pool.take(&new).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&new).unwrap(), b"x");
    }
}

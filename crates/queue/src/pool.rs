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
//! Why the content stays: emptying a file frees its blocks and writing
//! the next message allocates them again, each a change of the block
//! bitmap that the next group commit writes (truncate alone was 5% of
//! the mail system's CPU under bench/smtp-bench). So a small file keeps
//! the delivered message's bytes, and the next message is written over
//! them (ending with filler where it is shorter, so the file keeps its
//! size too: [`crate::QueueFile::complete`]).
//!
//! Crash safety: a queue file is complete only when it ends with an end
//! record naming it (its queue ID). The bytes a taken file holds until
//! the new message is written over them end with the earlier message's
//! record, which names the earlier ID (never the new one: [`Pool::take`]
//! makes sure), so under the new name they are an incomplete file, as is
//! any mix of old and new bytes a crash leaves; recovery removes it.
//! Files whose end record does not name them (written by an older
//! Rostfix) and large ones are emptied before they are pooled. Without
//! a file system journal a rename into the pool may not reach the disk
//! before a crash: the delivered message then comes back under its own
//! name and is delivered twice (allowed: DESIGN.md section 4), never
//! lost.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
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

/// The largest file that keeps its content in the pool (at most
/// MAX_FREE times this, 256 MB, of disk held by earlier messages).
pub const KEEP_MAX: u64 = 64 * 1024;

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
    /// for writing, with the length of the earlier message it holds, to
    /// be written over. `Ok(None)`: the pool is empty. `AlreadyExists`:
    /// `to` is taken; the free file stays in the pool.
    pub fn take(&self, to: &Path) -> io::Result<Option<(File, u64)>> {
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
            // A file whose earlier message had the ID now wanted would end
            // with a record naming its new name (a wrapped-around short
            // ID): not for this one.
            if to
                .file_name()
                .is_some_and(|t| name.as_encoded_bytes()[1..] == *t.as_encoded_bytes())
            {
                let _ = fs::remove_file(self.dir.join(&name));
                continue;
            }
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
                // A second link (a crash in the middle of a rename, the
                // directory blocks written but not all, then fsck) is a
                // name under which the next message would be seen too.
                Ok(f) => match f.metadata() {
                    Ok(m) if m.len() <= KEEP_MAX && m.nlink() == 1 => {
                        return Ok(Some((f, m.len())));
                    }
                    _ => {
                        let _ = fs::remove_file(to);
                    }
                },
                // Not writable for this process (made by another user):
                // not for reuse.
                _ => {
                    let _ = fs::remove_file(to);
                }
            }
        }
    }

    /// Moves a queue file that is no longer needed into the pool (or
    /// removes it when that fails). `keep`: its content may stay
    /// ([`crate::file::Queued::reusable`]); else it is emptied first.
    pub fn free(&self, path: &Path, keep: bool) -> io::Result<()> {
        let kept = (keep || nix::unistd::truncate(path, 0).is_ok())
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
        pool.free(&done, false).unwrap();
        assert!(!done.exists());
        let new = q.path().join("incoming/NEW");
        let (mut f, prior) = pool.take(&new).unwrap().expect("a pooled file");
        assert_eq!((fs::read(&new).unwrap(), prior), (Vec::new(), 0));
        f.write_all(b"x").unwrap();
        // Only NEW is left in incoming/: the pool is empty again.
        assert_eq!(fs::read_dir(q.path().join("incoming")).unwrap().count(), 1);
        // A taken name is never replaced.
        fs::write(q.path().join("active/OLD2"), b"y").unwrap();
        pool.free(&q.path().join("active/OLD2"), false).unwrap();
        let e = pool.take(&new).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&new).unwrap(), b"x");
    }

    #[test]
    fn a_file_with_another_name_is_not_reused() {
        let q = tempfile::tempdir().unwrap();
        fs::create_dir(q.path().join("incoming")).unwrap();
        let pool = Pool::new(q.path());
        assert!(pool.take(&q.path().join("incoming/A")).unwrap().is_none());
        // As a crash in the middle of a rename can leave it: the message
        // under its name, and the pool name it was taken from.
        let message = q.path().join("incoming/MSG");
        fs::write(&message, b"a message").unwrap();
        fs::hard_link(&message, q.path().join("incoming/.OLD")).unwrap();
        let pool = Pool::new(q.path());
        assert!(pool.take(&q.path().join("incoming/NEW")).unwrap().is_none());
        assert_eq!(fs::read(&message).unwrap(), b"a message");
        assert!(!q.path().join("incoming/NEW").exists());
    }
}

//! Group commit (DESIGN.md section 4): callers that need what they wrote
//! on stable storage wait on a [`Syncer`], and everybody waiting at the
//! same moment shares one syncfs(2) per file system instead of paying an
//! fdatasync and a directory fsync each.
//!
//! syncfs writes back every dirty page and inode of the file system and
//! commits its journal, so data and directory entries (a queue file's
//! name, a Maildir file's link into `new/`) are covered alike. Without a
//! journal, ext4 flushes the disk's write cache inside syncfs before its
//! last writes of inode tables and directories, which could then sit in
//! that cache when syncfs returns: there, an fdatasync of the kept
//! descriptor after it flushes the cache again (a clean file's fdatasync
//! is just the flush), so a batch is on stable storage across a power
//! loss too. (With a journal, syncfs's commit is the last write.) Since
//! Linux 5.8 it also reports write-back errors that happened since the
//! descriptor it is called on was opened (and since its last report): the
//! syncer keeps one long-lived descriptor per file system, opened before
//! any file it vouches for was written, so a failed write-back fails the
//! whole batch (a false alarm from an unrelated file costs a 4xx, never a
//! lost message). An error is reported once, to the batch that finds it;
//! the write-back that failed may have been of a caller who began writing
//! before that batch ended and waits in a later one, so each caller says
//! when it began, and a failure reported since then fails it too.
//!
//! There is no timer: a batch starts as soon as the previous one ends, and
//! whoever arrived meanwhile rides in it. One waiter alone pays one syncfs;
//! under load the batches grow by themselves. (A syncer started with a
//! spacing, qmgr's, also lets that much time pass between the starts of
//! two batches, for fewer syncfs calls where nobody on the network waits.)

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A wake-up, run by the sync thread with a batch's outcome.
pub type Wake = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The outcome of one batch, shared by its waiters.
#[derive(Default)]
struct Batch {
    /// Devices to sync.
    devices: Vec<u64>,
    /// Wake-ups, run by the sync thread itself the moment the batch
    /// ends, with when each caller began writing.
    wake: Vec<(Instant, Wake)>,
    /// A waiter cannot bear the syncer's spacing ([`Syncer::wait`]).
    urgent: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("devices", &self.devices)
            .field("wake", &self.wake.len())
            .finish()
    }
}

#[derive(Debug, Default)]
struct State {
    /// One descriptor per file system, kept for the process's life.
    fds: HashMap<u64, (Arc<File>, Flush)>,
    /// The batch being gathered (runs next).
    next: Arc<Mutex<Batch>>,
    /// The sync thread waits for work (and must be woken for it).
    idle: bool,
    stopping: bool,
    /// When the latest batch that failed ended.
    failed_at: Option<Instant>,
    /// Batches made to fail (tests of what a failure does).
    #[cfg(test)]
    fail_next: usize,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the sync thread: a batch has waiters.
    work: Condvar,
}

/// The group committer. Cheap to clone; its thread ends with the last
/// clone.
#[derive(Debug, Clone)]
pub struct Syncer {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Stops the thread when the last [`Syncer`] goes.
#[derive(Debug)]
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        lock(&self.0.state).stopping = true;
        self.0.work.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop mail from being committed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Syncer {
    /// Starts the sync thread.
    pub fn start() -> io::Result<Syncer> {
        Syncer::start_spaced(Duration::ZERO)
    }

    /// Starts the sync thread, beginning each batch `spacing` after the
    /// previous one began at the earliest: fewer, larger batches, for
    /// waiters that can bear the wait (nobody on the network waits).
    pub fn start_spaced(spacing: Duration) -> io::Result<Syncer> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(&worker, spacing))?;
        Ok(Syncer {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// Returns when everything written so far to `file`'s file system,
    /// `file` and the directory entries naming it included, is on stable
    /// storage. `since`: when the caller began writing what it waits for
    /// (a write-back error reported after it fails the wait). The batch
    /// starts without the syncer's spacing: this is for a caller that
    /// holds what others wait for (a mailbox's locks).
    pub fn wait(&self, file: &File, since: Instant) -> io::Result<()> {
        self.wait_for(&[file], since, true)
    }

    /// [`Syncer::wait`] for several files (on one or more file systems),
    /// in the syncer's own time (its spacing).
    pub fn wait_all(&self, files: &[&File], since: Instant) -> io::Result<()> {
        self.wait_for(files, since, false)
    }

    fn wait_for(&self, files: &[&File], since: Instant, urgent: bool) -> io::Result<()> {
        // Each waiter is woken alone: one wake-up per waiter, none for
        // the waiters of other batches.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let wake = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.join(&self.devices(files)?, since, wake, urgent);
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other("group commit stopped")),
        }
    }

    /// Runs `wake` on the sync thread the moment the next batch that
    /// covers `files` ends. It must only wake someone (send on a
    /// channel): the next batch waits for it. This is how an async task
    /// waits for a commit without holding a thread.
    pub fn notify(&self, files: &[&File], since: Instant, wake: Wake) -> io::Result<()> {
        self.join(&self.devices(files)?, since, wake, false);
        Ok(())
    }

    /// Gives the syncer its descriptor for the file system `dir` is on
    /// (the queue directory, at start). Without one, the first file
    /// waited for there is kept: perhaps a Maildir file that never got a
    /// name (its delivery failed), whose inode then stays allocated for
    /// the process's life.
    pub fn know(&self, dir: &std::path::Path) -> io::Result<()> {
        let d = File::open(dir)?;
        let dev = d.metadata()?.dev();
        lock(&self.shared.state)
            .fds
            .entry(dev)
            .or_insert_with(|| (Arc::new(d), Flush::needed(dev)));
        Ok(())
    }

    /// The file systems of `files`, known to the syncer from now on.
    fn devices(&self, files: &[&File]) -> io::Result<Devices> {
        let mut devs = Vec::with_capacity(files.len());
        for f in files {
            devs.push(f.metadata()?.dev());
        }
        let mut st = lock(&self.shared.state);
        for (f, dev) in files.iter().zip(&devs) {
            if !st.fds.contains_key(dev) {
                st.fds
                    .insert(*dev, (Arc::new(f.try_clone()?), Flush::needed(*dev)));
            }
        }
        Ok(Devices(devs))
    }

    /// Adds `devices` and `wake` to the batch being gathered.
    fn join(&self, devices: &Devices, since: Instant, wake: Wake, urgent: bool) {
        // A busy sync thread finds the batch when its sync ends; only an
        // idle one (or one keeping its spacing, for an urgent waiter)
        // needs the (system call of a) wake-up.
        let idle = {
            let st = lock(&self.shared.state);
            let mut b = lock(&st.next);
            for dev in &devices.0 {
                if !b.devices.contains(dev) {
                    b.devices.push(*dev);
                }
            }
            b.wake.push((since, wake));
            b.urgent |= urgent;
            st.idle || urgent
        };
        if idle {
            self.shared.work.notify_one();
        }
    }
}

/// Whether a file system's syncfs leaves writes in the disk's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// syncfs ends with the flush (a journal's commit).
    Done,
    /// ext4 without a journal: flush once more after syncfs.
    After,
}

impl Flush {
    /// ext4 says `<none>` for the journal of a file system that has none
    /// (/sys/fs/ext4/NAME/journal_task, NAME the block device's).
    fn needed(dev: u64) -> Flush {
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        let journal = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .and_then(|name| {
                let mut path = std::path::PathBuf::from("/sys/fs/ext4");
                path.push(name);
                std::fs::read_to_string(path.join("journal_task")).ok()
            });
        match journal {
            Some(task) if task.trim() == "<none>" => Flush::After,
            _ => Flush::Done,
        }
    }
}

/// File systems a [`Syncer`] knows.
#[derive(Debug, Clone)]
struct Devices(Vec<u64>);

fn run(shared: &Shared, spacing: Duration) {
    // When the last batch began.
    let mut last: Option<Instant> = None;
    loop {
        let (batch, fds) = {
            let mut st = lock(&shared.state);
            // The spacing: whoever arrives meanwhile rides in the next
            // batch, unless an urgent waiter comes.
            if let Some(next) = last.map(|t| t + spacing) {
                loop {
                    let now = Instant::now();
                    if st.stopping || now >= next || lock(&st.next).urgent {
                        break;
                    }
                    st = match shared.work.wait_timeout(st, next - now) {
                        Ok((st, _)) => st,
                        Err(e) => e.into_inner().0,
                    };
                }
            }
            loop {
                if st.stopping {
                    return;
                }
                if !lock(&st.next).devices.is_empty() {
                    break;
                }
                st.idle = true;
                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle = false;
            }
            last = Some(Instant::now());
            let batch = std::mem::take(&mut st.next);
            let fds: Vec<(Arc<File>, Flush)> = lock(&batch)
                .devices
                .iter()
                .filter_map(|d| st.fds.get(d).cloned())
                .collect();
            (batch, fds)
        };
        let mut failed = None;
        #[cfg(test)]
        let fds = {
            let mut st = lock(&shared.state);
            if st.fail_next > 0 {
                st.fail_next -= 1;
                failed = Some("injected failure".to_string());
                Vec::new()
            } else {
                fds
            }
        };
        for (fd, flush) in fds {
            if let Err(e) = nix::unistd::syncfs(&*fd) {
                failed = Some(format!("syncfs: {e}"));
            } else if flush == Flush::After
                && let Err(e) = nix::unistd::fdatasync(&*fd)
            {
                failed = Some(format!("fdatasync: {e}"));
            }
        }
        let wake = std::mem::take(&mut lock(&batch).wake);
        let failed_at = {
            let mut st = lock(&shared.state);
            if failed.is_some() {
                st.failed_at = Some(Instant::now());
            }
            st.failed_at
        };
        for (since, w) in wake {
            w(match (&failed, failed_at) {
                (Some(e), _) => Err(e.clone()),
                (None, Some(t)) if t > since => {
                    Err("a write-back error was reported since this was written".to_string())
                }
                (None, _) => Ok(()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn many_waiters_all_return() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        std::thread::scope(|s| {
            for i in 0..16 {
                let (syncer, dir) = (syncer.clone(), dir.path());
                s.spawn(move || {
                    for j in 0..20 {
                        let since = Instant::now();
                        let mut f = File::create(dir.join(format!("{i}-{j}"))).unwrap();
                        f.write_all(b"x").unwrap();
                        syncer.wait(&f, since).unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 320);
    }

    /// Where the outcome of the batch that covers `f` (through notify)
    /// arrives.
    fn notified(syncer: &Syncer, f: &File) -> std::sync::mpsc::Receiver<Result<(), String>> {
        let (tx, rx) = std::sync::mpsc::channel();
        syncer
            .notify(&[f], Instant::now(), Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        rx
    }

    #[test]
    fn notify_wakes_after_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        let rx = notified(&syncer, &f);
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok(Ok(())));
    }

    #[test]
    fn an_urgent_waiter_does_not_wait_for_the_spacing() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start_spaced(Duration::from_secs(3)).unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        let t0 = Instant::now();
        // The first batch has nothing to keep its distance from.
        syncer.wait_all(&[&f], Instant::now()).unwrap();
        // A mailbox's locks are held while this waits.
        syncer.wait(&f, Instant::now()).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        // Others keep it.
        let rx = notified(&syncer, &f);
        assert!(rx.recv_timeout(Duration::from_secs(1)).is_err());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), Ok(()));
    }

    #[test]
    fn a_failure_fails_whoever_wrote_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        let mut f = File::create(dir.path().join("x")).unwrap();
        let before = Instant::now();
        f.write_all(b"x").unwrap();
        lock(&syncer.shared.state).fail_next = 1;
        assert!(syncer.wait(&f, Instant::now()).is_err());
        // The next batch succeeds, but the failure may have been this
        // caller's write-back, reported to the batch before.
        let err = syncer.wait(&f, before).unwrap_err();
        assert!(err.to_string().contains("write-back error"), "{err}");
        // Who began writing after the failure is not held to it.
        syncer.wait(&f, Instant::now()).unwrap();
    }

    #[test]
    fn a_known_directory_is_what_it_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        syncer.know(dir.path()).unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        syncer.wait(&f, Instant::now()).unwrap();
        let st = lock(&syncer.shared.state);
        assert_eq!(st.fds.len(), 1);
        assert!(
            st.fds
                .values()
                .all(|(fd, _)| fd.metadata().unwrap().is_dir())
        );
    }

    #[test]
    fn thread_stops_with_the_last_clone() {
        let syncer = Syncer::start().unwrap();
        let shared = syncer.shared.clone();
        drop(syncer);
        // The worker holds no reference of its own once stopped.
        for _ in 0..200 {
            if Arc::strong_count(&shared) == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the sync thread did not stop");
    }
}

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
//! loss too. (With a journal, syncfs's commit is the last write.) Since Linux 5.8
//! it also reports write-back errors that happened since the descriptor it
//! is called on was opened (and since its last report): the syncer keeps
//! one long-lived descriptor per file system, opened before any file it
//! vouches for was written, so a failed write-back fails the whole batch
//! (a false alarm from an unrelated file costs a 4xx, never a lost
//! message).
//!
//! There is no timer: a batch starts as soon as the previous one ends, and
//! whoever arrived meanwhile rides in it. One waiter alone pays one syncfs;
//! under load the batches grow by themselves.
//!
//! A syncfs makes durable what every process wrote to the file system
//! before it started, so the mail system's two processes share their
//! batches ([`Peer`]): smtpd, whose commits run back to back while mail
//! arrives, tells qmgr of each; a delivery's commit (nobody waits on its
//! other end) rides in one of smtpd's that started after it joined, and
//! qmgr syncs itself only when none comes soon. Without that, qmgr's
//! batches took half the syncs, and with them disk and CPU from the
//! commits that clients wait for.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::socket::MsgFlags;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

/// A wake-up, run by the sync thread with a batch's outcome.
pub type Wake = Box<dyn FnOnce(Result<(), String>) + Send>;

/// One caller waiting for a batch.
struct Waiter {
    /// When it joined (after its writes): [`now`].
    joined: u64,
    devices: Vec<u64>,
    /// Run by the sync thread itself the moment its batch ends.
    wake: Wake,
}

#[derive(Default)]
struct State {
    /// One descriptor per file system, kept for the process's life.
    fds: HashMap<u64, (Arc<File>, Flush)>,
    /// The batch being gathered (runs next).
    next: Vec<Waiter>,
    /// The sync thread waits for work (and must be woken for it).
    idle: bool,
    stopping: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("fds", &self.fds)
            .field("next", &self.next.len())
            .field("idle", &self.idle)
            .field("stopping", &self.stopping)
            .finish()
    }
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

/// How a [`Syncer`] shares batches with another process's (over a
/// datagram socket pair the master keeps, so either side may restart).
#[derive(Debug)]
pub enum Peer {
    /// Alone.
    None,
    /// Tells the other side of each batch it ran (smtpd).
    Tell(UnixDatagram),
    /// Lets a waiter ride in a batch of the other side's that started
    /// after it joined, and runs its own when none has come within the
    /// given time (qmgr).
    Hear(UnixDatagram, Duration),
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

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process, which
/// is what lets a batch of one process count for another's waiters.
fn now() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec() as u64)
    })
}

impl Syncer {
    /// Starts the sync thread.
    pub fn start() -> io::Result<Syncer> {
        Syncer::start_with(Peer::None)
    }

    /// Starts the sync thread, sharing batches with `peer`.
    pub fn start_with(peer: Peer) -> io::Result<Syncer> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run(&worker, &peer))?;
        Ok(Syncer {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// Returns when everything written so far to `file`'s file system,
    /// `file` and the directory entries naming it included, is on stable
    /// storage.
    pub fn wait(&self, file: &File) -> io::Result<()> {
        self.wait_all(&[file])
    }

    /// [`Syncer::wait`] for several files (on one or more file systems).
    pub fn wait_all(&self, files: &[&File]) -> io::Result<()> {
        // Each waiter is woken alone: one wake-up per waiter, none for
        // the waiters of other batches.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.notify(
            files,
            Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        )?;
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
    pub fn notify(&self, files: &[&File], wake: Wake) -> io::Result<()> {
        let devices = self.devices(files)?;
        self.join(devices, wake);
        Ok(())
    }

    /// The file systems of `files`, known to the syncer from now on.
    fn devices(&self, files: &[&File]) -> io::Result<Vec<u64>> {
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
        devs.sort_unstable();
        devs.dedup();
        Ok(devs)
    }

    /// Adds a waiter to the batch being gathered.
    fn join(&self, devices: Vec<u64>, wake: Wake) {
        // A busy sync thread finds the batch when its sync ends; only an
        // idle one needs the (system call of a) wake-up.
        let idle = {
            let mut st = lock(&self.shared.state);
            st.next.push(Waiter {
                joined: now(),
                devices,
                wake,
            });
            st.idle
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

/// What one side tells the other of a batch, per file system: its
/// device, when its syncfs started and when it ended ([`now`]), and
/// whether it succeeded (1) or not (0), in native byte order.
const TOLD: usize = 32;

/// What a side heard of the other's batches.
#[derive(Debug, Default)]
struct Heard {
    /// Per file system.
    devices: HashMap<u64, Outcomes>,
    /// The end of the latest batch (any).
    latest: u64,
}

/// The outcome of the other side's batches on one file system.
#[derive(Debug, Default, Clone, Copy)]
struct Outcomes {
    /// The start of the latest batch that succeeded.
    ok_start: u64,
    /// The end of the latest that failed.
    failed_end: u64,
}

fn tell(sock: &UnixDatagram, dev: u64, start: u64, end: u64, ok: bool) {
    let mut told = [0u8; TOLD];
    for (i, v) in [dev, start, end, u64::from(ok)].into_iter().enumerate() {
        told[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    // Never waits: when qmgr is away the socket fills, and what it
    // missed only makes its waiters run their own batch.
    let _ = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(sock),
        &told,
        MsgFlags::MSG_DONTWAIT,
    );
}

/// Takes in all the other side told so far.
fn hear(sock: &UnixDatagram, heard: &mut Heard) {
    let mut told = [0u8; TOLD];
    while let Ok(n) = nix::sys::socket::recv(
        std::os::fd::AsRawFd::as_raw_fd(sock),
        &mut told,
        MsgFlags::MSG_DONTWAIT,
    ) {
        if n != TOLD {
            continue;
        }
        let v = |i: usize| u64::from_ne_bytes(told[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        heard.latest = heard.latest.max(v(2));
        let h = heard.devices.entry(v(0)).or_default();
        if v(3) == 1 {
            h.ok_start = h.ok_start.max(v(1));
        } else {
            h.failed_end = h.failed_end.max(v(2));
        }
    }
}

impl Waiter {
    /// Whether the other side made this waiter's writes durable: on each
    /// of its file systems a batch that started after it joined ended
    /// well, and none failed since it joined. (A failure may have been
    /// the write-back of this waiter's own pages; its own batch then
    /// reports it through this side's descriptor.)
    fn covered(&self, heard: &Heard) -> bool {
        self.devices.iter().all(|d| {
            heard
                .devices
                .get(d)
                .is_some_and(|h| h.ok_start > self.joined && h.failed_end < self.joined)
        })
    }
}

/// Wakes the waiters the other side's batches covered, waiting for such
/// batches until the oldest waiter has waited `wait`; whether none is
/// left. When the other side ran no batch for that long, none is coming
/// (no mail arrives): its own batch runs at once.
fn ride(shared: &Shared, sock: &UnixDatagram, wait: Duration, heard: &mut Heard) -> bool {
    let wait = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
    loop {
        hear(sock, heard);
        let (done, left, elsewhere, oldest) = {
            let mut st = lock(&shared.state);
            let (done, left): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut st.next)
                .into_iter()
                .partition(|w| w.covered(heard));
            // A file system the other side never syncs (Maildirs
            // elsewhere): no use waiting.
            let elsewhere = left
                .iter()
                .any(|w| w.devices.iter().any(|d| !heard.devices.contains_key(d)));
            let oldest = left.iter().map(|w| w.joined).min().unwrap_or(0);
            let n = left.len();
            st.next = left;
            (done, n, elsewhere, oldest)
        };
        for w in done {
            (w.wake)(Ok(()));
        }
        if left == 0 {
            return true;
        }
        if elsewhere {
            return false;
        }
        let t = now();
        let due = oldest.saturating_add(wait).saturating_sub(t);
        if due == 0 || heard.latest.saturating_add(wait) < t {
            return false;
        }
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let _ = ppoll(
            &mut fds,
            Some(TimeSpec::from(Duration::from_nanos(due))),
            None,
        );
    }
}

fn run(shared: &Shared, peer: &Peer) {
    let mut heard = Heard::default();
    loop {
        {
            let mut st = lock(&shared.state);
            loop {
                if st.stopping {
                    return;
                }
                if !st.next.is_empty() {
                    break;
                }
                st.idle = true;
                st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                st.idle = false;
            }
        }
        if let Peer::Hear(sock, wait) = peer
            && ride(shared, sock, *wait, &mut heard)
        {
            continue;
        }
        let (batch, fds) = {
            let mut st = lock(&shared.state);
            let batch = std::mem::take(&mut st.next);
            let mut devices: Vec<u64> = batch
                .iter()
                .flat_map(|w| w.devices.iter().copied())
                .collect();
            devices.sort_unstable();
            devices.dedup();
            let fds: Vec<(u64, Arc<File>, Flush)> = devices
                .iter()
                .filter_map(|d| st.fds.get(d).map(|(f, flush)| (*d, f.clone(), *flush)))
                .collect();
            (batch, fds)
        };
        let mut failed = None;
        for (dev, fd, flush) in fds {
            let start = now();
            let outcome = nix::unistd::syncfs(&*fd)
                .map_err(|e| format!("syncfs: {e}"))
                .and_then(|()| match flush {
                    Flush::After => {
                        nix::unistd::fdatasync(&*fd).map_err(|e| format!("fdatasync: {e}"))
                    }
                    Flush::Done => Ok(()),
                });
            if let Peer::Tell(sock) = peer {
                tell(sock, dev, start, now(), outcome.is_ok());
            }
            if let Err(e) = outcome {
                failed = Some(e);
            }
        }
        let outcome = failed.map_or(Ok(()), Err);
        for w in batch {
            (w.wake)(outcome.clone());
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
                        let mut f = File::create(dir.join(format!("{i}-{j}"))).unwrap();
                        f.write_all(b"x").unwrap();
                        syncer.wait(&f).unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 320);
    }

    #[test]
    fn notify_wakes_after_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        let f = File::create(dir.path().join("x")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        syncer
            .notify(&[&f], Box::new(move |r| tx.send(r).unwrap()))
            .unwrap();
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok(Ok(())));
    }

    #[test]
    fn a_waiter_rides_in_the_peers_next_batch() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let (tell, hear) = UnixDatagram::pair().unwrap();
        let smtpd = Syncer::start_with(Peer::Tell(tell)).unwrap();
        // qmgr would run its own batch only after a minute.
        let qmgr = Syncer::start_with(Peer::Hear(hear, Duration::from_secs(60))).unwrap();
        let a = File::create(dir.path().join("a")).unwrap();
        let b = File::create(dir.path().join("b")).unwrap();
        // A batch of smtpd's before the waiter joined does not count.
        smtpd.wait(&a).unwrap();
        let t0 = Instant::now();
        let rider = std::thread::spawn(move || {
            qmgr.wait(&b).unwrap();
            t0.elapsed()
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !rider.is_finished(),
            "an earlier batch covered a later waiter"
        );
        smtpd.wait(&a).unwrap();
        let took = rider.join().unwrap();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(30));
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

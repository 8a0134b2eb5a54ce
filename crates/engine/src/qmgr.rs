//! qmgr(8), for this stage: takes each new queue file from incoming,
//! hands each recipient to the agent its route names (virtual(8),
//! error(8), discard(8); transports Rostfix does not have yet defer),
//! marks each done as it is durable, and removes the file when all are
//! done. Queue files found at start (after a crash) are delivered too.
//! A file is delivered by one delivery at a time: the set of files in
//! flight ([`Active`]) keeps this qmgr from taking one twice, and a lock
//! on the file, taken on the file its name still names, keeps a second
//! qmgr (after a reload) and postsuper from taking it.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rostfix_queue::file::QueueError;
use rostfix_queue::file::Recipient;
use rostfix_queue::file::mark_done;
use rostfix_queue::{QueueId, QueueReader, Syncer, deferlog};
use rostfix_smtp::path::external_form;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::bounce::{self, Kind};
use crate::local_agent::Delivered;
use crate::log::{Log, delay};
use crate::resolve::{resolve, split_dsn};
use crate::settings::Settings;
use crate::virtual_agent::{self, Failure};

/// Clears the queue of what a crash left half-written and returns the
/// complete files still to deliver. It must run before any smtpd accepts
/// mail: a file smtpd is still writing looks incomplete, and removing it
/// would lose a message that is about to get 250.
pub fn recover(queue_directory: &Path, log: &Log) -> Vec<PathBuf> {
    // Where Rostfix kept its pool of empty queue files before it moved
    // into incoming/ (rostfix_queue::pool): only empty files, unused now.
    let _ = std::fs::remove_dir_all(queue_directory.join("free"));
    let mut todo = Vec::new();
    // hold/: a file smtpd put on hold and did not finish is removed
    // there too; the complete ones stay held.
    for dir in ["active", "incoming", "hold"] {
        let path = queue_directory.join(dir);
        match rostfix_queue::file::recover(&path) {
            Ok((complete, removed)) => {
                for r in removed {
                    log.warning(
                        "qmgr",
                        &format!("removed incomplete queue file {}", r.display()),
                    );
                }
                if dir != "hold" {
                    todo.extend(complete);
                }
            }
            Err(e) => log.warning("qmgr", &format!("{}: {e}", path.display())),
        }
    }
    todo
}

/// The queue files a qmgr that starts while smtpd runs (after a reload or
/// a crash of qmgr alone) takes over: complete files in active and
/// incoming. Nothing is removed: an incomplete file in incoming may be
/// one smtpd is writing now.
pub fn resume(queue_directory: &Path) -> Vec<PathBuf> {
    let mut todo = Vec::new();
    for dir in ["active", "incoming"] {
        let Ok(entries) = std::fs::read_dir(queue_directory.join(dir)) else {
            continue;
        };
        let mut complete: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| !rostfix_queue::pool::is_pooled(&e.file_name()))
            .map(|e| e.path())
            .filter(|p| QueueReader::is_complete(p).unwrap_or(false))
            .collect();
        complete.sort();
        todo.extend(complete);
    }
    todo
}

/// Delivers `recovered` (from [`recover`]), then each new queue file as
/// smtpd reports it and deferred mail as it comes due, until the channel
/// closes. Up to `s.delivery_concurrency` messages are delivered at once,
/// so their syncs share group commits.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    s: Arc<Settings>,
    log: Log,
    syncer: Syncer,
    active: Active,
    recovered: Vec<PathBuf>,
    announce: mpsc::UnboundedSender<String>,
    mut queued: mpsc::UnboundedReceiver<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let q = Qmgr {
        slots: Arc::new(Semaphore::new(s.delivery_concurrency.max(1))),
        unsettled: Arc::new(Semaphore::new(
            UNSETTLED_PER_SLOT * s.delivery_concurrency.max(1),
        )),
        in_flight: active,
        incoming: s.queue_directory.join("incoming"),
        announce,
        s,
        log,
        syncer,
    };
    for f in recovered {
        q.dispatch(&f).await;
    }
    let mut requests = flush_requests(&q.s.queue_directory, &q.log);
    let mut scan =
        tokio::time::interval(std::time::Duration::from_secs(q.s.queue_run_delay.max(1)));
    loop {
        tokio::select! {
            Some(request) = requests.recv() => {
                let deferred = q.s.queue_directory.join("deferred");
                match request {
                    Flush::All => {
                        for path in modified_by(&deferred, SystemTime::now() + FAR_FUTURE) {
                            q.dispatch(&path).await;
                        }
                    }
                    Flush::One(id) => q.dispatch(&deferred.join(id.as_str())).await,
                    Flush::Site(site) => {
                        for path in modified_by(&deferred, SystemTime::now() + FAR_FUTURE) {
                            if waits_for(&path, &site) {
                                q.dispatch(&path).await;
                            }
                        }
                    }
                }
            }
            id = queued.recv() => {
                let Some(id) = id else { break };
                q.dispatch(&q.incoming.join(&id)).await;
            }
            _ = scan.tick() => {
                for path in unannounced(&q.incoming) {
                    q.dispatch(&path).await;
                }
                for path in due(&q.s.queue_directory.join("deferred")) {
                    q.dispatch(&path).await;
                }
            }
            _ = stop.changed() => break,
        }
    }
    // Stopping (reload): the deliveries under way settle, so the next
    // qmgr finds their files done or deferred, not half-delivered.
    let all =
        u32::try_from(UNSETTLED_PER_SLOT * q.s.delivery_concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        q.unsettled.acquire_many(all),
    )
    .await;
}

/// A request through qmgr's FIFO.
enum Flush {
    /// `F`: every deferred message, now (postqueue -f, sendmail -q).
    All,
    /// `I ID`: this deferred message, now (postqueue -i).
    One(QueueId),
    /// `S site`: deferred mail with a recipient at this domain, now
    /// (ETRN, postqueue -s).
    Site(String),
}

/// Whether the queue file at `path` has a recipient not yet done at
/// domain `site`.
fn waits_for(path: &Path, site: &str) -> bool {
    let Ok(env) = QueueReader::envelope(path) else {
        return false;
    };
    env.recipients.iter().any(|r| {
        !r.done
            && r.address
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.trim_end_matches('.').eq_ignore_ascii_case(site))
    })
}

/// Later than any retry time qmgr sets (maximal_backoff_time is far less).
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

/// Reads qmgr's FIFO (`public/qmgr`): one request per line.
fn flush_requests(queue_directory: &Path, log: &Log) -> mpsc::UnboundedReceiver<Flush> {
    let (tx, rx) = mpsc::unbounded_channel();
    let fifo = queue_directory.join(rostfix_queue::maildrop::QMGR_FIFO);
    // Opened for writing too, so that the FIFO never reports end of file.
    let pipe = match tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo)
    {
        Ok(p) => p,
        Err(e) => {
            log.warning("qmgr", &format!("open {}: {e}", fifo.display()));
            return rx;
        }
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut reader = tokio::io::BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            // Anyone in the postdrop group may write here: a request is
            // short, and garbage is skipped, never fatal.
            match (&mut reader).take(256).read_until(b'\n', &mut raw).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches('\n');
            let request = match line.split_once(' ') {
                Some(("I", id)) => match QueueId::parse(id.trim()) {
                    Some(id) => Flush::One(id),
                    None => continue,
                },
                Some(("S", site)) if !site.trim().is_empty() => {
                    Flush::Site(site.trim().to_ascii_lowercase())
                }
                _ if line.trim() == "F" => Flush::All,
                _ => continue,
            };
            if tx.send(request).is_err() {
                break;
            }
        }
    });
    rx
}

/// Messages delivered but waiting for their group commit, per delivery
/// slot: bounds that backlog (and so what a crash can deliver twice)
/// without making a slot wait for the commit.
const UNSETTLED_PER_SLOT: usize = 4;

/// The least time between two of qmgr's group commits. Nobody waits on
/// the network for them, but each is a syncfs that competes for the disk
/// with smtpd's, which clients wait for: the fewer, the sooner those end.
/// bench/ab at 10 sessions (6 rounds of 4,000 messages in
/// turns): 5 ms gave +7% messages/s and -13% CPU per message over none;
/// 10 ms, +1% and -12%. A delivery is seen in the mailbox up to this much
/// later.
pub const COMMIT_SPACING: std::time::Duration = std::time::Duration::from_millis(5);

/// What a delivery holds: a slot while it works, its place among the
/// unsettled until its recipients are settled, and the queue file, open
/// and locked.
struct Permits {
    slot: OwnedSemaphorePermit,
    unsettled: OwnedSemaphorePermit,
    file: std::fs::File,
}

/// What delivery tasks share.
struct Qmgr {
    s: Arc<Settings>,
    log: Log,
    syncer: Syncer,
    /// Delivery slots: a message holds one while it is delivered.
    slots: Arc<Semaphore>,
    /// A message holds one of these until it is settled (see
    /// UNSETTLED_PER_SLOT).
    unsettled: Arc<Semaphore>,
    /// Queue files dispatched and not yet finished.
    in_flight: Active,
    /// `queue_directory/incoming`, where new mail is delivered.
    incoming: PathBuf,
    /// Where new queue files qmgr makes itself (notifications) are
    /// announced, as smtpd announces its own.
    announce: mpsc::UnboundedSender<String>,
}

/// The queue files (by name) qmgr has taken in and not finished:
/// Postfix's active queue, whether a file waits in active/ (deferred mail
/// whose time came) or in incoming/ (new mail is delivered where it
/// arrived: a move into active/ is a rename between directories, which
/// on Linux holds a lock of the whole file system). showq lists them all
/// as active.
#[derive(Debug, Clone, Default)]
pub struct Active(Arc<Mutex<HashSet<OsString>>>);

impl Active {
    pub fn contains(&self, name: &str) -> bool {
        self.lock().contains(std::ffi::OsStr::new(name))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<OsString>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A queue file's place in [`Active`], given up when dropped.
struct InFlight(Active, OsString);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// Takes the delivery lock of a queue file (flock, exclusive, not
/// waiting): `None` when the file is gone or another qmgr delivers it.
/// The lock goes with the returned descriptor, and moves with the file.
fn lock_queue_file(path: &Path) -> Option<std::fs::File> {
    // Not through a link: qmgr may run as root in mail_owner's queue.
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    // SAFETY: the descriptor is open (borrowed from `f`) for the whole
    // call; flock touches no memory.
    let locked = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    // Between the open and the lock, postsuper may have removed the file,
    // or another qmgr delivered it and gave it back to the pool.
    (locked && rostfix_queue::file::still_named(path, &f)).then_some(f)
}

impl Qmgr {
    /// Delivers a queue file when a slot is free: where it is when it
    /// is new (in incoming/), else after moving it into active/ (so that
    /// no later scan of deferred/ takes it again). [`Active`] keeps any
    /// scan from taking it twice meanwhile.
    async fn dispatch(&self, queued: &Path) {
        let Some(name) = queued.file_name() else {
            return;
        };
        if !self.in_flight.lock().insert(name.to_os_string()) {
            return;
        }
        let in_flight = InFlight(self.in_flight.clone(), name.to_os_string());
        let active = if queued.parent() == Some(self.incoming.as_path()) {
            queued.to_path_buf()
        } else {
            self.s.queue_directory.join("active").join(name)
        };
        let Ok(unsettled) = self.unsettled.clone().acquire_owned().await else {
            return;
        };
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        let (s, log, syncer) = (self.s.clone(), self.log.clone(), self.syncer.clone());
        let announce = self.announce.clone();
        let queued = queued.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let _in_flight = in_flight;
            let Some(file) = lock_queue_file(&queued) else {
                return;
            };
            // A move into active (deferred mail) runs here, in parallel
            // with the other deliveries, not one at a time in the
            // dispatching task.
            if queued == active || std::fs::rename(&queued, &active).is_ok() {
                let permits = Permits {
                    slot,
                    unsettled,
                    file,
                };
                deliver_file(&s, &log, &syncer, &announce, &active, permits);
            }
        });
    }
}

/// Complete files in incoming that nobody announced: smtpd was killed
/// between its 250 and telling qmgr, or the datagram was lost. Files
/// written in the last second are left to their announcement; one
/// announced meanwhile is taken once ([`Active`]).
fn unannounced(dir: &Path) -> Vec<PathBuf> {
    let Some(settled) = SystemTime::now().checked_sub(std::time::Duration::from_secs(1)) else {
        return Vec::new();
    };
    let mut out = modified_by(dir, settled);
    out.retain(|p| QueueReader::is_complete(p).unwrap_or(false));
    out
}

/// Deferred files whose retry time (kept as their mtime, as Postfix keeps
/// it) has come.
fn due(dir: &Path) -> Vec<PathBuf> {
    modified_by(dir, SystemTime::now())
}

/// The files of `dir` last modified at or before `t`, by name.
fn modified_by(dir: &Path, t: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !rostfix_queue::pool::is_pooled(&e.file_name()))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m <= t)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// When to try a deferred message again: its age so far, bounded by
/// minimal_backoff_time and maximal_backoff_time (so the wait roughly
/// doubles each time), counted from now.
fn next_attempt(s: &Settings, arrival_secs: u64) -> SystemTime {
    let now = SystemTime::now();
    let age = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(arrival_secs);
    let wait = age.clamp(
        s.minimal_backoff_time,
        s.maximal_backoff_time.max(s.minimal_backoff_time),
    );
    now + std::time::Duration::from_secs(wait)
}

/// Delivers one queue file. The slot goes when the files are written,
/// the unsettled permit when the message is settled, follow-up included.
fn deliver_file(
    s: &Arc<Settings>,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    path: &Path,
    permits: Permits,
) {
    let Permits {
        slot,
        unsettled,
        mut file,
    } = permits;
    let started = Instant::now();
    let queued = match QueueReader::read_open(path, &mut file) {
        Ok(q) => q,
        Err(e) => return unreadable(s, log, path, &path.display().to_string(), &e),
    };
    let env = &queued.envelope;
    let id = env.id.clone();
    let pending: Vec<_> = env.recipients.iter().filter(|r| !r.done).collect();
    log.info(
        "qmgr",
        &format!(
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            env.sender,
            env.content_size,
            pending.len()
        ),
    );
    let mut body = Vec::with_capacity(env.content_size as usize);
    for line in queued.lines() {
        match line {
            Ok(l) => {
                body.extend_from_slice(l);
                body.push(b'\n');
            }
            Err(e) => return unreadable(s, log, path, id.as_str(), &e),
        }
    }
    let arrival = env.time.0 as f64 + f64::from(env.time.1) / 1e6;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let before_active = (now() - arrival - started.elapsed().as_secs_f64()).max(0.0);
    let message = virtual_agent::Message {
        sender: &env.sender,
        attrs: &env.attrs,
        body: &body,
    };
    let mut settled = Settled {
        sent: Vec::new(),
        done: Vec::new(),
        waiting: Vec::new(),
        warned: false,
        all_done: true,
        logged: false,
        reusable: queued.reusable(),
    };
    // Failed for good, for the notification to the sender; and failed for
    // now (status code, reason), which expire into failures.
    let mut bounced = Vec::new();
    let mut deferred = Vec::new();
    // Written, not yet durable: published after the next group commit.
    let mut written = Vec::new();
    // sendmail -bv: each recipient is tried, not delivered, and the
    // sender gets the report.
    let verify = env.attr("verify") == Some("yes");
    let mut probed = Vec::new();
    let smtp_message = crate::smtp::Message::queued(id.as_str(), &env.sender, &env.attrs, &body);
    let attempts = attempt_all(
        s,
        log,
        syncer,
        announce,
        &message,
        &smtp_message,
        &pending,
        verify,
    );
    for Attempt {
        r,
        via,
        relay,
        outcome,
        setup,
        took,
    } in attempts
    {
        let agent = via.agent;
        let line = |text: &str| via.log(log, text);
        let total = now() - arrival;
        let delays = format!(
            "{}/{}/{}/{}",
            delay(before_active),
            delay(started.elapsed().as_secs_f64() - took),
            delay(setup),
            delay((took - setup).max(0.0))
        );
        // Addresses are logged in external form ("a b"@example).
        let orig = if r.original != r.address && !r.original.is_empty() {
            format!(", orig_to=<{}>", external_form(&r.original))
        } else {
            String::new()
        };
        let head = format!(
            "{id}: to=<{}>{orig}, relay={relay}, delay={}, delays={delays}",
            external_form(&r.address),
            delay(total)
        );
        // What was done of a recipient that failed is logged; the
        // recipient is not done (a deferral delivers it all again, as
        // Postfix's local(8) does).
        if let Outcome::Failed(_, done) = &outcome {
            for why in done {
                line(&format!("{head}, dsn=2.0.0, status=sent ({why})"));
            }
        }
        if verify {
            let (action, dsn, what) = match outcome {
                Outcome::Done(_, done) => (
                    "deliverable",
                    "2.0.0".to_string(),
                    done.into_iter().next().unwrap_or_default(),
                ),
                Outcome::Failed(f, _) => {
                    let (dsn, why) = f.parts();
                    ("undeliverable", dsn.to_string(), why.to_string())
                }
            };
            line(&format!("{head}, dsn={dsn}, status={action} ({what})"));
            let text = format!("delivery via {agent}: {what}");
            let mut f = bounce::Failed::new(r, dsn, text.clone(), format!("X-Postfix; {text}"));
            f.action = action;
            probed.push(f);
            settled.done.push(r.clone());
            continue;
        }
        match outcome {
            Outcome::Done(stored, done) => {
                for why in done {
                    settled.sent.push((
                        r.clone(),
                        via.clone(),
                        format!("{head}, dsn=2.0.0, status=sent ({why})"),
                        why,
                    ));
                }
                if let Some(w) = stored {
                    written.push((r.clone(), via.clone(), head, w));
                }
            }
            Outcome::Failed(f, _) if f.is_temporary() => {
                settled.all_done = false;
                let (dsn, why) = f.parts();
                line(&format!("{head}, dsn={dsn}, status=deferred ({why})"));
                settled.waiting.push((r.address.clone(), why.to_string()));
                deferred.push((r.clone(), f));
            }
            Outcome::Failed(f, _) => {
                let (dsn, why) = f.parts();
                line(&format!("{head}, dsn={dsn}, status=bounced ({why})"));
                bounced.push((r.clone(), bounce::Failed::from_failure(r, &f)));
            }
        }
    }
    if verify {
        if !env.sender.is_empty() && !probed.is_empty() {
            let original = original(env, &body);
            let sent = bounce::report(s, log, syncer, &original, &probed, Kind::Verify);
            announced(log, announce, &id, "sender delivery status", sent);
        }
        settled.apply(s, log, path, &id, env.time.0);
        return;
    }
    // delay_warning_time: the sender hears once that some recipients
    // wait (Postfix's qmgr warns when the time is less than a second
    // away).
    if s.delay_warning_time > 0
        && !settled.all_done
        && !deferred.is_empty()
        && now() + 1.0 >= arrival + s.delay_warning_time as f64
        && !deferlog::warned(&s.queue_directory, id.as_str())
    {
        settled.warned = notify_delay(s, log, syncer, announce, env, &body, &deferred);
    }
    if expired(s, log, env, !deferred.is_empty()) {
        settled.all_done = true;
        for (r, f) in deferred {
            let failed = bounce::Failed::from_failure(&r, &f);
            bounced.push((r, failed));
        }
    }
    // The sender hears of the failures before they are done: the
    // notification is durable first. If it cannot be queued, they are
    // tried again later.
    if !bounced.is_empty() {
        if notify_sender(s, log, syncer, announce, env, &body, &bounced) {
            settled.done.extend(bounced.into_iter().map(|(r, _)| r));
        } else {
            settled.all_done = false;
        }
    }
    let arrival = env.time.0;
    if written.is_empty() {
        settled.log_sent(log);
        report_success(s, log, syncer, announce, env, &body, &settled.sent);
        settled.apply(s, log, path, &id, arrival);
        return;
    }
    // Maildir files' data is made durable (one group commit for all of
    // them) before they are published, so a crash never leaves a short
    // file in a mailbox. The slot bounds the deliveries at work; waiting
    // for the disk is not work, and the more deliveries wait together,
    // the fewer commits they need (unsettled still bounds them).
    let files: Vec<&std::fs::File> = written
        .iter()
        .filter(|(_, _, _, w)| w.unpublished())
        .map(|(_, _, _, w)| &w.file)
        .collect();
    drop(slot);
    let synced = if files.is_empty() {
        Ok(())
    } else {
        // Since the attempt began: its writes, and a Maildir file's
        // failed write-back reported to any batch since.
        syncer.wait_all(&files, started).map_err(|e| e.to_string())
    };
    let mut published = Vec::new();
    for (r, via, head, w) in written {
        let result = match &synced {
            Ok(()) => w.publish(),
            Err(e) => Err(Failure::Defer("4.3.0".into(), format!("group commit: {e}"))),
        };
        match result {
            Ok(named) => {
                settled.sent.push((
                    r,
                    via,
                    format!("{head}, dsn=2.0.0, status=sent ({})", w.what),
                    w.what.to_string(),
                ));
                if named {
                    published.push(w.file);
                }
            }
            Err(f) => {
                settled.all_done = false;
                let (dsn, why) = f.parts();
                via.log(log, &format!("{head}, dsn={dsn}, status=deferred ({why})"));
                settled.waiting.push((r.address.clone(), why.to_string()));
            }
        }
    }
    if published.is_empty() {
        settled.log_sent(log);
        report_success(s, log, syncer, announce, env, &body, &settled.sent);
        settled.apply(s, log, path, &id, arrival);
        return;
    }
    // The new names become durable with the next group commit, and only
    // then are the recipients done; this thread waits for it and settles
    // the message itself (settles are file system calls that must not
    // queue up behind each other).
    let refs: Vec<&std::fs::File> = published.iter().collect();
    match syncer.wait_all(&refs, started) {
        Ok(()) => {
            settled.log_sent(log);
            report_success(s, log, syncer, announce, env, &body, &settled.sent);
            settled.apply(s, log, path, &id, arrival);
        }
        Err(e) => {
            log.warning(
                "qmgr",
                &format!("{id}: group commit: {e}: delivery will be retried"),
            );
            defer(s, path, &id, arrival);
        }
    }
    drop(unsettled);
}

/// A queue file that cannot be read: said under `what`; a complete one
/// is set aside in corrupt/, as Postfix does, instead of being read again
/// at every queue scan. (An incomplete one stays: smtpd may still be
/// writing it.)
fn unreadable(s: &Settings, log: &Log, path: &Path, what: &str, e: &QueueError) {
    log.warning("qmgr", &format!("{what}: {e}"));
    let QueueError::Corrupt(_) = e else {
        return;
    };
    let (Some(name), Some(queue)) = (path.file_name(), path.parent().and_then(Path::file_name))
    else {
        return;
    };
    match std::fs::rename(path, s.queue_directory.join("corrupt").join(name)) {
        Ok(()) => log.warning(
            "qmgr",
            &format!(
                "saving corrupt file \"{}\" from queue \"{}\" to queue \"corrupt\"",
                name.to_string_lossy(),
                queue.to_string_lossy()
            ),
        ),
        Err(e) => log.warning(
            "qmgr",
            &format!("cannot save corrupt file {}: {e}", path.display()),
        ),
    }
}

/// Whether a message that still has recipients waiting has been queued
/// longer than maximal_queue_lifetime (bounce_queue_lifetime for
/// notifications, never longer, as Postfix adjusts it); logged as
/// expired, and then returned to the sender with the reasons it waited
/// for.
fn expired(s: &Settings, log: &Log, env: &rostfix_queue::file::Envelope, waiting: bool) -> bool {
    let lifetime = if env.sender.is_empty() {
        s.bounce_queue_lifetime.min(s.maximal_queue_lifetime)
    } else {
        s.maximal_queue_lifetime
    };
    let age = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(env.time.0);
    if !waiting || age < lifetime {
        return false;
    }
    log.info(
        "qmgr",
        &format!(
            "{}: from=<{}>, status=expired, returned to sender",
            env.id, env.sender
        ),
    );
    true
}

/// Queues the non-delivery notification for `bounced` (none for mail
/// from the null sender) and hands it to qmgr; false when it could not
/// be queued.
fn notify_sender(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    env: &rostfix_queue::file::Envelope,
    body: &[u8],
    bounced: &[(Recipient, bounce::Failed)],
) -> bool {
    let original = original(env, body);
    let all: Vec<bounce::Failed> = bounced.iter().map(|(_, f)| f.clone()).collect();
    let told = |result, whom: &str| {
        announced(
            log,
            announce,
            &env.id,
            &format!("{whom} non-delivery"),
            result,
        )
    };
    let notify = |class: &str| s.notify_classes.iter().any(|c| c == class);
    // A bounce that failed: a double bounce, for the postmaster if
    // notify_classes asks (2bounce), else dropped.
    if env.sender.is_empty() {
        if !notify("2bounce") {
            return true;
        }
        let recipient = &s.double_bounce_notice_recipient;
        let sent = bounce::postmaster(s, log, syncer, &original, &all, Kind::Failure, recipient);
        return told(sent, "postmaster");
    }
    // A postmaster notice that failed: nobody is left to tell.
    if bounce::is_postmaster_notice(s, &env.sender) {
        log.warning(
            "bounce",
            &format!(
                "{}: undeliverable postmaster notification discarded",
                env.id
            ),
        );
        return true;
    }
    // NOTIFY=NEVER, or a NOTIFY without FAILURE: not reported.
    let failed: Vec<bounce::Failed> = bounced
        .iter()
        .filter(|(r, _)| r.dsn.wants("failure"))
        .map(|(_, f)| f.clone())
        .collect();
    if !failed.is_empty() && !told(bounce::queue(s, log, syncer, &original, &failed), "sender") {
        return false;
    }
    if notify("bounce") {
        let recipient = &s.bounce_notice_recipient;
        let sent = bounce::postmaster(s, log, syncer, &original, &all, Kind::Failure, recipient);
        // The sender knows; a copy that cannot be queued is only logged.
        told(sent, "postmaster");
    }
    true
}

/// Queues the delay notice for the recipients `deferred` leaves waiting
/// (those whose NOTIFY asks for it); true once it is queued (or there is
/// nobody to tell).
fn notify_delay(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    env: &rostfix_queue::file::Envelope,
    body: &[u8],
    deferred: &[(Recipient, Failure)],
) -> bool {
    let waiting: Vec<bounce::Failed> = deferred
        .iter()
        .filter(|(r, _)| r.dsn.wants("delay"))
        .map(|(r, failure)| {
            let mut f = bounce::Failed::from_failure(r, failure);
            f.action = "delayed";
            f
        })
        .collect();
    if env.sender.is_empty() || waiting.is_empty() {
        return true;
    }
    let original = original(env, body);
    let sent = bounce::report(s, log, syncer, &original, &waiting, Kind::Delay);
    if !announced(log, announce, &env.id, "sender delay", sent) {
        return false;
    }
    if s.notify_classes.iter().any(|c| c == "delay") {
        let recipient = &s.delay_notice_recipient;
        let sent = bounce::postmaster(s, log, syncer, &original, &waiting, Kind::Delay, recipient);
        announced(log, announce, &env.id, "postmaster delay", sent);
    }
    true
}

/// Logs a notification queued about message `id` (`ID: sender delay
/// notification: NEWID`, as bounce(8) does) and hands it to qmgr; a
/// notification that could not be queued is a warning. True when queued.
fn announced(
    log: &Log,
    announce: &mpsc::UnboundedSender<String>,
    id: &QueueId,
    what: &str,
    result: std::io::Result<QueueId>,
) -> bool {
    match result {
        Ok(new) => {
            log.info("bounce", &format!("{id}: {what} notification: {new}"));
            let _ = announce.send(new.to_string());
            true
        }
        Err(e) => {
            log.warning("bounce", &format!("{id}: {what} notification: {e}"));
            false
        }
    }
}

/// The message, as a notification about it sees it.
fn original<'a>(env: &'a rostfix_queue::file::Envelope, body: &'a [u8]) -> bounce::Original<'a> {
    let attr = |name: &str| env.attr(name).unwrap_or("");
    bounce::Original {
        id: &env.id,
        sender: &env.sender,
        arrival: env.time.0 as i64,
        content: body,
        ret_headers: attr("dsn_ret") == "hdrs",
        envid: attr("dsn_envid"),
    }
}

/// Sends the sender the success report NOTIFY=SUCCESS asked for, once
/// the deliveries are durable: one per message, for every recipient
/// that asked (a forward through an alias is reported as expanded).
/// Losing it is no reason to deliver again: a failure is only logged.
fn report_success(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    env: &rostfix_queue::file::Envelope,
    body: &[u8],
    sent: &[(Recipient, Via, String, String)],
) {
    if env.sender.is_empty() {
        return;
    }
    let mut reported: Vec<bounce::Failed> = Vec::new();
    for (r, via, _, why) in sent {
        if !r.dsn.wants("success")
            || via.dsn_passed
            || reported.iter().any(|f| f.address == r.address)
        {
            continue;
        }
        // Passed to a next hop that does not speak DSN: relayed.
        let (action, what) = if why.starts_with("forwarded as") {
            ("expanded", "alias expanded")
        } else if via.agent == "smtp" {
            ("relayed", why.as_str())
        } else {
            ("delivered", why.as_str())
        };
        let by = via.relay.as_deref().unwrap_or(via.agent);
        let text = format!("delivery via {by}: {what}");
        let mut f = bounce::Failed::new(
            r,
            "2.0.0".into(),
            text.clone(),
            format!("X-Postfix; {text}"),
        );
        f.action = action;
        reported.push(f);
    }
    if reported.is_empty() {
        return;
    }
    let original = original(env, body);
    let sent = bounce::report(s, log, syncer, &original, &reported, Kind::Success);
    announced(log, announce, &env.id, "sender delivery status", sent);
}

/// What delivering one recipient would do (sendmail -bv): the agent its
/// route names, and the agent's answer, without delivering.
fn probe_one(s: &Settings, r: &Recipient, sender: &str) -> (&'static str, Outcome) {
    let resolved = resolve(s, &r.address);
    let done = |agent, text: String| (agent, Outcome::Done(None, vec![text]));
    let failed = |agent, f| (agent, Outcome::Failed(f, Vec::new()));
    match crate::resolve::relocated(s, &resolved) {
        Ok(Some(moved)) => {
            let why = format!("User has moved to {moved}");
            return failed("error", Failure::Bounce("5.1.6".into(), why));
        }
        Ok(None) => {}
        Err(e) => {
            let why = format!("relocated_maps lookup failure: {e}");
            return failed("qmgr", Failure::Defer("4.3.0".into(), why));
        }
    }
    let route = match crate::resolve::route(s, &resolved, sender) {
        Ok(route) => route,
        Err(e) => {
            let why = format!("transport_maps lookup failure: {e}");
            return failed("qmgr", Failure::Defer("4.3.0".into(), why));
        }
    };
    match s.routing.command(&route.transport) {
        Some("virtual") => match virtual_agent::would_deliver(s, &resolved.address) {
            Ok(t) => done("virtual", t),
            Err(f) => failed("virtual", f),
        },
        Some("local") => match crate::local_agent::would_deliver(s, &resolved.address) {
            Ok(t) => done("local", t),
            Err(f) => failed("local", f),
        },
        Some("discard") => done("discard", format!("discards mail: {}", route.nexthop)),
        Some("error") => {
            let (dsn, why) = split_dsn(&route.nexthop);
            let f = if route.transport == "retry" {
                Failure::Defer(dsn, why)
            } else {
                Failure::Bounce(dsn, why)
            };
            failed("error", f)
        }
        _ => failed(
            "qmgr",
            Failure::Defer("4.3.0".into(), "mail transport unavailable".into()),
        ),
    }
}

/// What a delivery agent did with one recipient.
enum Outcome {
    /// A file to make durable and publish (virtual(8), local(8)'s
    /// mailbox), and deliveries done already, each with its log text
    /// (discard(8), local(8)'s forwards, commands and files).
    Done(Option<virtual_agent::Written>, Vec<String>),
    /// The recipient failed; what was done of it all the same (local(8):
    /// some destinations of several), each with its log text.
    Failed(Failure, Vec<String>),
}

/// Who delivered (or tried): the agent's name (for reports, and the
/// log's program name unless the service has its own), and where to.
#[derive(Debug, Clone)]
struct Via {
    agent: &'static str,
    /// The log's program name, when not `$syslog_name/agent`.
    tag: Option<String>,
    /// The log's relay field, when not the agent's own.
    relay: Option<String>,
    /// A next hop that speaks DSN took the message: no success report
    /// from here.
    dsn_passed: bool,
}

impl Via {
    fn agent(agent: &'static str) -> Via {
        Via {
            agent,
            tag: None,
            relay: None,
            dsn_passed: false,
        }
    }

    fn log(&self, log: &Log, text: &str) {
        match &self.tag {
            Some(tag) => log.tagged(tag, text),
            None => log.info(self.agent, text),
        }
    }

    /// The log's relay field: the next hop, or the agent for virtual
    /// and local, or `none`.
    fn relay(&self) -> String {
        match (&self.relay, self.agent) {
            (Some(r), _) => r.clone(),
            (None, "virtual" | "local") => self.agent.to_string(),
            _ => "none".to_string(),
        }
    }
}

/// One recipient's delivery attempt, for the log and the settling.
struct Attempt<'r> {
    r: &'r Recipient,
    via: Via,
    relay: String,
    outcome: Outcome,
    /// Seconds spent connecting (the log's third delay), and in all.
    setup: f64,
    took: f64,
}

/// An agent that takes several recipients at once.
#[derive(Clone, Copy)]
enum Batch<'s> {
    Client(&'s std::sync::Arc<crate::smtp::Client>),
    Pipe(&'s crate::pipe_agent::Pipe),
}

impl Batch<'_> {
    fn service(&self) -> &str {
        match self {
            Batch::Client(c) => &c.service,
            Batch::Pipe(p) => &p.service,
        }
    }

    fn limit(&self) -> usize {
        match self {
            Batch::Client(c) => c.recipient_limit,
            Batch::Pipe(p) => p.recipient_limit,
        }
    }
}

/// Recipients for one transaction (smtp, lmtp) or command (pipe): the
/// transport, the next hop, and the recipients (as queued: the agent
/// gets an address in the case the client gave, as Postfix's).
type Group<'s, 'r> = (Batch<'s>, String, Vec<&'r Recipient>);

/// Delivers (or, for sendmail -bv, tries) each pending recipient. The
/// recipients for one smtp/lmtp next hop go together, in transactions of
/// up to the transport's recipient limit; the others one by one.
#[allow(clippy::too_many_arguments)]
fn attempt_all<'r>(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    message: &virtual_agent::Message,
    smtp_message: &crate::smtp::Message<'_>,
    pending: &[&'r Recipient],
    verify: bool,
) -> Vec<Attempt<'r>> {
    let mut out = Vec::with_capacity(pending.len());
    let mut push = |r, via: Via, outcome, setup, took| {
        let relay = via.relay();
        out.push(Attempt {
            r,
            via,
            relay,
            outcome,
            setup,
            took,
        });
    };
    // (client, next hop, recipients with their final addresses)
    let mut groups: Vec<Group<'_, 'r>> = Vec::new();
    for &r in pending {
        let t = Instant::now();
        if verify {
            let (agent, outcome) = probe_one(s, r, message.sender);
            push(
                r,
                Via::agent(agent),
                outcome,
                0.0,
                t.elapsed().as_secs_f64(),
            );
            continue;
        }
        let (address, route) = match route_of(s, r, message.sender) {
            Ok(found) => found,
            Err((agent, f)) => {
                let outcome = Outcome::Failed(f, Vec::new());
                push(
                    r,
                    Via::agent(agent),
                    outcome,
                    0.0,
                    t.elapsed().as_secs_f64(),
                );
                continue;
            }
        };
        if let Some(batch) = batch_agent(s, &route.transport) {
            let limit = batch.limit();
            match groups.iter_mut().find(|(b, hop, members)| {
                b.service() == batch.service()
                    && hop.eq_ignore_ascii_case(&route.nexthop)
                    && (limit == 0 || members.len() < limit)
            }) {
                Some((_, _, members)) => members.push(r),
                None => groups.push((batch, route.nexthop, vec![r])),
            }
            continue;
        }
        let (via, outcome) = dispatch(s, log, syncer, announce, message, r, &address, &route, true);
        push(r, via, outcome, 0.0, t.elapsed().as_secs_f64());
    }
    for (batch, nexthop, members) in groups {
        let t = Instant::now();
        let client = match batch {
            Batch::Client(c) => c,
            Batch::Pipe(pipe) => {
                let rcpts: Vec<crate::pipe_agent::Rcpt> = members
                    .iter()
                    .map(|r| crate::pipe_agent::Rcpt {
                        address: &r.address,
                        original: &r.original,
                    })
                    .collect();
                let m = crate::pipe_agent::Message {
                    id: smtp_message.id,
                    sender: message.sender,
                    attrs: message.attrs,
                    body: message.body,
                };
                let result = crate::pipe_agent::deliver(s, pipe, &m, &nexthop, &rcpts);
                let took = t.elapsed().as_secs_f64();
                for r in members {
                    let via = Via {
                        agent: "pipe",
                        tag: Some(pipe.log_tag.clone()),
                        relay: Some(pipe.service.clone()),
                        dsn_passed: false,
                    };
                    let outcome = match &result {
                        Ok(text) => Outcome::Done(None, vec![text.clone()]),
                        Err(f) => Outcome::Failed(f.clone(), Vec::new()),
                    };
                    push(r, via, outcome, 0.0, took);
                }
                continue;
            }
        };
        let rcpts: Vec<crate::smtp::Rcpt> = members
            .iter()
            .map(|r| crate::smtp::Rcpt {
                address: &r.address,
                dsn: &r.dsn,
            })
            .collect();
        let outcomes = crate::smtp::deliver(s, client, smtp_message, &nexthop, &rcpts, log);
        let took = t.elapsed().as_secs_f64();
        // One outcome per recipient, in order: a recipient without one
        // would be taken for done.
        assert_eq!(outcomes.len(), members.len(), "smtp outcomes per recipient");
        for (r, o) in members.into_iter().zip(outcomes) {
            let setup = o.setup;
            let (via, outcome) = smtp_outcome(client, o);
            push(r, via, outcome, setup, took);
        }
    }
    out
}

/// What the smtp/lmtp client did with a recipient, as qmgr logs and
/// settles it.
fn smtp_outcome(client: &crate::smtp::Client, o: crate::smtp::Outcome) -> (Via, Outcome) {
    let via = Via {
        agent: if client.lmtp { "lmtp" } else { "smtp" },
        tag: Some(client.log_tag.clone()),
        relay: Some(o.relay),
        dsn_passed: o.dsn_passed,
    };
    let outcome = match o.result {
        Ok(text) => Outcome::Done(None, vec![text]),
        Err(f) => Outcome::Failed(f, Vec::new()),
    };
    (via, outcome)
}

/// The agent of `transport` when it takes recipients in batches.
fn batch_agent<'s>(s: &'s Settings, transport: &str) -> Option<Batch<'s>> {
    if let Some(c) = s.clients.get(transport) {
        return Some(Batch::Client(c));
    }
    s.pipes
        .iter()
        .find(|p| p.service == transport)
        .map(Batch::Pipe)
}

/// A recipient's final address and route (trivial-rewrite), or why it
/// has none: relocated (error(8) bounces it) or a table that failed.
fn route_of(
    s: &Settings,
    r: &Recipient,
    sender: &str,
) -> Result<(String, crate::resolve::Route), (&'static str, Failure)> {
    // trivial-rewrite (allow_min_user = no): an address that looks like
    // a command option goes to error(8).
    if r.address.starts_with('-') {
        return Err((
            "error",
            Failure::Bounce("5.1.3".into(), "bad address syntax".into()),
        ));
    }
    let resolved = resolve(s, &r.address);
    match crate::resolve::relocated(s, &resolved) {
        Ok(Some(moved)) => {
            let why = format!("User has moved to {moved}");
            return Err(("error", Failure::Bounce("5.1.6".into(), why)));
        }
        Ok(None) => {}
        Err(e) => {
            let why = format!("relocated_maps lookup failure: {e}");
            return Err(("qmgr", Failure::Defer("4.3.0".into(), why)));
        }
    }
    match crate::resolve::route(s, &resolved, sender) {
        Ok(route) => Ok((resolved.address, route)),
        Err(e) => {
            let why = format!("transport_maps lookup failure: {e}");
            Err(("qmgr", Failure::Defer("4.3.0".into(), why)))
        }
    }
}

/// Hands one recipient to the agent `route` names (master.cf's command
/// for the transport). `from_queue`: false when local(8) passes the
/// recipient on (mailbox_transport), which may not pass it back.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    message: &virtual_agent::Message,
    r: &Recipient,
    address: &str,
    route: &crate::resolve::Route,
    from_queue: bool,
) -> (Via, Outcome) {
    let (agent, outcome) = match s.routing.command(&route.transport) {
        // local(8) passing mail on (mailbox_transport, fallback_transport).
        Some("smtp" | "lmtp") if let Some(client) = s.clients.get(&route.transport) => {
            let m = crate::smtp::Message::queued("", message.sender, message.attrs, message.body);
            let rcpt = [crate::smtp::Rcpt {
                address,
                dsn: &r.dsn,
            }];
            let o = crate::smtp::deliver(s, client, &m, &route.nexthop, &rcpt, log)
                .pop()
                .expect("one outcome per recipient");
            return smtp_outcome(client, o);
        }
        _ => builtin(
            s, log, syncer, announce, message, r, address, route, from_queue,
        ),
    };
    (Via::agent(agent), outcome)
}

/// dispatch() for the agents that run in qmgr's thread.
#[allow(clippy::too_many_arguments)]
fn builtin(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    announce: &mpsc::UnboundedSender<String>,
    message: &virtual_agent::Message,
    r: &Recipient,
    address: &str,
    route: &crate::resolve::Route,
    from_queue: bool,
) -> (&'static str, Outcome) {
    let unavailable = || {
        Outcome::Failed(
            Failure::Defer("4.3.0".into(), "mail transport unavailable".into()),
            Vec::new(),
        )
    };
    match s.routing.command(&route.transport) {
        Some("virtual") => (
            "virtual",
            match virtual_agent::deliver(s, syncer, message, address, &r.original) {
                Ok(w) => Outcome::Done(Some(w), Vec::new()),
                Err(f) => Outcome::Failed(f, Vec::new()),
            },
        ),
        Some("local") if !from_queue => (
            "local",
            Outcome::Failed(
                Failure::Defer(
                    "4.3.0".into(),
                    format!("mail for {address} loops back to local(8)"),
                ),
                Vec::new(),
            ),
        ),
        Some("local") => {
            match crate::local_agent::deliver(s, log, syncer, message, address, &r.original, &r.dsn)
            {
                Ok(Delivered {
                    stored,
                    done,
                    forwarded,
                    failed,
                    pass,
                }) => {
                    if let Some(id) = forwarded {
                        let _ = announce.send(id.to_string());
                    }
                    if let (Some(spec), None) = (pass, &failed) {
                        // What local(8) did first (a forward) stays logged.
                        let next = crate::resolve::parse_route(&spec, address);
                        let (via, outcome) =
                            dispatch(s, log, syncer, announce, message, r, address, &next, false);
                        let outcome = match outcome {
                            Outcome::Done(w, more) => Outcome::Done(w, [done, more].concat()),
                            Outcome::Failed(f, more) => Outcome::Failed(f, [done, more].concat()),
                        };
                        return (via.agent, outcome);
                    }
                    let outcome = match failed {
                        Some(f) => Outcome::Failed(f, done),
                        None => Outcome::Done(stored, done),
                    };
                    ("local", outcome)
                }
                Err(f) => ("local", Outcome::Failed(f, Vec::new())),
            }
        }
        Some("error") => {
            // error(8) bounces, and defers only as the retry service; a
            // status code of the other class gives way to the default.
            let (class, default) = if route.transport == "retry" {
                ('4', "4.0.0")
            } else {
                ('5', "5.0.0")
            };
            let (mut dsn, why) = split_dsn(&route.nexthop);
            if !dsn.starts_with(class) {
                dsn = default.to_string();
            }
            let failure = if class == '4' {
                Failure::Defer(dsn, why)
            } else {
                Failure::Bounce(dsn, why)
            };
            ("error", Outcome::Failed(failure, Vec::new()))
        }
        Some("discard") => ("discard", Outcome::Done(None, vec![route.nexthop.clone()])),
        None => ("error", unavailable()),
        Some(_) => ("qmgr", unavailable()),
    }
}

/// What became of a message's recipients in one delivery attempt.
struct Settled {
    /// Delivered, with the agent and the log line: logged and marked
    /// done once the delivery is durable.
    sent: Vec<(Recipient, Via, String, String)>,
    /// Finished otherwise (bounced, the sender notified): marked done.
    done: Vec<Recipient>,
    /// Deferred: address and reason, for the defer log (postqueue -p).
    waiting: Vec<(String, String)>,
    /// The delay notice went out in this attempt.
    warned: bool,
    /// No recipient is left for later.
    all_done: bool,
    /// The deliveries' lines are in the log already.
    logged: bool,
    /// The file may keep its content in the pool (Queued::reusable).
    reusable: bool,
}

impl Settled {
    /// Logs the deliveries: before the success notice they cause is
    /// queued (and logged), as a Postfix delivery agent logs its to= line
    /// before the notice goes out.
    fn log_sent(&mut self, log: &Log) {
        for (_, via, line, _) in &self.sent {
            via.log(log, line);
        }
        self.logged = true;
    }

    /// Logs the deliveries, marks recipients done, and removes the queue
    /// file or moves it to deferred.
    fn apply(mut self, s: &Settings, log: &Log, path: &Path, id: &QueueId, arrival: u64) {
        if !self.logged {
            self.log_sent(log);
        }
        if self.all_done {
            deferlog::remove(&s.queue_directory, id.as_str());
            // Nothing left to mark: the file goes (into the pool).
            if s.queue_pool.free(path, self.reusable).is_ok() {
                log.info("qmgr", &format!("{id}: removed"));
            }
            return;
        }
        // The marks are not synced: a mark lost in a crash costs a second
        // delivery, never a lost message (DESIGN.md section 4).
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            for r in self.sent.iter().map(|(r, _, _, _)| r).chain(&self.done) {
                let _ = mark_done(&f, r);
            }
        }
        if let Err(e) = deferlog::write(&s.queue_directory, id.as_str(), &self.waiting, self.warned)
        {
            log.warning("qmgr", &format!("{id}: defer log: {e}"));
        }
        defer(s, path, id, arrival);
    }
}

/// Moves a queue file to deferred with its next retry time.
fn defer(s: &Settings, path: &Path, id: &QueueId, arrival: u64) {
    let deferred = s.queue_directory.join("deferred").join(id.as_str());
    if std::fs::rename(path, &deferred).is_ok()
        && let Ok(f) = std::fs::File::options().write(true).open(&deferred)
    {
        let _ = f.set_modified(next_attempt(s, arrival));
    }
}

//! pickup(8): local submissions. `sendmail` leaves a complete file in
//! `$queue_directory/maildrop` (see [`rostfix_queue::maildrop`]) and
//! writes to the `public/pickup` FIFO; pickup hands each file to cleanup
//! as local mail from the file's owner and removes it once cleanup's
//! queue file is durable (a crash in between delivers twice, never
//! loses). It also looks every `wakeup` seconds (master.cf, 60 in
//! Debian's) and when it starts.
//!
//! A maildrop file is written by any local user: it is read through a
//! descriptor opened without following links, only if it is a plain
//! file with one link, and no bigger than message_size_limit allows;
//! anything else is set aside in `corrupt/` or, incomplete and a day
//! old, removed.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rostfix_queue::QueueReader;
use rostfix_queue::file::Dsn;
use rostfix_queue::file::{QueueError, Queued};
use rostfix_queue::maildrop::{
    ATTR_ENVID, ATTR_EXTRACT, ATTR_FULL_NAME, ATTR_NOTIFY, ATTR_RET, ATTR_UID, ATTR_VERIFY,
    MAILDROP_DIR, PICKUP_FIFO,
};

use crate::cleanup::{self, Cleanup, Envelope, Intake, Origin, Refused};
use crate::log::Log;
use crate::settings::Settings;

/// How long an incomplete maildrop file may wait for its writer.
const STALE: Duration = Duration::from_secs(24 * 3600);

/// Serves the maildrop until the task is dropped.
pub async fn serve(s: Arc<Settings>, log: Log, intake: Intake, wakeup: Duration) {
    let fifo = s.queue_directory.join(PICKUP_FIFO);
    // Opened for writing too, so that the FIFO never reports end of file
    // when the last sendmail closes it.
    let mut wake = match tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&fifo)
    {
        Ok(r) => Some(r),
        Err(e) => {
            log.warning("pickup", &format!("open {}: {e}", fifo.display()));
            None
        }
    };
    let mut tick = tokio::time::interval(wakeup.max(Duration::from_secs(1)));
    let mut buf = [0u8; 256];
    loop {
        match &mut wake {
            Some(r) => tokio::select! {
                _ = r.readable() => {
                    // Any number of wake-ups mean one scan.
                    while let Ok(n) = r.try_read(&mut buf) {
                        if n == 0 { break; }
                    }
                }
                _ = tick.tick() => {}
            },
            None => {
                tick.tick().await;
            }
        }
        scan(&s, &log, &intake).await;
    }
}

/// Takes every complete file in the maildrop, oldest name first.
async fn scan(s: &Arc<Settings>, log: &Log, intake: &Intake) {
    let dir = s.queue_directory.join(MAILDROP_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    for path in names {
        take(s, log, intake, &path).await;
    }
}

/// Why a maildrop file is not taken now.
enum Skip {
    /// Gone, or still being written.
    Later,
    /// Not a maildrop file we may read: set aside.
    Bad(String),
}

/// One maildrop file through cleanup.
async fn take(s: &Arc<Settings>, log: &Log, intake: &Intake, path: &Path) {
    let prepared = {
        let (s, log, path) = (s.clone(), log.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || prepare(&s, &log, &path)).await
    };
    let (cleanup, _locked) = match prepared {
        Ok(Ok(c)) => c,
        Ok(Err(Skip::Later)) | Err(_) => return,
        Ok(Err(Skip::Bad(why))) => {
            set_aside(s, log, path, &why);
            return;
        }
    };
    match cleanup::commit(cleanup, s, log, intake).await {
        Ok(_) => {
            if let Err(e) = std::fs::remove_file(path) {
                log.warning("pickup", &format!("remove {}: {e}", path.display()));
            }
        }
        Err(Refused::TooManyHops) => {
            // A loop: the sender hears of it (as from Postfix's cleanup),
            // and the file goes only once that notice is queued.
            let (s2, log2, intake2, path2) =
                (s.clone(), log.clone(), intake.clone(), path.to_path_buf());
            let bounced =
                tokio::task::spawn_blocking(move || bounce_hops(&s2, &log2, &intake2, &path2))
                    .await
                    .unwrap_or(false);
            if bounced {
                let _ = std::fs::remove_file(path);
            } else {
                set_aside(s, log, path, "too many hops");
            }
        }
        // Logged by cleanup; the file stays for the next scan.
        Err(Refused::Io(_)) => {}
    }
}

/// Returns a looping local submission to its sender (none for the null
/// sender): every recipient failed with `5.4.0 too many hops`. True once
/// the notice is queued (or there is nobody to tell).
fn bounce_hops(s: &Settings, log: &Log, intake: &Intake, path: &Path) -> bool {
    let Ok(queued) = QueueReader::read(path) else {
        return false;
    };
    let env = &queued.envelope;
    if env.sender.is_empty() {
        return true;
    }
    let mut content = Vec::new();
    for line in queued.lines().map_while(Result::ok) {
        content.extend_from_slice(line);
        content.push(b'\n');
    }
    let sender = crate::resolve::canonical_form(s, &env.sender);
    let failed: Vec<crate::bounce::Failed> = env
        .recipients
        .iter()
        .map(|r| {
            let why = "too many hops".to_string();
            crate::bounce::Failed::new(r, "5.4.0".into(), why.clone(), format!("X-Postfix; {why}"))
        })
        .collect();
    let original = crate::bounce::Original {
        id: &env.id,
        sender: &sender,
        arrival: env.time.0 as i64,
        content: &content,
        ret_headers: false,
        envid: "",
    };
    match crate::bounce::queue(s, log, &intake.syncer, &original, &failed) {
        Ok(new) => {
            log.info(
                "bounce",
                &format!("{}: sender non-delivery notification: {new}", env.id),
            );
            let _ = intake.qmgr.send(new.to_string());
            true
        }
        Err(e) => {
            log.warning("bounce", &format!("{}: notification: {e}", env.id));
            false
        }
    }
}

/// Moves a file pickup will not take to `corrupt/`, where the
/// administrator finds it (postsuper and postcat read it there).
fn set_aside(s: &Settings, log: &Log, path: &Path, why: &str) {
    let name = path.file_name().unwrap_or_default();
    let to = s.queue_directory.join("corrupt").join(name);
    log.warning(
        "pickup",
        &format!("{}: {why}: moved to corrupt", path.display()),
    );
    if std::fs::rename(path, &to).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether a maildrop file was last written longer than STALE ago.
fn stale(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age > STALE)
}

/// Reads a maildrop file and writes cleanup's queue file from it (not yet
/// committed). Logs pickup's `uid=... from=<...>` line.
fn prepare(s: &Settings, log: &Log, path: &Path) -> Result<(Cleanup, File), Skip> {
    let mut file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Skip::Later),
        // Not handed over yet, or never will be: set aside only when old.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !stale(path) => {
            return Err(Skip::Later);
        }
        Err(e) => return Err(Skip::Bad(format!("open: {e}"))),
    };
    let meta = file.metadata().map_err(|e| Skip::Bad(e.to_string()))?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(Skip::Bad("not a regular file with one link".into()));
    }
    // The message, its envelope and a little room for the records.
    let limit = s.session.message_size_limit.saturating_add(64 * 1024);
    if s.session.message_size_limit > 0 && meta.len() > limit {
        return Err(Skip::Bad("message file too big".into()));
    }
    // Another pickup (a reload starts the new one before the old stops)
    // may be taking this file: one at a time.
    // SAFETY: flock on the open descriptor; no memory is touched.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(Skip::Later);
    }
    // Taken and removed by the other meanwhile.
    if file.metadata().map_or(true, |m| m.nlink() == 0) {
        return Err(Skip::Later);
    }
    let queued = match QueueReader::read_open(path, &mut file) {
        Ok(q) => q,
        Err(QueueError::Incomplete) => {
            if stale(path) {
                let _ = std::fs::remove_file(path);
                log.warning(
                    "pickup",
                    &format!("removed incomplete maildrop file {}", path.display()),
                );
            }
            return Err(Skip::Later);
        }
        Err(QueueError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Skip::Later);
        }
        Err(e) => return Err(Skip::Bad(e.to_string())),
    };
    let env = &queued.envelope;
    let attr = |name: &str| env.attr(name);
    // The owner is who submitted it, unless the mail system's own user or
    // root wrote it on a user's behalf.
    let trusted = meta.uid() == 0 || meta.uid() == nix::unistd::geteuid().as_raw();
    let uid = match attr(ATTR_UID).and_then(|u| u.parse().ok()) {
        Some(uid) if trusted => uid,
        _ => meta.uid(),
    };
    // A requeued queue file (postsuper -r) keeps its done marks and its
    // delivery status notification requests.
    let waiting: Vec<_> = env.recipients.iter().filter(|r| !r.done).collect();
    let mut recipients: Vec<String> = waiting.iter().map(|r| r.address.clone()).collect();
    let mut dsn: Vec<Dsn> = waiting.iter().map(|r| r.dsn.clone()).collect();
    if attr(ATTR_EXTRACT) == Some("yes") {
        recipients.extend(cleanup::header_recipients(header_lines(&queued)));
    }
    // sendmail -N: one NOTIFY for every recipient.
    if let Some(notify) = attr(ATTR_NOTIFY) {
        dsn.resize(recipients.len(), Dsn::default());
        for d in &mut dsn {
            d.notify = notify.to_string();
        }
    }
    let envelope = Envelope {
        origin: Origin::Local {
            uid,
            arrival: env.time.0 as i64,
        },
        sender: env.sender.clone(),
        recipients,
        rewrite_headers: true,
        full_name: attr(ATTR_FULL_NAME).map(str::to_string),
        dsn,
        ret: attr(ATTR_RET).unwrap_or_default().to_string(),
        envid: attr(ATTR_ENVID).unwrap_or_default().to_string(),
        verify: attr(ATTR_VERIFY) == Some("yes"),
        eight_bit_mime: false,
    };
    let mut c = Cleanup::start(s, &envelope).map_err(|e| {
        log.warning("cleanup", &format!("queue file: {e}"));
        Skip::Later
    })?;
    log.info(
        "pickup",
        &format!("{}: uid={uid} from=<{}>", c.id(), env.sender),
    );
    for line in queued.lines() {
        let written = match line {
            Ok(l) => c.line(s, l),
            Err(e) => {
                c.abandon();
                return Err(Skip::Bad(e.to_string()));
            }
        };
        if let Err(e) = written {
            log.warning("cleanup", &format!("{}: {e}", c.id()));
            c.abandon();
            return Err(Skip::Later);
        }
    }
    // The file goes with the queue file: its lock is held until the
    // maildrop file is removed.
    Ok((c, file))
}

/// The message's header lines (continuations separate), up to the
/// first line that is not part of a header.
fn header_lines(queued: &Queued) -> impl Iterator<Item = &[u8]> {
    queued.lines().map_while(Result::ok).take_while(|l| {
        l.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            || rostfix_message::header::is_header(l)
    })
}

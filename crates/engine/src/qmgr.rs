//! qmgr(8), for this stage: takes each new queue file from incoming,
//! delivers its recipients (virtual mailbox domains through virtual(8);
//! other transports are not available yet and defer), marks each done as
//! it is durable, and removes the file when all are done. Queue files
//! found at start (after a crash) are delivered too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rostfix_queue::QueueReader;
use rostfix_queue::file::mark_done;
use tokio::sync::mpsc;

use crate::log::{Log, delay};
use crate::resolve::{Class, resolve};
use crate::settings::Settings;
use crate::virtual_agent::{self, Failure};

/// Clears the queue of what a crash left half-written and returns the
/// complete files still to deliver. It must run before any smtpd accepts
/// mail: a file smtpd is still writing looks incomplete, and removing it
/// would lose a message that is about to get 250.
pub fn recover(s: &Settings, log: &Log) -> Vec<PathBuf> {
    let mut todo = Vec::new();
    for dir in ["active", "incoming"] {
        let path = s.queue_directory.join(dir);
        match rostfix_queue::file::recover(&path) {
            Ok((complete, removed)) => {
                for r in removed {
                    log.warning(
                        "qmgr",
                        &format!("removed incomplete queue file {}", r.display()),
                    );
                }
                todo.extend(complete);
            }
            Err(e) => log.warning("qmgr", &format!("{}: {e}", path.display())),
        }
    }
    todo
}

/// Delivers `recovered` (from [`recover`]), then each new queue file as
/// smtpd reports it and deferred mail as it comes due, until the channel
/// closes.
pub async fn run(
    s: Arc<Settings>,
    log: Log,
    recovered: Vec<PathBuf>,
    mut queued: mpsc::UnboundedReceiver<String>,
) {
    for f in recovered {
        process(&s, &log, &f).await;
    }
    let mut scan = tokio::time::interval(std::time::Duration::from_secs(s.queue_run_delay.max(1)));
    loop {
        tokio::select! {
            id = queued.recv() => {
                let Some(id) = id else { break };
                let path = s.queue_directory.join("incoming").join(&id);
                process(&s, &log, &path).await;
            }
            _ = scan.tick() => {
                for path in due(&s.queue_directory.join("deferred")) {
                    process(&s, &log, &path).await;
                }
            }
        }
    }
}

/// Deferred files whose retry time (kept as their mtime, as Postfix keeps
/// it) has come.
fn due(dir: &Path) -> Vec<PathBuf> {
    let now = SystemTime::now();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t <= now)
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

async fn process(s: &Arc<Settings>, log: &Log, incoming: &Path) {
    let Some(name) = incoming.file_name() else {
        return;
    };
    let active = s.queue_directory.join("active").join(name);
    if incoming != active && std::fs::rename(incoming, &active).is_err() {
        return;
    }
    let (s, log2) = (s.clone(), log.clone());
    let path = active.clone();
    let _ = tokio::task::spawn_blocking(move || deliver_file(&s, &log2, &path)).await;
}

fn deliver_file(s: &Settings, log: &Log, path: &PathBuf) {
    let started = Instant::now();
    let env = match QueueReader::envelope(path) {
        Ok(e) => e,
        Err(e) => {
            log.warning("qmgr", &format!("{}: {e}", path.display()));
            return;
        }
    };
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
    let lines = match QueueReader::content(path, &env) {
        Ok(l) => l,
        Err(e) => {
            log.warning("qmgr", &format!("{id}: {e}"));
            return;
        }
    };
    let arrival = env.time.0 as f64 + f64::from(env.time.1) / 1e6;
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let before_active = (now() - arrival - started.elapsed().as_secs_f64()).max(0.0);
    let file = std::fs::OpenOptions::new().write(true).open(path);
    let mut all_done = true;
    for r in pending {
        let t = Instant::now();
        let resolved = resolve(s, &r.address);
        let (relay, outcome) = match resolved.class {
            Class::Virtual => (
                "virtual",
                virtual_agent::deliver(s, &env.sender, &resolved.address, &r.original, &lines),
            ),
            _ => (
                "none",
                Err(Failure::Defer(
                    "4.3.0".into(),
                    "mail transport unavailable".into(),
                )),
            ),
        };
        let total = now() - arrival;
        let delays = format!(
            "{}/{}/{}/{}",
            delay(before_active),
            delay(started.elapsed().as_secs_f64() - t.elapsed().as_secs_f64()),
            "0",
            delay(t.elapsed().as_secs_f64())
        );
        let orig = if r.original != r.address && !r.original.is_empty() {
            format!(", orig_to=<{}>", r.original)
        } else {
            String::new()
        };
        let head = format!(
            "{id}: to=<{}>{orig}, relay={relay}, delay={}, delays={delays}",
            r.address,
            delay(total)
        );
        match outcome {
            Ok(what) => {
                log.info(
                    "virtual",
                    &format!("{head}, dsn=2.0.0, status=sent ({what})"),
                );
                if let Ok(f) = &file {
                    let _ = mark_done(f, r).and_then(|_| f.sync_data());
                }
            }
            Err(Failure::Defer(dsn, why)) => {
                all_done = false;
                log.info(
                    if relay == "none" { "qmgr" } else { "virtual" },
                    &format!("{head}, dsn={dsn}, status=deferred ({why})"),
                );
            }
            Err(Failure::Bounce(dsn, why)) => {
                // Bounces to the sender arrive with issue 4; the reason is
                // logged and the recipient is done.
                log.info(
                    "virtual",
                    &format!("{head}, dsn={dsn}, status=bounced ({why})"),
                );
                if let Ok(f) = &file {
                    let _ = mark_done(f, r).and_then(|_| f.sync_data());
                }
            }
        }
    }
    if all_done {
        if std::fs::remove_file(path).is_ok() {
            log.info("qmgr", &format!("{id}: removed"));
        }
    } else {
        let deferred = s.queue_directory.join("deferred").join(id.as_str());
        if std::fs::rename(path, &deferred).is_ok()
            && let Ok(f) = std::fs::File::options().write(true).open(&deferred)
        {
            let _ = f.set_modified(next_attempt(s, env.time.0));
        }
    }
}

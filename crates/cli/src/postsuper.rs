//! postsuper(1): queue maintenance by the administrator, while the mail
//! system runs. `-d` deletes, `-h` holds, `-H` releases, `-r` requeues
//! (the message goes through pickup and cleanup again, under a new queue
//! ID), each for a queue ID, `ALL`, or `-` (IDs on standard input),
//! optionally limited to the queues named as operands.
//!
//! A message qmgr is delivering is locked (flock on the queue file, see
//! qmgr); postsuper waits for that delivery to settle before it moves or
//! removes the file, so a delivery never finishes into a file that has
//! gone elsewhere. Messages and counts go to standard error and the
//! maillog, in Postfix's words (tests/golden/postsuper).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rostfix_config::Config;
use rostfix_queue::QueueId;

use crate::msg::{Getopt, fatal};

const USAGE: &str = "[-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)] [-f queue_id (expire and/or un-hold)] [-h queue_id (hold)] [-H queue_id (un-hold)] [-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] [-S (redundant structure fix)][-v (verbose)] [queue...]";

/// The queues postsuper knows, in the order it looks into them.
const QUEUES: &[&str] = &["maildrop", "incoming", "active", "deferred", "hold"];

/// How long to wait for a delivery in progress to settle.
const LOCK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Delete,
    Hold,
    Release,
    Requeue,
}

impl Op {
    /// The queues an operation looks into when none are named.
    fn default_queues(self) -> &'static [&'static str] {
        match self {
            Op::Delete => QUEUES,
            Op::Hold => &["incoming", "active", "deferred"],
            Op::Release => &["hold"],
            Op::Requeue => &["incoming", "active", "deferred", "hold"],
        }
    }

    /// (per message, summary) wording.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Op::Delete => ("removed", "Deleted"),
            Op::Hold => ("placed on hold", "Placed on hold"),
            Op::Release => ("released from hold", "Released from hold"),
            Op::Requeue => ("requeued", "Requeued"),
        }
    }
}

pub fn main() -> i32 {
    crate::msg::init("postsuper");
    let g = Getopt::parse(std::env::args_os().skip(1), "c:d:e:f:h:H:pr:sSv", USAGE);
    let mut dir: Option<PathBuf> = None;
    let mut ops: Vec<(Op, Vec<String>)> = Vec::new();
    for (c, v) in &g.options {
        let text = crate::msg::option_text(v);
        let op = match c {
            'c' => {
                dir = Some(PathBuf::from(text));
                continue;
            }
            'd' => Op::Delete,
            'h' => Op::Hold,
            'H' => Op::Release,
            'r' => Op::Requeue,
            // -p -s -S: Rostfix's queue has no temporary files or hashed
            // directories to repair; -v: nothing to add.
            'p' | 's' | 'S' | 'v' => continue,
            _ => fatal(format!("-{c} is not supported by Rostfix yet")),
        };
        let ids = if text == "-" {
            std::io::stdin()
                .lines()
                .map_while(Result::ok)
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        } else {
            vec![text]
        };
        match ops.iter_mut().find(|(o, _)| *o == op) {
            Some((_, all)) => all.extend(ids),
            None => ops.push((op, ids)),
        }
    }
    let named: Vec<String> = g
        .operands
        .iter()
        .map(|o| o.to_string_lossy().into_owned())
        .collect();
    let cf = Config::load(dir.as_deref()).unwrap_or_else(|e| fatal(e));
    let log = crate::msg::maillog(&cf);
    let say = |text: &str| {
        eprintln!("postsuper: {text}");
        if let Some(l) = &log {
            l.info("postsuper", text);
        }
    };
    for q in &named {
        if !QUEUES.contains(&q.as_str()) {
            if let Some(l) = &log {
                l.fatal("postsuper", &format!("invalid directory name: {q}"));
            }
            fatal(format!("invalid directory name: {q}"));
        }
    }
    let queue_directory = PathBuf::from(cf.string("queue_directory").unwrap_or_else(|e| fatal(e)));
    // Postfix's order: delete first, then hold, release, requeue.
    ops.sort_by_key(|(op, _)| *op as u8);
    let mut requeued = false;
    for (op, ids) in &ops {
        let queues: Vec<&str> = if named.is_empty() {
            op.default_queues().to_vec()
        } else {
            named.iter().map(String::as_str).collect()
        };
        let (each, summary) = op.words();
        let mut count = 0;
        for id in ids {
            if id == "ALL" {
                for q in &queues {
                    for found in list(&queue_directory, q) {
                        count += usize::from(apply(&queue_directory, *op, &found, &queues));
                    }
                }
                continue;
            }
            let Some(id) = QueueId::parse(id) else {
                eprintln!("postsuper: warning: invalid mail queue id: {id}");
                if let Some(l) = &log {
                    l.warning("postsuper", &format!("invalid mail queue id: {id}"));
                }
                continue;
            };
            if apply(&queue_directory, *op, &id, &queues) {
                say(&format!("{id}: {each}"));
                count += 1;
            }
        }
        requeued |= *op == Op::Requeue && count > 0;
        let plural = if count == 1 { "message" } else { "messages" };
        say(&format!("{summary}: {count} {plural}"));
    }
    if requeued {
        rostfix_queue::maildrop::wake_pickup(&queue_directory);
    }
    0
}

/// The queue IDs in one queue.
fn list(queue_directory: &Path, queue: &str) -> Vec<QueueId> {
    let Ok(dir) = std::fs::read_dir(queue_directory.join(queue)) else {
        return Vec::new();
    };
    let mut ids: Vec<QueueId> = dir
        .filter_map(Result::ok)
        .filter_map(|e| QueueId::parse(e.file_name().to_str()?))
        .collect();
    ids.sort();
    ids
}

/// Finds `id` in `queues` and does `op` to it; false when it is not there.
fn apply(queue_directory: &Path, op: Op, id: &QueueId, queues: &[&str]) -> bool {
    let Some((queue, path, _lock)) = locked(queue_directory, id, queues) else {
        return false;
    };
    let to = match op {
        Op::Delete => {
            if std::fs::remove_file(&path).is_err() {
                return false;
            }
            rostfix_queue::deferlog::remove(queue_directory, id.as_str());
            return true;
        }
        Op::Hold if queue == "hold" => return false,
        // smtpd may still be writing a message it puts on hold: it is
        // complete only when written (and recovery removes it otherwise).
        Op::Release | Op::Requeue
            if queue == "hold"
                && !rostfix_queue::file::QueueReader::is_complete(&path).unwrap_or(false) =>
        {
            return false;
        }
        Op::Hold => "hold",
        Op::Release => "deferred",
        Op::Requeue => "maildrop",
    };
    // The modification time moves with the file: a held deferred
    // message keeps its next retry time.
    let moved = std::fs::rename(&path, queue_directory.join(to).join(id.as_str())).is_ok();
    if moved && op == Op::Requeue {
        // It comes back under a new queue ID; the reasons go with the old.
        rostfix_queue::deferlog::remove(queue_directory, id.as_str());
    }
    moved
}

/// The queue file of `id` in one of `queues`, locked against qmgr (see
/// the module text). `None` when it is not there.
fn locked(
    queue_directory: &Path,
    id: &QueueId,
    queues: &[&str],
) -> Option<(String, PathBuf, File)> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let (queue, path) = queues.iter().find_map(|q| {
            let p = queue_directory.join(q).join(id.as_str());
            p.exists().then(|| (q.to_string(), p))
        })?;
        let Ok(file) = File::open(&path) else {
            // Moved on meanwhile (qmgr is done with it): look again.
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // SAFETY: the descriptor is open (borrowed from `file`) for the
        // whole call; flock touches no memory.
        let got = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        if !got {
            if Instant::now() > deadline {
                // A delivery that never ends: act anyway, as Postfix does.
                return Some((queue, path, file));
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        // The delivery that held the lock may have moved or removed the
        // file meanwhile: the name must still be this file.
        if rostfix_queue::file::still_named(&path, &file) {
            return Some((queue, path, file));
        }
    }
}

//! showq(8): the queue listing behind `postqueue -p` (= `mailq`,
//! `sendmail -bp`) and `postqueue -j`, in Postfix 3.7's formats
//! (recorded in tests/golden/postqueue).
//!
//! qmgr's process serves the listing on `public/showq` (a UNIX socket
//! any user who may enter public/, through the set-group-ID postqueue,
//! can reach): the client sends `p` or `j` on a line and reads the
//! listing. The queue files themselves stay readable by the mail system
//! only.
//!
//! The queues are read in Postfix's order (maildrop, active, incoming,
//! deferred, hold); within one, by arrival time (Postfix's order there
//! is the directory's). Deferred recipients carry the reason from the
//! message's defer log
//! ([`rostfix_queue::deferlog`]). The pool of emptied files (dot files
//! in incoming/, [`rostfix_queue::pool`]) holds no mail and is never
//! listed.

use std::path::Path;

use rostfix_message::date;
use rostfix_queue::file::QueueError;
use rostfix_queue::{QueueReader, deferlog};

/// The queues listed, in order, with the mark a listing gives them.
const QUEUES: &[(&str, Option<char>)] = &[
    ("maildrop", None),
    ("active", Some('*')),
    ("incoming", None),
    ("deferred", None),
    ("hold", Some('!')),
];

/// One message in the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub queue_name: &'static str,
    pub queue_id: String,
    pub arrival_time: u64,
    pub message_size: u64,
    /// As given; `MAILER-DAEMON` for the null sender.
    pub sender: String,
    /// Recipients still to deliver, with the reason they wait (if one is
    /// recorded).
    pub recipients: Vec<(String, Option<String>)>,
    /// Some recipient has a recorded reason: the others are shown as
    /// "reason unavailable".
    pub has_reasons: bool,
}

/// Reads every queue (of a mail system that is not running: nothing is
/// being delivered).
pub fn entries(queue_directory: &Path) -> Vec<Entry> {
    entries_of(queue_directory, &crate::qmgr::Active::default())
}

/// Reads every queue; a message in incoming/ that qmgr has taken in
/// (`active`) is listed as active, as it is in Postfix's active queue.
fn entries_of(queue_directory: &Path, active: &crate::qmgr::Active) -> Vec<Entry> {
    let mut out = Vec::new();
    for (queue, _) in QUEUES {
        let Ok(dir) = std::fs::read_dir(queue_directory.join(queue)) else {
            continue;
        };
        out.extend(dir.filter_map(Result::ok).filter_map(|e| {
            let mut entry = entry(queue_directory, queue, &e.path())?;
            if *queue == "incoming" && active.contains(&entry.queue_id) {
                entry.queue_name = "active";
            }
            Some(entry)
        }));
    }
    let rank = |e: &Entry| QUEUES.iter().position(|(q, _)| *q == e.queue_name);
    out.sort_by(|a, b| {
        (rank(a), a.arrival_time, &a.queue_id).cmp(&(rank(b), b.arrival_time, &b.queue_id))
    });
    out
}

fn entry(queue_directory: &Path, queue: &'static str, path: &Path) -> Option<Entry> {
    let name = path.file_name()?.to_str()?;
    if rostfix_queue::pool::is_pooled(std::ffi::OsStr::new(name)) {
        return None;
    }
    let env = match QueueReader::envelope(path) {
        Ok(env) => env,
        // Still being written, or gone since the directory was read.
        Err(QueueError::Incomplete | QueueError::Io(_)) => return None,
        Err(QueueError::Corrupt(_)) => return None,
    };
    let reasons = deferlog::read(queue_directory, name);
    let waiting: Vec<&str> = env
        .recipients
        .iter()
        .filter(|r| !r.done)
        .map(|r| r.address.as_str())
        .collect();
    // Those with a reason first, grouped by reason in the order the
    // defer log first gives each (as Postfix's agents log them, one
    // destination at a time), then the rest.
    let mut recipients: Vec<(String, Option<String>)> = Vec::new();
    let mut order: Vec<&str> = Vec::new();
    for (_, w) in &reasons {
        if !order.contains(&w.as_str()) {
            order.push(w);
        }
    }
    for why in order {
        for (a, w) in &reasons {
            if w == why && waiting.contains(&a.as_str()) {
                recipients.push((a.clone(), Some(w.clone())));
            }
        }
    }
    for a in waiting {
        if !reasons.iter().any(|(r, _)| r == a) {
            recipients.push((a.to_string(), None));
        }
    }
    Some(Entry {
        queue_name: queue,
        queue_id: name.to_string(),
        arrival_time: env.time.0,
        message_size: env.content_size,
        sender: if env.sender.is_empty() {
            "MAILER-DAEMON".to_string()
        } else {
            env.sender.clone()
        },
        has_reasons: !reasons.is_empty(),
        recipients,
    })
}

/// The socket under the queue directory.
pub const SHOWQ_SOCKET: &str = "public/showq";

/// Serves the listing on `public/showq` until the process ends.
pub fn serve(queue_directory: &Path, log: &crate::log::Log, active: crate::qmgr::Active) {
    let path = queue_directory.join(SHOWQ_SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            log.warning("showq", &format!("bind {}: {e}", path.display()));
            return;
        }
    };
    // The directory (public/, mode 0710) decides who may connect.
    let _ = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let queue_directory = queue_directory.to_path_buf();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let queue_directory = queue_directory.clone();
            let active = active.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 2];
                let Ok(Ok(n)) = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    conn.read(&mut request),
                )
                .await
                else {
                    return;
                };
                let json = n > 0 && request[0] == b'j';
                let text = tokio::task::spawn_blocking(move || {
                    let list = entries_of(&queue_directory, &active);
                    if json {
                        self::json(&list)
                    } else {
                        self::text(&list)
                    }
                })
                .await
                .unwrap_or_default();
                let _ = conn.write_all(text.as_bytes()).await;
            });
        }
    });
}

/// The listing from a running mail system's showq, in `json` or text
/// form; `None` when it cannot be reached.
pub fn ask(queue_directory: &Path, json: bool) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn =
        std::os::unix::net::UnixStream::connect(queue_directory.join(SHOWQ_SOCKET)).ok()?;
    conn.write_all(if json { b"j\n" } else { b"p\n" }).ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The column where a deferral reason in parentheses ends.
const REASON_END: usize = 78;
/// The indent of recipient lines.
const RECIPIENT_INDENT: usize = 41;

/// `postqueue -p`: Sendmail's mailq layout, as Postfix prints it.
pub fn text(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "Mail queue is empty\n".to_string();
    }
    let mut out =
        "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n".to_string();
    let mut total = 0u64;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        total += e.message_size;
        let mark = QUEUES
            .iter()
            .find(|(q, _)| *q == e.queue_name)
            .and_then(|(_, m)| *m);
        // ctime(3) without the year: "Mon Nov 23 06:09:29".
        let arrival = date::asctime(&date::local(e.arrival_time as i64));
        let arrival: String = arrival.chars().take(19).collect();
        // The mark extends the ID and may push the rest of the line on.
        let id = match mark {
            Some(m) => format!("{}{m}", e.queue_id),
            None => e.queue_id.clone(),
        };
        out.push_str(&format!(
            "{id:<11} {:>7} {arrival:<20} {}\n",
            e.message_size, e.sender
        ));
        let mut last_reason: Option<&str> = None;
        for (address, why) in &e.recipients {
            let shown = match why {
                Some(w) => Some(w.as_str()),
                None if e.has_reasons => Some("reason unavailable"),
                None => None,
            };
            if let Some(w) = shown
                && last_reason != Some(w)
            {
                out.push_str(&format!("{:>REASON_END$}\n", format!("({w})")));
            }
            last_reason = shown;
            out.push_str(&format!("{:RECIPIENT_INDENT$}{address}\n", ""));
        }
    }
    let n = entries.len();
    out.push_str(&format!(
        "\n-- {} Kbytes in {n} Request{}.\n",
        total / 1024,
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// `postqueue -j`: one JSON object per message and line.
pub fn json(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let recipients: Vec<String> = e
            .recipients
            .iter()
            .map(|(a, why)| match why {
                Some(w) => format!(
                    "{{\"address\": {}, \"delay_reason\": {}}}",
                    json_string(a),
                    json_string(w)
                ),
                None => format!("{{\"address\": {}}}", json_string(a)),
            })
            .collect();
        out.push_str(&format!(
            "{{\"queue_name\": {}, \"queue_id\": {}, \"arrival_time\": {}, \"message_size\": {}, \"forced_expire\": false, \"sender\": {}, \"recipients\": [{}]}}\n",
            json_string(e.queue_name),
            json_string(&e.queue_id),
            e.arrival_time,
            e.message_size,
            json_string(&e.sender),
            recipients.join(", ")
        ));
    }
    out
}

/// A JSON string literal (RFC 8259 escapes; other text as it is).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(queue: &'static str, rcpts: &[(&str, Option<&str>)]) -> Entry {
        Entry {
            queue_name: queue,
            queue_id: "8CBD198C589".into(),
            arrival_time: 0,
            message_size: 308,
            sender: "frank@example.test".into(),
            has_reasons: rcpts.iter().any(|(_, w)| w.is_some()),
            recipients: rcpts
                .iter()
                .map(|(a, w)| (a.to_string(), w.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn reasons_are_right_aligned_and_shared_by_neighbours() {
        let t = text(&[e(
            "active",
            &[
                ("m2@remote.example", Some("Connection refused")),
                ("m3@remote.example", Some("Connection refused")),
                ("m1@slow.example", None),
            ],
        )]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("8CBD198C589*     308 "), "{t}");
        assert_eq!(lines[2].len(), 78);
        assert!(lines[2].ends_with("(Connection refused)"));
        assert_eq!(lines[3], format!("{:41}m2@remote.example", ""));
        assert_eq!(lines[4], format!("{:41}m3@remote.example", ""));
        assert!(lines[5].ends_with("(reason unavailable)"));
        assert_eq!(lines[5].len(), 78);
        assert_eq!(lines[7], "");
        assert_eq!(lines[8], "-- 0 Kbytes in 1 Request.");
    }

    #[test]
    fn json_escapes_quotes() {
        let mut x = e("hold", &[("q@remote.example", None)]);
        x.sender = "\"john doe\"@example.test".into();
        let j = json(&[x]);
        assert!(
            j.contains(r#""sender": "\"john doe\"@example.test""#),
            "{j}"
        );
        assert!(j.contains(r#""recipients": [{"address": "q@remote.example"}]}"#));
    }
}

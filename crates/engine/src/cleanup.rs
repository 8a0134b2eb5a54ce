//! cleanup(8) for mail from smtpd: the Received header, the header fixes
//! Postfix makes (Return-Path removed; Message-Id and Date added where
//! missing for clients that get local header rewriting), virtual alias
//! expansion of recipients, and the queue file, made durable before the
//! caller may say 250.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use rostfix_maps::order;
use rostfix_message::date;
use rostfix_queue::file::Completed;
use rostfix_queue::{QueueFile, QueueId, Syncer};

use crate::settings::Settings;

/// Where finished messages go: the group committer that makes them
/// durable, then qmgr's inbox (their queue IDs).
#[derive(Debug, Clone)]
pub struct Intake {
    pub syncer: Syncer,
    pub qmgr: tokio::sync::mpsc::UnboundedSender<String>,
}

/// What smtpd knows about the message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub client_name: String,
    pub client_addr: String,
    pub helo: Option<String>,
    pub esmtp: bool,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Add Message-Id/Date if missing (local_header_rewrite_clients).
    pub rewrite_headers: bool,
}

/// A message being received into the queue.
#[derive(Debug)]
pub struct Cleanup {
    file: QueueFile,
    in_headers: bool,
    skipping: bool,
    seen_message_id: Option<String>,
    seen_date: bool,
    seen_from: bool,
    sender: String,
    rewrite_headers: bool,
    size: u64,
}

impl Cleanup {
    /// Starts a queue file in `incoming/` and writes the envelope and the
    /// Received header.
    pub fn start(s: &Settings, env: &Envelope) -> io::Result<Cleanup> {
        let dir = s.queue_directory.join("incoming");
        let mut file = QueueFile::create(&dir, s.long_queue_ids)?;
        file.sender(&env.sender);
        file.attr("client_name", &env.client_name);
        file.attr("client_address", &env.client_addr);
        if let Some(h) = &env.helo {
            file.attr("helo_name", h);
        }
        file.attr("protocol_name", if env.esmtp { "ESMTP" } else { "SMTP" });
        let mut seen = HashSet::new();
        for rcpt in &env.recipients {
            for final_addr in expand_aliases(s, rcpt) {
                if seen.insert(final_addr.to_ascii_lowercase()) {
                    file.recipient(&final_addr, rcpt);
                }
            }
        }
        file.content();
        let id = file.id().clone();
        let helo = env.helo.clone().unwrap_or_else(|| env.client_name.clone());
        let now = date::rfc5322(&date::local(date::now()));
        let protocol = if env.esmtp { "ESMTP" } else { "SMTP" };
        // One recipient is named in a "for" clause; otherwise the date
        // moves to a line of its own.
        let (by_end, last) = match env.recipients.as_slice() {
            [one] => ("", format!("\tfor <{one}>; {now}")),
            _ => (";", format!("\t{now}")),
        };
        let mut c = Cleanup {
            file,
            in_headers: true,
            skipping: false,
            seen_message_id: None,
            seen_date: false,
            seen_from: false,
            sender: env.sender.clone(),
            rewrite_headers: env.rewrite_headers || s.always_add_missing_headers,
            size: 0,
        };
        c.write(
            format!(
                "Received: from {helo} ({} [{}])",
                env.client_name, env.client_addr
            )
            .as_bytes(),
        )?;
        c.write(
            format!(
                "\tby {} ({}) with {protocol} id {id}{by_end}",
                s.myhostname, s.mail_name
            )
            .as_bytes(),
        )?;
        c.write(last.as_bytes())?;
        Ok(c)
    }

    pub fn id(&self) -> &QueueId {
        self.file.id()
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.size += line.len() as u64 + 1;
        self.file.line(line)
    }

    /// One content line from the client (without its newline).
    pub fn line(&mut self, s: &Settings, line: &[u8]) -> io::Result<()> {
        if self.in_headers {
            let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            let header_name = line
                .iter()
                .position(|&b| b == b':')
                .filter(|&i| i > 0 && line[..i].iter().all(|b| b.is_ascii_graphic()));
            if continuation && !line.is_empty() {
                if self.skipping {
                    return Ok(());
                }
                return self.write(line);
            }
            match header_name {
                Some(i) => {
                    let name = String::from_utf8_lossy(&line[..i]).to_ascii_lowercase();
                    self.skipping = name == "return-path";
                    if self.skipping {
                        return Ok(());
                    }
                    if name == "message-id" {
                        self.seen_message_id =
                            Some(String::from_utf8_lossy(&line[i + 1..]).trim().to_string());
                    }
                    self.seen_date |= name == "date";
                    self.seen_from |= name == "from";
                    return self.write(line);
                }
                None => {
                    // The first line that is not a header ends the headers.
                    self.end_headers(s)?;
                }
            }
        }
        self.write(line)
    }

    fn end_headers(&mut self, s: &Settings) -> io::Result<()> {
        self.in_headers = false;
        if !self.rewrite_headers {
            return Ok(());
        }
        if self.seen_message_id.is_none() {
            let id = format!(
                "<{}.{}@{}>",
                date::message_id_stamp(date::now()),
                self.file.id(),
                s.myhostname
            );
            self.write(format!("Message-Id: {id}").as_bytes())?;
            self.seen_message_id = Some(id);
        }
        if !self.seen_date {
            self.write(format!("Date: {}", date::rfc5322(&date::local(date::now()))).as_bytes())?;
        }
        if !self.seen_from {
            let from = if self.sender.is_empty() {
                "MAILER-DAEMON".to_string()
            } else {
                self.sender.clone()
            };
            self.write(format!("From: {from}").as_bytes())?;
        }
        Ok(())
    }

    /// Ends the message: the file is complete but not yet durable (the
    /// caller waits for a group commit before it may say 250). Returns
    /// the message-id too, for the log.
    pub fn complete(mut self, s: &Settings) -> io::Result<(Completed, Option<String>)> {
        if self.in_headers {
            self.end_headers(s)?;
        }
        let message_id = self.seen_message_id.take();
        Ok((self.file.complete()?, message_id))
    }

    /// Drops the message (refused after DATA).
    pub fn abandon(self) {
        let _ = self.file.discard();
    }
}

/// virtual_alias_maps expansion (virtual(5)): recursive, one-to-many, an
/// address that maps to itself is kept, at most 1000 results and 100
/// levels as Postfix's defaults.
pub fn expand_aliases(s: &Settings, addr: &str) -> Vec<String> {
    fn walk(s: &Settings, addr: &str, depth: usize, out: &mut Vec<String>) {
        if depth > 100 || out.len() >= 1000 || s.virtual_alias_maps.is_empty() {
            out.push(addr.to_string());
            return;
        }
        let keys = order::address_keys(addr, &s.order, false);
        match s.virtual_alias_maps.find_first(&keys) {
            Ok(Some(found)) => {
                for target in rostfix_config::value::split_list(&found.value) {
                    if target.eq_ignore_ascii_case(addr) {
                        out.push(target.to_string());
                    } else {
                        walk(s, target, depth + 1, out);
                    }
                }
            }
            _ => out.push(addr.to_string()),
        }
    }
    let mut out = Vec::new();
    walk(s, addr, 0, &mut out);
    out
}

/// The queue's directories.
pub const QUEUE_DIRS: &[&str] = &[
    "incoming", "active", "deferred", "hold", "corrupt", "pid", "maildrop", "bounce", "defer",
    "trace",
];

/// Makes sure the queue directories exist.
pub fn make_queue_dirs(queue_directory: &Path) -> io::Result<()> {
    for d in QUEUE_DIRS {
        std::fs::create_dir_all(queue_directory.join(d))?;
    }
    Ok(())
}

//! cleanup(8) for mail from smtpd: the Received header, the header fixes
//! Postfix makes (Return-Path and Bcc removed; Message-Id, Date and From,
//! or their Resent- forms, added where missing for clients that get local
//! header rewriting; hopcount_limit), canonical mapping and masquerading
//! of envelope and header addresses, virtual alias expansion of
//! recipients, and the queue file, made durable before the caller may say
//! 250.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use rostfix_message::date;
use rostfix_queue::file::{Completed, Dsn};
use rostfix_queue::{QueueFile, QueueId, Syncer};

use crate::log::Log;
use crate::resolve;
use crate::rewrite::{self, AddressClass};
use crate::settings::Settings;

/// Where finished messages go: the group committer that makes them
/// durable, then qmgr's inbox (their queue IDs).
#[derive(Debug, Clone)]
pub struct Intake {
    pub syncer: Syncer,
    pub qmgr: tokio::sync::mpsc::UnboundedSender<String>,
}

/// Where a message comes from: it decides the Received header and the
/// attributes the queue file keeps.
#[derive(Debug, Clone)]
pub enum Origin {
    /// An SMTP client, as smtpd saw it.
    Smtp {
        client_name: String,
        client_addr: String,
        helo: Option<String>,
        esmtp: bool,
        /// Under TLS: what it was (the Received header shows it with
        /// smtpd_tls_received_header).
        tls: Option<Box<crate::tls_server::TlsSession>>,
        /// The client authenticated (SMTP AUTH), and as whom when the
        /// Received header says it (smtpd_sasl_authenticated_header).
        authenticated: bool,
        auth_header: Option<String>,
    },
    /// Local submission through sendmail and pickup, by this user ID, at
    /// this arrival time (when sendmail wrote it: the Received and Date
    /// headers show it).
    Local { uid: u32, arrival: i64 },
}

impl Origin {
    /// The protocol the Received header and the queue file name: SMTP or
    /// ESMTP, with S under TLS and A when authenticated (RFC 3848).
    pub fn protocol(&self) -> String {
        match self {
            Origin::Smtp {
                esmtp,
                tls,
                authenticated,
                ..
            } => {
                let mut p = String::from(if *esmtp { "ESMTP" } else { "SMTP" });
                if *esmtp && tls.is_some() {
                    p.push('S');
                }
                if *esmtp && *authenticated {
                    p.push('A');
                }
                p
            }
            Origin::Local { .. } => "local".to_string(),
        }
    }
}

/// What smtpd or pickup knows about the message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub origin: Origin,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Each recipient's NOTIFY and ORCPT, by position (missing: none).
    pub dsn: Vec<Dsn>,
    /// RET (`full`, `hdrs`) and ENVID of MAIL FROM, or empty.
    pub ret: String,
    pub envid: String,
    /// sendmail -bv: a probe, to be tried and reported, not delivered.
    pub verify: bool,
    /// The client declared BODY=8BITMIME: the smtp client passes it on.
    pub eight_bit_mime: bool,
    /// Add Message-Id/Date if missing (local_header_rewrite_clients).
    pub rewrite_headers: bool,
    /// The sender's full name, for a From header cleanup adds (sendmail
    /// -F, or the password file's).
    pub full_name: Option<String>,
}

/// Why a message cannot be queued.
#[derive(Debug)]
pub enum Refused {
    /// Writing the queue file (or a table lookup) failed: try again.
    Io(io::Error),
    /// As many Received headers as hopcount_limit: a loop.
    TooManyHops,
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Refused {
        Refused::Io(e)
    }
}

/// Headers whose addresses are senders or recipients (canonical and
/// masquerade classes header_sender / header_recipient).
const SENDER_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "errors-to",
    "return-receipt-to",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
];
const RECIPIENT_HEADERS: &[&str] = &["to", "cc", "apparently-to", "resent-to", "resent-cc"];

/// The content with the addresses of its sender and recipient headers
/// put through `map` (smtp_generic_maps: the address, or `None` to keep
/// it), each changed header refolded; `None` when nothing changed. Only
/// the primary header section is looked at.
pub fn rewrite_header_addresses(
    content: &[u8],
    map: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<u8>> {
    let end = content
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(content.len(), |p| p + 1);
    let (head, rest) = content.split_at(end);
    let mut out = Vec::with_capacity(content.len() + 64);
    let mut changed = false;
    // Whole headers: a line and its continuation lines.
    let mut headers: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, _) in head.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        let next = head.get(i + 1);
        if !matches!(next, Some(b' ' | b'\t')) {
            headers.push(&head[start..=i]);
            start = i + 1;
        }
    }
    if start < head.len() {
        headers.push(&head[start..]);
    }
    for h in headers {
        let rewritten = rostfix_message::header::name_len(h).and_then(|n| {
            let name = std::str::from_utf8(&h[..n])
                .ok()?
                .trim_end()
                .to_ascii_lowercase();
            if !SENDER_HEADERS.contains(&name.as_str())
                && !RECIPIENT_HEADERS.contains(&name.as_str())
            {
                return None;
            }
            let colon = h.iter().position(|&b| b == b':')?;
            let value = std::str::from_utf8(&h[colon + 1..]).ok()?;
            let value = value.strip_suffix('\n').unwrap_or(value);
            let new = rewrite::rewrite_address_list(value, |a| map(a))?;
            let shown = std::str::from_utf8(&h[..colon]).ok()?;
            Some(format!("{shown}:{}\n", rewrite::refold(shown, &new)))
        });
        match rewritten {
            Some(new) => {
                out.extend_from_slice(new.as_bytes());
                changed = true;
            }
            None => out.extend_from_slice(h),
        }
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Which of the headers cleanup adds when missing the message has.
#[derive(Debug, Default)]
struct Seen {
    message_id: Option<String>,
    date: bool,
    from: bool,
    /// Any Resent- header: the Resent- forms are the ones to add.
    resent: bool,
    resent_message_id: Option<String>,
    resent_date: bool,
    resent_from: bool,
}

/// The Received header cleanup puts first, as its lines. `id` is the
/// queue ID it names (for `sendmail -bs`, the maildrop file's).
pub fn received(s: &Settings, env: &Envelope, id: &QueueId) -> Vec<String> {
    received_header(&s.myhostname, &s.mail_name, env, id)
}

/// [`received`] from the two parameters it needs.
pub fn received_header(
    myhostname: &str,
    mail_name: &str,
    env: &Envelope,
    id: &QueueId,
) -> Vec<String> {
    match &env.origin {
        Origin::Smtp {
            client_name,
            client_addr,
            helo,
            tls,
            auth_header,
            ..
        } => {
            let now = date::rfc5322(&date::local(date::now()));
            let helo = helo.as_deref().unwrap_or(client_name);
            let protocol = env.origin.protocol();
            // One recipient is named in a "for" clause; otherwise the
            // date moves to a line of its own.
            let (by_end, last) = match env.recipients.as_slice() {
                [one] => ("", format!("\tfor <{one}>; {now}")),
                _ => (";", format!("\t{now}")),
            };
            let mut lines = vec![format!(
                "Received: from {helo} ({client_name} [{client_addr}])"
            )];
            // smtpd_tls_received_header: the session's TLS, in a comment
            // broken where Postfix breaks it.
            if let Some(tls) = tls.as_ref().filter(|t| t.received_header) {
                lines.extend(tls.received_lines());
            }
            if let Some(user) = auth_header {
                lines.push(format!("\t(Authenticated sender: {user})"));
            }
            lines.push(format!(
                "\tby {myhostname} ({mail_name}) with {protocol} id {id}{by_end}"
            ));
            lines.push(last);
            lines
        }
        Origin::Local { uid, arrival } => vec![
            format!("Received: by {myhostname} ({mail_name}, from userid {uid})"),
            format!("\tid {id}; {}", date::rfc5322(&date::local(*arrival))),
        ],
    }
}

/// A message being received into the queue.
#[derive(Debug)]
pub struct Cleanup {
    file: QueueFile,
    in_headers: bool,
    /// The header being gathered (continuation lines joined by `\n`).
    header: Vec<u8>,
    seen: Seen,
    /// Received headers, for hopcount_limit.
    hops: u64,
    sender: String,
    full_name: Option<String>,
    /// The time a Date header added says: the arrival time.
    arrival: i64,
    /// Header addresses get canonical form, canonical maps and
    /// masquerading (local_header_rewrite_clients).
    rewrite_headers: bool,
    /// Missing Message-Id/Date/From are added (the client gets local
    /// header rewriting, or always_add_missing_headers).
    add_missing: bool,
    /// The gathered header reached header_size_limit: the rest of it is
    /// dropped.
    header_full: bool,
    size: u64,
    /// Goes to the hold queue, not to qmgr (access(5) HOLD).
    held: bool,
}

impl Cleanup {
    /// Starts a queue file in `incoming/` and writes the envelope and the
    /// Received header. The envelope addresses are rewritten here:
    /// canonical maps and masquerading, then virtual aliases; a recipient
    /// reached twice from the same original address is kept once.
    pub fn start(s: &Settings, env: &Envelope) -> io::Result<Cleanup> {
        let refused = |e: rewrite::RewriteError| io::Error::other(e.to_string());
        let sender = if env.sender.is_empty() {
            String::new()
        } else {
            let sender = resolve::canonical_form(s, &env.sender);
            let c =
                rewrite::canonical(s, &sender, AddressClass::EnvelopeSender).map_err(refused)?;
            rewrite::masquerade(s, &c, AddressClass::EnvelopeSender)
        };
        let mut recipients = Vec::new();
        let mut seen = HashSet::new();
        let no_dsn = Dsn::default();
        for (i, rcpt) in env.recipients.iter().enumerate() {
            let canonical = resolve::canonical_form(s, rcpt);
            // Without ORCPT, the original recipient a notification names
            // is the one given, in canonical form (as Postfix's cleanup
            // records it).
            let mut dsn = env.dsn.get(i).unwrap_or(&no_dsn).clone();
            if dsn.orcpt.is_empty() {
                dsn.orcpt = format!("rfc822;{canonical}");
            }
            let c = rewrite::canonical(s, &canonical, AddressClass::EnvelopeRecipient)
                .map_err(refused)?;
            let c = rewrite::masquerade(s, &c, AddressClass::EnvelopeRecipient);
            for final_addr in rewrite::expand_aliases(s, &c).map_err(refused)? {
                if seen.insert((final_addr.to_ascii_lowercase(), rcpt.to_ascii_lowercase())) {
                    recipients.push((final_addr, rcpt, dsn.clone()));
                }
            }
        }
        let dir = s.queue_directory.join("incoming");
        let mut file = QueueFile::create_reusing(&dir, s.long_queue_ids, Some(&s.queue_pool))?;
        file.sender(&sender);
        match &env.origin {
            Origin::Smtp {
                client_name,
                client_addr,
                helo,
                ..
            } => {
                file.attr("client_name", client_name);
                file.attr("client_address", client_addr);
                if let Some(h) = helo {
                    file.attr("helo_name", h);
                }
                file.attr("protocol_name", &env.origin.protocol());
            }
            Origin::Local { uid, .. } => {
                file.attr("protocol_name", "local");
                file.attr("uid", &uid.to_string());
            }
        }
        if !env.ret.is_empty() {
            file.attr("dsn_ret", &env.ret);
        }
        if !env.envid.is_empty() {
            file.attr("dsn_envid", &env.envid);
        }
        if env.verify {
            file.attr("verify", "yes");
        }
        if env.eight_bit_mime {
            file.attr("encoding", "8bit");
        }
        for (final_addr, rcpt, dsn) in &recipients {
            file.recipient_dsn(final_addr, rcpt, dsn);
        }
        file.content();
        let mut c = Cleanup {
            file,
            in_headers: true,
            header: Vec::new(),
            seen: Seen::default(),
            // The Received header written below.
            hops: 1,
            sender,
            full_name: env.full_name.clone(),
            arrival: match env.origin {
                Origin::Local { arrival, .. } => arrival,
                Origin::Smtp { .. } => date::now(),
            },
            rewrite_headers: env.rewrite_headers,
            add_missing: env.rewrite_headers || s.always_add_missing_headers,
            header_full: false,
            size: 0,
            held: false,
        };
        for line in received(s, env, c.file.id()) {
            c.write(line.as_bytes())?;
        }
        Ok(c)
    }

    pub fn id(&self) -> &QueueId {
        self.file.id()
    }

    fn write(&mut self, line: &[u8]) -> io::Result<()> {
        self.size += line.len() as u64 + 1;
        self.file.line(line)
    }

    /// One content line from the client (without its newline). Headers
    /// are gathered whole (with their continuation lines) and then
    /// written, rewritten or dropped.
    pub fn line(&mut self, s: &Settings, line: &[u8]) -> io::Result<()> {
        if self.in_headers {
            let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            if continuation && !self.header.is_empty() {
                // header_size_limit: the excess is discarded.
                if !self.header_full && self.header.len() + 1 + line.len() <= s.header_size_limit {
                    self.header.push(b'\n');
                    self.header.extend_from_slice(line);
                } else {
                    self.header_full = true;
                }
                return Ok(());
            }
            self.flush_header(s)?;
            if rostfix_message::header::is_header(line) {
                self.header
                    .extend_from_slice(&line[..line.len().min(s.header_size_limit)]);
                return Ok(());
            }
            if !continuation {
                // The first line that is not a header ends the headers,
                // which an empty line must separate from the body.
                self.end_headers(s)?;
                if !line.is_empty() {
                    self.write(b"")?;
                }
            }
        }
        self.write(line)
    }

    /// Writes the gathered header, as cleanup(8) would have it.
    fn flush_header(&mut self, s: &Settings) -> io::Result<()> {
        if self.header.is_empty() {
            return Ok(());
        }
        let mut header = std::mem::take(&mut self.header);
        self.header_full = false;
        let mut colon = header.iter().position(|&b| b == b':').unwrap_or(0);
        // `To : x` is a To header, written `To: x` (as Postfix does).
        let name_len = rostfix_message::header::name_len(&header).unwrap_or(colon);
        if name_len < colon {
            header.drain(name_len..colon);
            colon = name_len;
        }
        let name = String::from_utf8_lossy(&header[..name_len]).to_ascii_lowercase();
        let value = || {
            String::from_utf8_lossy(&header[colon + 1..])
                .trim()
                .to_string()
        };
        // message_drop_headers (Return-Path is the delivery agent's to
        // add; Bcc must not reach the recipients).
        if s.message_drop_headers.contains(&name) {
            return Ok(());
        }
        match name.as_str() {
            "received" => self.hops += 1,
            "message-id" => self.seen.message_id = Some(value()),
            "date" => self.seen.date = true,
            "from" => self.seen.from = true,
            "resent-message-id" => self.seen.resent_message_id = Some(value()),
            "resent-date" => self.seen.resent_date = true,
            "resent-from" => self.seen.resent_from = true,
            _ => {}
        }
        self.seen.resent |= name.starts_with("resent-");
        let class = if SENDER_HEADERS.contains(&name.as_str()) {
            Some(AddressClass::HeaderSender)
        } else if RECIPIENT_HEADERS.contains(&name.as_str()) {
            Some(AddressClass::HeaderRecipient)
        } else {
            None
        };
        let rewritten = match (class, std::str::from_utf8(&header[colon + 1..])) {
            (Some(class), Ok(v)) if self.rewrite_headers => {
                let shown = String::from_utf8_lossy(&header[..colon]).into_owned();
                self.rewrite_addresses(s, &shown, v, class)?
            }
            _ => None,
        };
        let text = match &rewritten {
            Some(v) => [&header[..=colon], v.as_bytes()].concat(),
            None => header,
        };
        for l in text.split(|&b| b == b'\n') {
            self.write(l)?;
        }
        Ok(())
    }

    /// The header value with each address in canonical form (`user`
    /// completed with `@$myorigin`, ...), mapped and masqueraded.
    fn rewrite_addresses(
        &self,
        s: &Settings,
        name: &str,
        value: &str,
        class: AddressClass,
    ) -> io::Result<Option<String>> {
        let mut failed = None;
        let out = rewrite::rewrite_address_list(value, |addr| {
            let qualified = resolve::canonical_form(s, addr);
            match rewrite::canonical(s, &qualified, class) {
                Ok(c) => Some(rewrite::masquerade(s, &c, class)),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            }
        });
        match failed {
            Some(e) => Err(io::Error::other(e.to_string())),
            None => Ok(out.map(|v| rewrite::refold(name, &v))),
        }
    }

    fn end_headers(&mut self, s: &Settings) -> io::Result<()> {
        self.flush_header(s)?;
        self.in_headers = false;
        if !self.add_missing {
            return Ok(());
        }
        // A resent message gets the Resent- forms (RFC 5322 3.6.6).
        let (message_id, date_seen, from_seen, prefix) = if self.seen.resent {
            (
                &self.seen.resent_message_id,
                self.seen.resent_date,
                self.seen.resent_from,
                "Resent-",
            )
        } else {
            (&self.seen.message_id, self.seen.date, self.seen.from, "")
        };
        let mut added = Vec::new();
        if message_id.is_none() {
            let id = format!(
                "<{}.{}@{}>",
                date::message_id_stamp(date::now()),
                self.file.id(),
                s.myhostname
            );
            added.push(format!("{prefix}Message-Id: {id}"));
            if self.seen.resent {
                self.seen.resent_message_id = Some(id);
            } else {
                self.seen.message_id = Some(id);
            }
        }
        if !date_seen {
            added.push(format!(
                "{prefix}Date: {}",
                date::rfc5322(&date::local(self.arrival))
            ));
        }
        if !from_seen {
            let from = if self.sender.is_empty() {
                "MAILER-DAEMON"
            } else {
                &self.sender
            };
            let name = self.full_name.as_deref().filter(|n| !n.is_empty());
            let from = match name.filter(|_| !self.sender.is_empty()) {
                // hfrom_format = standard (RFC 5322 name-addr).
                Some(name) => format!("{} <{from}>", display_name(name)),
                None => from.to_string(),
            };
            added.push(format!("{prefix}From: {from}"));
        }
        for line in added {
            self.write(line.as_bytes())?;
        }
        Ok(())
    }

    /// Ends the message: the file is complete but not yet durable (the
    /// caller waits for a group commit before it may say 250). Returns
    /// what the log names the message by ([`logged_as`]).
    pub fn complete(mut self, s: &Settings) -> Result<(Completed, String), Refused> {
        if self.in_headers
            && let Err(e) = self.end_headers(s)
        {
            let _ = self.file.discard();
            return Err(Refused::Io(e));
        }
        if self.hops >= s.hopcount_limit {
            let _ = self.file.discard();
            return Err(Refused::TooManyHops);
        }
        let logged = logged_as(
            self.seen.message_id.as_deref(),
            self.seen.resent_message_id.as_deref(),
        );
        Ok((self.file.complete()?, logged))
    }

    /// Drops the message (refused after DATA).
    pub fn abandon(self) {
        let _ = self.file.discard();
    }

    /// Puts the message on hold (access(5) HOLD): it is completed in
    /// hold/, which qmgr never reads (postsuper -H, -r or -d take it out).
    pub fn hold(&mut self, s: &Settings) -> io::Result<()> {
        self.file.move_into(&s.queue_directory.join("hold"))?;
        self.held = true;
        Ok(())
    }
}

/// The recipients a message's headers name, for `sendmail -t`: those of
/// Resent-To, Resent-Cc and Resent-Bcc when the message has any (it is
/// being resent), else those of To, Cc and Bcc.
pub fn header_recipients<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut headers: Vec<Vec<u8>> = Vec::new();
    for l in lines {
        match headers.last_mut() {
            Some(h) if l.first().is_some_and(|b| *b == b' ' || *b == b'\t') => {
                h.push(b' ');
                h.extend_from_slice(l);
            }
            _ => headers.push(l.to_vec()),
        }
    }
    let mut plain = Vec::new();
    let mut resent = Vec::new();
    // Any Resent- header makes the message a resent one (as for
    // cleanup's Resent- headers): then only the Resent- recipients count.
    let mut resending = false;
    for h in &headers {
        let text = String::from_utf8_lossy(h);
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        resending |= name.starts_with("resent-");
        let out = match name.as_str() {
            "to" | "cc" | "bcc" => &mut plain,
            "resent-to" | "resent-cc" | "resent-bcc" => &mut resent,
            _ => continue,
        };
        rewrite::rewrite_address_list(value, |a| {
            out.push(a.to_string());
            None
        });
    }
    if resending { resent } else { plain }
}

/// A full name as an RFC 5322 display name: as it is when it is a
/// phrase of atoms, else quoted.
fn display_name(name: &str) -> String {
    let atext = |c: char| c.is_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) && !name.starts_with(' ') && !name.ends_with(' ') {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Ends the message and waits for the group commit (the durability rule:
/// the file and its name are on disk before the caller says 250), logs
/// its message-id and tells qmgr. The caller waits without holding a
/// thread.
pub async fn commit(
    cleanup: Cleanup,
    s: &Settings,
    log: &Log,
    intake: &Intake,
) -> Result<QueueId, Refused> {
    let id = cleanup.id().clone();
    let held = cleanup.held;
    let done = async {
        let (done, message_id) = cleanup.complete(s)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let waiting = intake.syncer.notify(
            &[&done.file],
            done.since,
            Box::new(move |outcome| {
                let _ = tx.send(outcome);
            }),
        );
        let committed = match waiting {
            Err(e) => Err(e),
            Ok(()) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(io::Error::other(e)),
                Err(_) => Err(io::Error::other("group commit stopped")),
            },
        };
        match committed {
            Ok(()) => Ok((done.id, message_id)),
            Err(e) => {
                // The client hears 451 and sends again: this copy must
                // not be found and delivered too.
                let _ = std::fs::remove_file(&done.path);
                Err(Refused::Io(e))
            }
        }
    };
    match done.await {
        Ok((id, message_id)) => {
            log.info("cleanup", &format!("{id}: {message_id}"));
            if !held {
                let _ = intake.qmgr.send(id.to_string());
            }
            Ok(id)
        }
        Err(Refused::Io(e)) => {
            log.warning("cleanup", &format!("{id}: {e}"));
            Err(Refused::Io(e))
        }
        Err(refused) => Err(refused),
    }
}

/// Queues a message that Rostfix makes itself (a notification, mail a
/// local alias forwards): `content` is given the new queue ID and returns
/// the text (lines joined by `\n`). Returns once the file is durable.
pub fn queue_local(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    sender: &str,
    recipients: &[(String, String)],
    content: impl FnOnce(&QueueId) -> Vec<u8>,
) -> io::Result<QueueId> {
    queue_forward(
        s,
        log,
        syncer,
        sender,
        recipients,
        &Carried::default(),
        content,
    )
}

/// What a forwarded message keeps of the original's RFC 3461 requests:
/// the recipient's NOTIFY and ORCPT (given to every new recipient), RET
/// and ENVID.
#[derive(Debug, Default)]
pub struct Carried<'a> {
    pub dsn: Dsn,
    pub ret: &'a str,
    pub envid: &'a str,
}

/// [`queue_local`] for mail local(8) forwards, with what it carries.
pub fn queue_forward(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    sender: &str,
    recipients: &[(String, String)],
    carried: &Carried,
    content: impl FnOnce(&QueueId) -> Vec<u8>,
) -> io::Result<QueueId> {
    let mut file = QueueFile::create(&s.queue_directory.join("incoming"), s.long_queue_ids)?;
    file.sender(sender);
    file.attr("protocol_name", "local");
    if !carried.ret.is_empty() {
        file.attr("dsn_ret", carried.ret);
    }
    if !carried.envid.is_empty() {
        file.attr("dsn_envid", carried.envid);
    }
    for (address, original) in recipients {
        file.recipient_dsn(address, original, &carried.dsn);
    }
    file.content();
    let text = content(file.id());
    for line in text.split(|&b| b == b'\n') {
        if let Err(e) = file.line(line) {
            let _ = file.discard();
            return Err(e);
        }
    }
    let done = file.complete()?;
    if let Err(e) = syncer.wait(&done.file, done.since) {
        let _ = std::fs::remove_file(&done.path);
        return Err(e);
    }
    // Logged before the line that names the new message (the notice's
    // `notification: ID`, the alias's `forwarded as ID`), as Postfix's
    // cleanup logs it while the message is made.
    let (id, resent) = header_ids(&text);
    log.info(
        "cleanup",
        &format!(
            "{}: {}",
            done.id,
            logged_as(id.as_deref(), resent.as_deref())
        ),
    );
    Ok(done.id)
}

/// What cleanup's log line names a message by: its Resent-Message-ID
/// when it has one, else its Message-ID, else `message-id=<>`.
fn logged_as(message_id: Option<&str>, resent_message_id: Option<&str>) -> String {
    match (message_id, resent_message_id) {
        (_, Some(r)) => format!("resent-message-id={r}"),
        (Some(m), None) => format!("message-id={m}"),
        (None, None) => "message-id=<>".to_string(),
    }
}

/// The Message-ID and Resent-Message-ID of a message Rostfix made
/// itself (`\n` line ends): the last of each, unfolded, as
/// [`Cleanup`] keeps them.
fn header_ids(text: &[u8]) -> (Option<String>, Option<String>) {
    let (mut id, mut resent) = (None, None);
    let head = text
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(text, |end| &text[..end]);
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let mut value = Vec::new();
        let Some(name) = rostfix_message::header::name_len(line) else {
            continue;
        };
        let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        value.extend_from_slice(&line[(colon + 1).min(line.len())..]);
        while let Some(more) =
            lines.next_if(|l| l.first().is_some_and(|b| *b == b' ' || *b == b'\t'))
        {
            value.extend_from_slice(more);
        }
        let value = String::from_utf8_lossy(&value).trim().to_string();
        if line[..name].eq_ignore_ascii_case(b"message-id") {
            id = Some(value);
        } else if line[..name].eq_ignore_ascii_case(b"resent-message-id") {
            resent = Some(value);
        }
    }
    (id, resent)
}

/// The queue's directories.
pub const QUEUE_DIRS: &[&str] = &[
    "incoming", "active", "deferred", "hold", "corrupt", "pid", "maildrop", "public",
    // Sockets of services beside the mail system (Dovecot's auth socket
    // at private/auth, as seed 004 sets smtpd_sasl_path).
    "private", "bounce", "defer", "trace",
];

/// Makes sure the queue directories and pickup's FIFO exist.
pub fn make_queue_dirs(queue_directory: &Path) -> io::Result<()> {
    for d in QUEUE_DIRS {
        std::fs::create_dir_all(queue_directory.join(d))?;
    }
    for name in FIFOS {
        // Every local user may write a request (mkfifo honours the umask).
        let fd = open_fifo(&queue_directory.join(name))?;
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o622))?;
    }
    Ok(())
}

/// Opens a queue entry the master (root) changes, never through a
/// symbolic link: the directory it is in belongs to mail_owner, who could
/// have put a link to a file of root's there. `kind` is what it must be.
pub fn open_entry(path: &Path, dir: bool) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let t = f.metadata()?.file_type();
    if (dir && t.is_dir()) || (!dir && t.is_fifo()) {
        Ok(f)
    } else {
        Err(io::Error::other(format!(
            "{}: not a {}",
            path.display(),
            if dir { "directory" } else { "FIFO" }
        )))
    }
}

/// A service FIFO, made when missing and made again when something else
/// stands in its place, opened without following links.
fn open_fifo(path: &Path) -> io::Result<std::fs::File> {
    let make = || match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    };
    make()?;
    match open_entry(path, false) {
        Ok(f) => Ok(f),
        Err(_) => {
            std::fs::remove_file(path)?;
            make()?;
            open_entry(path, false)
        }
    }
}

/// The FIFOs local commands wake services through.
pub const FIFOS: &[&str] = &[
    rostfix_queue::maildrop::PICKUP_FIFO,
    rostfix_queue::maildrop::QMGR_FIFO,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_ids_of_made_messages_are_read_as_cleanup_reads_headers() {
        let text = b"Received: by x\n\tid A; date\nMessage-ID :\n <first@x>\n\
Message-ID: <second@x>\nSubject: s\n\nMessage-ID: <in-body@x>\n";
        let (id, resent) = header_ids(text);
        assert_eq!(id.as_deref(), Some("<second@x>"));
        assert_eq!(resent, None);
        let folded = b"Resent-Message-Id:\n\t<r@x>\n\nbody\n";
        assert_eq!(header_ids(folded).1.as_deref(), Some("<r@x>"));
        assert_eq!(logged_as(None, Some("<r@x>")), "resent-message-id=<r@x>");
        assert_eq!(logged_as(None, None), "message-id=<>");
    }

    fn rcpts(lines: &[&str]) -> Vec<String> {
        header_recipients(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn sendmail_t_takes_the_resent_recipients_of_a_resent_message() {
        assert_eq!(
            rcpts(&["To: a@x, B <b@y>", "Cc: c@z", "Bcc:", " d@w"]),
            vec!["a@x", "b@y", "c@z", "d@w"]
        );
        assert_eq!(
            rcpts(&["To: a@x", "Resent-To: r@x", "Resent-From: s@x"]),
            vec!["r@x"]
        );
        // Resent, but to nobody: To does not count.
        assert!(rcpts(&["To: a@x", "Resent-From: s@x"]).is_empty());
        assert_eq!(rcpts(&["To : spaced@x"]), vec!["spaced@x"]);
    }
}

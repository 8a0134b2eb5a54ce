//! bounce(8), as far as failed deliveries need it: the non-delivery
//! notification to the sender (RFC 3464: a multipart/report with a
//! human-readable part, a message/delivery-status part and the returned
//! message, or only its headers past bounce_size_limit), queued like any
//! other message and durable before the failed recipients are done.
//! Mail from the null sender is never bounced (its failures are only
//! logged).

use std::io;

use rostfix_message::date;
use rostfix_queue::file::Recipient;
use rostfix_queue::{QueueId, Syncer};

use crate::log::{Log, printable};
use crate::settings::Settings;

/// One recipient a notification reports on: one that failed for good,
/// or (a success report) one delivered.
#[derive(Debug, Clone)]
pub struct Failed {
    pub address: String,
    /// Original-Recipient: the ORCPT the client gave (`rfc822;addr`),
    /// else `rfc822;` and the address it gave.
    pub original: String,
    /// The status code (`5.1.1`).
    pub dsn: String,
    /// The reason, as logged.
    pub why: String,
    /// The Diagnostic-Code (`X-Postfix; reason`).
    pub diagnostic: String,
    /// Action: `failed`, `delivered`, `expanded`.
    pub action: &'static str,
    /// The next hop that refused (Remote-MTA), when one did.
    pub remote_mta: Option<String>,
    /// The address the client gave, when the recipient is another
    /// (rewritten, an alias, unqualified): the text part says so.
    pub expanded_from: Option<String>,
}

impl Failed {
    /// A recipient that failed (or waits) for the reason `f` gives.
    pub fn from_failure(r: &Recipient, f: &crate::virtual_agent::Failure) -> Failed {
        let (dsn, why) = f.parts();
        let mut out = Failed::new(r, dsn.to_string(), why.to_string(), f.diagnostic());
        out.remote_mta = f.remote_mta().map(str::to_string);
        out
    }

    pub fn new(r: &Recipient, dsn: String, why: String, diagnostic: String) -> Failed {
        let original = if !r.dsn.orcpt.is_empty() {
            r.dsn.orcpt.clone()
        } else if !r.original.is_empty() {
            format!("rfc822;{}", r.original)
        } else {
            String::new()
        };
        Failed {
            address: r.address.clone(),
            original,
            dsn,
            why,
            diagnostic,
            action: "failed",
            remote_mta: None,
            expanded_from: Some(r.original.clone()).filter(|o| !o.is_empty() && *o != r.address),
        }
    }
}

/// A long field broken at spaces into lines of at most 79 characters,
/// the continuation lines indented by four spaces, as Postfix's bounce
/// daemon writes a Diagnostic-Code (recorded in
/// tests/delivery/cases/relay-rcpt-550; a 77-character line stays whole
/// in relocated-smtp). A word longer than a line is not broken.
fn wrap(text: &str) -> Vec<String> {
    const WIDTH: usize = 79;
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        if !cur.is_empty() && cur.len() + 1 + word.len() > WIDTH && cur.trim() != "" {
            out.push(std::mem::take(&mut cur));
            cur.push_str("    ");
            cur.push_str(word);
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}

/// Which notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Non-delivery: the failed recipients, the message returned.
    Failure,
    /// NOTIFY=SUCCESS: the delivered recipients, the headers returned.
    Success,
    /// delay_warning_time passed: the recipients still waiting, the
    /// headers returned.
    Delay,
    /// sendmail -bv: what delivery would do, the headers returned.
    Verify,
}

/// The message the notification is about.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub id: &'a QueueId,
    pub sender: &'a str,
    /// Queue time, seconds since the epoch.
    pub arrival: i64,
    /// The queued content, lines ending in `\n`.
    pub content: &'a [u8],
    /// RET=HDRS: return only the headers.
    pub ret_headers: bool,
    /// ENVID, or empty.
    pub envid: &'a str,
}

/// Queues the non-delivery notification for `failed` to `original`'s
/// sender and waits until it is durable; returns its queue ID.
pub fn queue(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    original: &Original,
    failed: &[Failed],
) -> io::Result<QueueId> {
    report(s, log, syncer, original, failed, Kind::Failure)
}

/// Queues a notification of `kind` about `recipients` to `original`'s
/// sender and waits until it is durable; returns its queue ID.
pub fn report(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    original: &Original,
    recipients: &[Failed],
    kind: Kind,
) -> io::Result<QueueId> {
    let to = original.sender.to_string();
    crate::cleanup::queue_local(s, log, syncer, "", &[(to.clone(), to)], |id| {
        notification(s, id, original, recipients, kind, None)
    })
}

/// The postmaster's notice (notify_classes): a copy of a bounce or delay
/// notice, or a bounce that could not be delivered (a double bounce), to
/// `recipient` (as configured: bounce_notice_recipient and friends), from
/// double_bounce_sender@$myhostname.
pub fn postmaster(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    original: &Original,
    recipients: &[Failed],
    kind: Kind,
    recipient: &str,
) -> io::Result<QueueId> {
    let to = crate::resolve::canonical_form(s, recipient);
    let sender = format!("{}@{}", s.double_bounce_sender, s.myhostname);
    let rcpts = [(to.clone(), recipient.to_string())];
    crate::cleanup::queue_local(s, log, syncer, &sender, &rcpts, |id| {
        notification(s, id, original, recipients, kind, Some(&to))
    })
}

/// Whether `sender` is the one postmaster notices come from (a notice
/// that fails is dropped: nobody is left to tell).
pub fn is_postmaster_notice(s: &Settings, sender: &str) -> bool {
    sender.eq_ignore_ascii_case(&format!("{}@{}", s.double_bounce_sender, s.myhostname))
}

/// The notification's text (lines joined by `\n`, no final newline).
fn notification(
    s: &Settings,
    id: &QueueId,
    original: &Original,
    failed: &[Failed],
    kind: Kind,
    postmaster: Option<&str>,
) -> Vec<u8> {
    let now = date::now();
    let stamp = date::rfc5322(&date::local(now));
    let host = &s.myhostname;
    let boundary = format!("{}.{now}/{host}", original.id);
    let mut t = Vec::with_capacity(original.content.len() + 4096);
    let mut line = |l: &str| {
        t.extend_from_slice(l.as_bytes());
        t.push(b'\n');
    };
    line(&format!("Received: by {host} ({})", s.mail_name));
    line(&format!("\tid {id}; {stamp}"));
    line(&format!("Date: {stamp}"));
    // cleanup qualifies MAILER-DAEMON with myorigin, as any local address.
    line(&format!(
        "From: Mail Delivery System <{}>",
        crate::resolve::canonical_form(s, "MAILER-DAEMON")
    ));
    line(match (kind, postmaster) {
        (Kind::Failure, None) => "Subject: Undelivered Mail Returned to Sender",
        (Kind::Success, _) => "Subject: Successful Mail Delivery Report",
        (Kind::Delay, None) => "Subject: Delayed Mail (still being retried)",
        (Kind::Verify, _) => "Subject: Mail Delivery Status Report",
        (Kind::Failure, Some(_)) => "Subject: Postmaster Copy: Undelivered Mail",
        (Kind::Delay, Some(_)) => "Subject: Postmaster Warning: Delayed Mail",
    });
    line(&format!("To: {}", postmaster.unwrap_or(original.sender)));
    line(if postmaster.is_some() {
        "Auto-Submitted: auto-generated"
    } else {
        "Auto-Submitted: auto-replied"
    });
    line("MIME-Version: 1.0");
    line("Content-Type: multipart/report; report-type=delivery-status;");
    line(&format!("\tboundary=\"{boundary}\""));
    line("Content-Transfer-Encoding: 8bit");
    line(&format!(
        "Message-Id: <{}.{id}@{host}>",
        date::message_id_stamp(now)
    ));
    line("");
    line("This is a MIME-encapsulated message.");
    line("");
    line(&format!("--{boundary}"));
    line("Content-Description: Notification");
    line("Content-Type: text/plain; charset=utf-8");
    line("Content-Transfer-Encoding: 8bit");
    line("");
    // The postmaster gets the facts only.
    match postmaster {
        None => prose(&mut line, host, kind),
        Some(_) => line(""),
    }
    for f in failed {
        let from = f
            .expanded_from
            .as_ref()
            .map_or(String::new(), |o| format!(" (expanded from <{o}>)"));
        line(&format!("<{}>{from}: {}", f.address, f.why));
        line("");
    }
    line(&format!("--{boundary}"));
    line("Content-Description: Delivery report");
    line("Content-Type: message/delivery-status");
    line("");
    line(&format!("Reporting-MTA: dns; {host}"));
    if !original.envid.is_empty() {
        line(&format!(
            "Original-Envelope-Id: {}",
            printable(original.envid)
        ));
    }
    line(&format!("X-Postfix-Queue-ID: {}", original.id));
    // The null sender shows as MAILER-DAEMON (a double bounce).
    let sender = if original.sender.is_empty() {
        format!("MAILER-DAEMON@{host}")
    } else {
        original.sender.to_string()
    };
    line(&format!("X-Postfix-Sender: rfc822; {sender}"));
    line(&format!(
        "Arrival-Date: {}",
        date::rfc5322(&date::local(original.arrival))
    ));
    for f in failed {
        line("");
        line(&format!("Final-Recipient: rfc822; {}", f.address));
        if !f.original.is_empty() {
            line(&format!("Original-Recipient: {}", printable(&f.original)));
        }
        line(&format!("Action: {}", f.action));
        line(&format!("Status: {}", f.dsn));
        if let Some(mta) = &f.remote_mta {
            line(&format!("Remote-MTA: dns; {mta}"));
        }
        for l in wrap(&format!("Diagnostic-Code: {}", f.diagnostic)) {
            line(&l);
        }
        if kind == Kind::Delay {
            let until = original.arrival + s.maximal_queue_lifetime as i64;
            line(&format!(
                "Will-Retry-Until: {}",
                date::rfc5322(&date::local(until))
            ));
        }
    }
    line("");
    // The whole message, or its headers: when it is too big to return,
    // when the sender asked for them only (RET=HDRS), and in a success
    // report.
    let fits = original.content.len() <= s.bounce_size_limit;
    let whole = match (kind, postmaster) {
        (Kind::Failure, None) => !original.ret_headers && fits,
        // A double bounce returns the bounce that failed; a copy of the
        // sender's bounce, its headers.
        (Kind::Failure, Some(_)) => original.sender.is_empty() && fits,
        _ => false,
    };
    line(&format!("--{boundary}"));
    line(match (kind, whole) {
        (Kind::Success | Kind::Verify, _) => "Content-Description: Message Headers",
        (_, true) => "Content-Description: Undelivered Message",
        (_, false) => "Content-Description: Undelivered Message Headers",
    });
    line(if whole {
        "Content-Type: message/rfc822"
    } else {
        "Content-Type: text/rfc822-headers"
    });
    line("Content-Transfer-Encoding: 8bit");
    line("");
    line(&format!("Return-Path: <{sender}>"));
    let content = original.content;
    let mut returned = if whole {
        content
    } else {
        let end = content
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(content.len(), |i| i + 1);
        &content[..end]
    };
    while let Some(rest) = returned.strip_suffix(b"\n") {
        returned = rest;
    }
    t.extend_from_slice(returned);
    t.extend_from_slice(b"\n\n");
    t.extend_from_slice(format!("--{boundary}--").as_bytes());
    t
}

/// The human-readable part's prose, ending in an empty line.
fn prose(line: &mut impl FnMut(&str), host: &str, kind: Kind) {
    line(&format!("This is the mail system at host {host}."));
    line("");
    match kind {
        Kind::Failure => {
            line("Your message could not be delivered to one or more of its");
            line("recipients; the reasons follow, and the message is returned");
            line("below. The postmaster of this site can help: please include");
            line("this report if you write.");
        }
        Kind::Success => {
            line("Your message was delivered to the recipients below, as you");
            line("asked to be told (its headers are returned).");
        }
        Kind::Verify => {
            line("Enclosed is the mail delivery report that you requested.");
        }
        Kind::Delay => {
            line("Your message could not be delivered yet to the recipients");
            line("below; delivery will be tried again until the time the report");
            line("gives. You need not send it again.");
        }
    }
    line("");
}

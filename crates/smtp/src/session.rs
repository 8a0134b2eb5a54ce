//! The server session state machine: what is legal now, and the reply for
//! everything that needs no outside knowledge. Decisions that need tables
//! or policy (may this sender send, is this recipient known, is relaying
//! allowed, what does VRFY say) are handed to the driver as [`Event`]s and
//! come back through [`Session::mail_accepted`], [`Session::rcpt_accepted`]
//! and friends. Reply texts are Postfix 3.7's, as recorded in
//! tests/dialog (each defined once, in [`text`]).

use crate::command::{self, Command, CommandError};
use crate::params::{MailParams, ParamError, RcptParams};
use crate::path::PathError;
use crate::reply::Reply;

/// What the session needs from main.cf, resolved once per service.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub myhostname: String,
    /// `smtpd_banner`, expanded.
    pub banner: String,
    pub helo_required: bool,
    pub message_size_limit: u64,
    pub recipient_limit: usize,
    pub disable_vrfy: bool,
    pub strict_rfc821: bool,
    pub soft_error_limit: u32,
    pub hard_error_limit: u32,
    /// NOOP, VRFY, ETRN and RSET allowed before each counts as an error.
    pub junk_command_limit: u32,
    /// Recipients past smtpd_recipient_limit refused without counting as
    /// errors (per session).
    pub recipient_overshoot_limit: u32,
    /// STARTTLS is offered (a certificate, and not wrapper mode).
    pub starttls: bool,
    /// smtpd_tls_security_level = encrypt: no mail before STARTTLS.
    pub tls_required: bool,
}

/// The reply texts, one place each.
pub mod text {
    use crate::reply::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0 Ok")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0 Ok")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5 Ok")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, "End data with <CR><LF>.<CR><LF>")
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, format!("2.0.0 Ok: queued as {id}"))
    }
    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0 Bye")
    }
    pub fn not_recognized() -> Reply {
        Reply::new(500, "5.5.2 Error: command not recognized")
    }
    pub fn bad_syntax() -> Reply {
        Reply::new(500, "5.5.2 Error: bad syntax")
    }
    pub fn syntax(usage: &str) -> Reply {
        Reply::new(501, format!("5.5.4 Syntax: {usage}"))
    }
    /// HELO/EHLO syntax errors carry no enhanced code in Postfix.
    pub fn helo_syntax(verb: &str) -> Reply {
        Reply::new(501, format!("Syntax: {verb} hostname"))
    }
    pub fn bad_sender() -> Reply {
        Reply::new(501, "5.1.7 Bad sender address syntax")
    }
    pub fn bad_recipient() -> Reply {
        Reply::new(501, "5.1.3 Bad recipient address syntax")
    }
    pub fn unsupported_option(option: &str) -> Reply {
        Reply::new(555, format!("5.5.4 Unsupported option: {option}"))
    }
    pub fn starttls_first() -> Reply {
        Reply::new(530, "5.7.0 Must issue a STARTTLS command first")
    }

    pub fn need_helo() -> Reply {
        Reply::new(503, "5.5.1 Error: send HELO/EHLO first")
    }
    pub fn need_mail() -> Reply {
        Reply::new(503, "5.5.1 Error: need MAIL command")
    }
    pub fn need_rcpt() -> Reply {
        Reply::new(503, "5.5.1 Error: need RCPT command")
    }
    pub fn nested_mail() -> Reply {
        Reply::new(503, "5.5.1 Error: nested MAIL command")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, "5.5.1 Error: no valid recipients")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3 Error: too many recipients")
    }
    pub fn size_exceeded() -> Reply {
        Reply::new(552, "5.3.4 Message size exceeds fixed limit")
    }
    /// A malformed ESMTP parameter value.
    pub fn bad_parameter(keyword: &str) -> Reply {
        match keyword {
            "SIZE" => Reply::new(501, "5.5.4 Bad message size syntax"),
            "NOTIFY" | "ORCPT" => {
                Reply::new(501, format!("5.5.4 Error: Bad {keyword} parameter syntax"))
            }
            _ => Reply::new(501, format!("5.5.4 Bad {keyword} parameter syntax")),
        }
    }
    pub fn size_overflow() -> Reply {
        Reply::new(552, "5.3.4 Message size exceeds file system imposed limit")
    }
    /// DATA went over message_size_limit (cleanup's wording).
    /// The queue file could not be written (or made durable).
    pub fn write_error() -> Reply {
        Reply::new(451, "4.3.0 Error: queue file write error")
    }

    pub fn message_file_too_big() -> Reply {
        Reply::new(552, "5.3.4 Error: message file too big")
    }
    pub fn vrfy_disabled() -> Reply {
        Reply::new(502, "5.5.1 VRFY command is disabled")
    }
    pub fn too_many_errors(myhostname: &str) -> Reply {
        Reply::new(421, format!("4.7.0 {myhostname} Error: too many errors"))
    }
    pub fn bare_lf(myhostname: &str) -> Reply {
        Reply::new(550, format!("5.5.2 {myhostname} Error: bare <LF> received"))
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send this reply and read on.
    Reply(Reply),
    /// Decide on a sender (restrictions), then call `mail_accepted` or
    /// `rejected`.
    CheckMail { from: String, params: MailParams },
    /// Decide on a recipient, then call `rcpt_accepted` or `rejected`.
    CheckRcpt { to: String, params: RcptParams },
    /// Send 354 (the reply is included) and receive the message.
    StartData(Reply),
    /// Answer VRFY for this address (lookups), then call `replied`.
    Vrfy(String),
    /// Flush the queue for this site (ETRN), then call `replied`.
    Etrn(String),
    /// Authenticate the client with this mechanism (and initial
    /// response), then call `auth_done`.
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// Send this 220, then do the TLS handshake and call `tls_started`
    /// (or `tls_failed`, and close).
    StartTls(Reply),
    /// Send this reply and close the connection.
    Close(Reply),
    /// The client sent message text where a command belongs (a header
    /// line): log it, then as `Close`.
    NonSmtp(Reply),
    /// Read a BDAT chunk of `size` bytes into the message (the first
    /// chunk starts it), then call `bdat_done`.
    Bdat { size: u64, last: bool },
    /// Read a BDAT chunk of `size` bytes and throw it away, then send
    /// this reply.
    BdatDiscard { size: u64, reply: Reply },
}

/// Where a CHUNKING transfer stands (RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bdat {
    None,
    /// Chunks are being received.
    Open,
    /// A chunk was refused: chunks are thrown away until LAST or RSET,
    /// and MAIL and DATA are out of order.
    Failed,
}

/// The accepted parts of the current transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub from: String,
    pub params: MailParams,
    pub recipients: Vec<(String, RcptParams)>,
}

/// Per-command counts for the `disconnect from` log line.
#[derive(Debug, Clone, Default)]
struct Counters {
    /// (name, accepted, total), in order of first use.
    by_name: Vec<(&'static str, u32, u32)>,
    /// A line was refused before it could be a command (bare LF): the
    /// total is shown even when nothing failed (`commands=0/0`).
    refused_line: bool,
}

impl Counters {
    fn count(&mut self, name: &'static str, ok: bool) {
        match self.by_name.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) => {
                slot.1 += u32::from(ok);
                slot.2 += 1;
            }
            None => self.by_name.push((name, u32::from(ok), 1)),
        }
    }

    /// `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4`, in Postfix's fixed
    /// order of commands.
    fn summary(&self) -> String {
        const ORDER: [&str; 14] = [
            "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
            "vrfy", "etrn", "quit", "unknown",
        ];
        let mut out = String::new();
        let (mut ok, mut total) = (0, 0);
        let mut sorted = self.by_name.clone();
        sorted.sort_by_key(|(name, _, _)| {
            ORDER.iter().position(|n| n == name).unwrap_or(ORDER.len())
        });
        for (name, good, all) in &sorted {
            ok += good;
            total += all;
            out.push_str(&fraction(name, *good, *all));
            out.push(' ');
        }
        // Postfix shows the total as a fraction when no command came at
        // all (`commands=0/0`, a client that only connected) or a line
        // was refused before it counted.
        if total == 0 || (self.refused_line && ok == total) {
            out.push_str(&format!("commands={ok}/{total}"));
        } else {
            out.push_str(&fraction("commands", ok, total));
        }
        out
    }
}

fn fraction(name: &str, ok: u32, total: u32) -> String {
    if ok == total {
        format!("{name}={ok}")
    } else {
        format!("{name}={ok}/{total}")
    }
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    helo: Option<String>,
    esmtp: bool,
    tx: Option<Transaction>,
    errors: u32,
    counters: Counters,
    /// The command whose outcome the driver is deciding.
    pending: Option<&'static str>,
    bdat: Bdat,
    /// Junk commands so far (reset when a message is accepted).
    junk: u32,
    /// Recipients refused for smtpd_recipient_limit so far.
    overshoot: u32,
    /// The session runs under TLS.
    tls: bool,
    /// SMTP AUTH: the mechanisms offered, and to whom.
    auth: Option<AuthOffer>,
    /// The client authenticated: user name and mechanism.
    authenticated: Option<(String, String)>,
}

/// What AUTH offers (smtpd_sasl_auth_enable, the backend's mechanisms).
#[derive(Debug, Clone)]
struct AuthOffer {
    /// Offered in plaintext (none with smtpd_tls_auth_only).
    plain: Vec<String>,
    /// Offered under TLS.
    tls: Vec<String>,
    /// broken_sasl_auth_clients: the `AUTH=` line too.
    broken_clients: bool,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            cfg,
            helo: None,
            esmtp: false,
            tx: None,
            errors: 0,
            counters: Counters::default(),
            pending: None,
            bdat: Bdat::None,
            junk: 0,
            overshoot: 0,
            tls: false,
            auth: None,
            authenticated: None,
        }
    }

    /// SMTP AUTH is offered with these mechanisms, in plaintext and under
    /// TLS.
    pub fn offer_auth(&mut self, plain: Vec<String>, tls: Vec<String>, broken_clients: bool) {
        self.auth = Some(AuthOffer {
            plain,
            tls,
            broken_clients,
        });
    }

    /// The mechanisms offered now.
    fn auth_mechanisms(&self) -> &[String] {
        match &self.auth {
            Some(a) if self.tls => &a.tls,
            Some(a) => &a.plain,
            None => &[],
        }
    }

    /// Who the client authenticated as, and how.
    pub fn authenticated(&self) -> Option<(&str, &str)> {
        self.authenticated
            .as_ref()
            .map(|(u, m)| (u.as_str(), m.as_str()))
    }

    /// The AUTH exchange ended: `Ok((user, mechanism))`, or the reply
    /// that refuses it.
    pub fn auth_done(&mut self, result: Result<(String, String), Reply>) -> Event {
        self.pending = None;
        match result {
            Ok(who) => {
                self.authenticated = Some(who);
                self.answer("auth", Reply::new(235, "2.7.0 Authentication successful"))
            }
            Err(reply) => self.answer("auth", reply),
        }
    }

    /// The session runs under TLS from its start (smtpd_tls_wrappermode).
    pub fn wrapped(&mut self) {
        self.tls = true;
    }

    /// Whether the session runs under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts
    /// over (RFC 3207 section 4.2: the client says EHLO again; nothing
    /// learned in plaintext is kept).
    pub fn tls_started(&mut self) {
        self.pending = None;
        self.counters.count("starttls", true);
        self.tls = true;
        self.authenticated = None;
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.bdat = Bdat::None;
    }

    /// The TLS handshake after STARTTLS failed (the session ends).
    pub fn tls_failed(&mut self) {
        self.pending = None;
        self.counters.count("starttls", false);
    }

    /// The 220 greeting.
    pub fn greeting(&self) -> Reply {
        Reply::new(220, self.cfg.banner.clone())
    }

    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }

    pub fn transaction(&self) -> Option<&Transaction> {
        self.tx.as_ref()
    }

    /// Errors so far (the driver sleeps `smtpd_error_sleep_time` after each
    /// error once this passes `smtpd_soft_error_limit`).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Replies wait smtpd_error_sleep_time while the client has made more
    /// than smtpd_soft_error_limit errors (and fewer than the hard limit).
    pub fn should_sleep(&self) -> bool {
        self.errors > self.cfg.soft_error_limit && self.errors < self.cfg.hard_error_limit
    }

    /// `ehlo=1 mail=1 ... commands=N` for the disconnect log line.
    pub fn summary(&self) -> String {
        self.counters.summary()
    }

    /// A line was refused before it was read as a command (a bare LF
    /// under smtpd_forbid_bare_newline = reject); the session ends.
    pub fn refused_line(&mut self) {
        self.counters.refused_line = true;
    }

    /// Counts a reply: 4xx/5xx are errors (see [`Session::too_many_errors`]).
    fn answer(&mut self, name: &'static str, reply: Reply) -> Event {
        let failed = reply.code >= 400;
        self.counters.count(name, !failed);
        if failed {
            self.errors += 1;
        }
        Event::Reply(reply)
    }

    /// A NOOP, VRFY, ETRN or RSET: past smtpd_junk_command_limit each one
    /// is also an error.
    fn junk(&mut self) {
        self.junk += 1;
        if self.junk > self.cfg.junk_command_limit {
            self.errors += 1;
        }
    }

    /// The 421 to send instead of reading another command, once the errors
    /// reach smtpd_hard_error_limit (the reply to the last one has gone
    /// out already).
    pub fn too_many_errors(&self) -> Option<Reply> {
        (self.errors >= self.cfg.hard_error_limit)
            .then(|| text::too_many_errors(&self.cfg.myhostname))
    }

    /// Handles one command line (without CRLF).
    pub fn command(&mut self, line: &str) -> Event {
        let cmd = match command::parse(line, self.cfg.strict_rfc821) {
            Ok(c) => c,
            // Message text sent as commands (after a refused DATA, or by
            // something that is no mail client at all): Postfix hangs up.
            Err(CommandError::Unknown(_)) if command::is_header(line) => {
                self.counters.count("unknown", false);
                return Event::NonSmtp(Reply::new(
                    221,
                    "2.7.0 Error: I can break rules, too. Goodbye.",
                ));
            }
            Err(e) => return self.parse_error(e),
        };
        if matches!(
            cmd,
            Command::Rset | Command::Noop | Command::Vrfy(_) | Command::Etrn(_)
        ) {
            self.junk();
        }
        match cmd {
            Command::Helo(name) | Command::Ehlo(name) if name.is_empty() => {
                unreachable_syntax(self)
            }
            Command::Helo(name) => {
                // A HELO after EHLO leaves the protocol ESMTP, as in
                // Postfix (recorded in tests/delivery/cases/sendmail-bs).
                self.helo = Some(name);
                self.tx = None;
                self.bdat = Bdat::None;
                let r = Reply::new(250, self.cfg.myhostname.clone());
                self.answer("helo", r)
            }
            Command::Ehlo(name) => {
                self.helo = Some(name);
                self.esmtp = true;
                self.tx = None;
                self.bdat = Bdat::None;
                let r = Reply::multi(250, self.ehlo_lines());
                self.answer("ehlo", r)
            }
            Command::Mail { from, params } => {
                if self.cfg.helo_required && self.helo.is_none() {
                    return self.answer("mail", text::need_helo());
                }
                if self.bdat != Bdat::None {
                    return self.answer("mail", Reply::new(503, "5.5.1 Error: MAIL after BDAT"));
                }
                if self.tx.is_some() {
                    return self.answer("mail", text::nested_mail());
                }
                if self.cfg.tls_required && !self.tls {
                    return self.answer("mail", text::starttls_first());
                }
                // allow_min_user = no: an address that looks like a
                // command option never gets in.
                if from.starts_with('-') {
                    return self.answer("mail", text::bad_sender());
                }
                // SIZE= against message_size_limit is the driver's decision
                // (it logs the reject).
                self.pending = Some("mail");
                Event::CheckMail { from, params }
            }
            Command::Rcpt { to, params } => {
                let Some(tx) = &self.tx else {
                    return self.answer("rcpt", text::need_mail());
                };
                if tx.recipients.len() >= self.cfg.recipient_limit {
                    // The client is to send the rest in another
                    // transaction: not an error, until it overshoots by
                    // more than smtpd_recipient_overshoot_limit.
                    self.overshoot += 1;
                    if self.overshoot <= self.cfg.recipient_overshoot_limit {
                        self.counters.count("rcpt", true);
                        return Event::Reply(text::too_many_recipients());
                    }
                    return self.answer("rcpt", text::too_many_recipients());
                }
                if to.starts_with('-') {
                    return self.answer("rcpt", text::bad_recipient());
                }
                self.pending = Some("rcpt");
                Event::CheckRcpt { to, params }
            }
            Command::Data if self.bdat != Bdat::None => {
                self.answer("data", Reply::new(503, "5.5.1 Error: DATA after BDAT"))
            }
            Command::Data => match &self.tx {
                None => self.answer("data", text::need_rcpt()),
                Some(tx) if tx.recipients.is_empty() => {
                    self.answer("data", text::no_valid_recipients())
                }
                Some(_) => {
                    self.pending = Some("data");
                    Event::StartData(text::start_data())
                }
            },
            Command::Rset => {
                self.tx = None;
                self.bdat = Bdat::None;
                self.answer("rset", text::ok())
            }
            Command::Noop => self.answer("noop", text::ok()),
            Command::Quit => {
                self.counters.count("quit", true);
                Event::Close(text::bye())
            }
            Command::Vrfy(arg) => {
                if self.cfg.disable_vrfy {
                    return self.answer("vrfy", text::vrfy_disabled());
                }
                self.pending = Some("vrfy");
                Event::Vrfy(arg)
            }
            Command::Etrn(domain) => {
                if self.tx.is_some() {
                    return self.answer(
                        "etrn",
                        Reply::new(503, "Error: MAIL transaction in progress"),
                    );
                }
                self.pending = Some("etrn");
                Event::Etrn(domain)
            }
            Command::Bdat { size, last } => {
                let ready = self.tx.as_ref().is_some_and(|t| !t.recipients.is_empty());
                match self.bdat {
                    Bdat::Failed => {
                        if last {
                            self.bdat = Bdat::None;
                        }
                        let reply = Reply::new(
                            551,
                            format!("5.0.0 Discarded {size} bytes after earlier error"),
                        );
                        match self.answer("bdat", reply) {
                            Event::Reply(reply) => Event::BdatDiscard { size, reply },
                            close => close,
                        }
                    }
                    _ if !ready => {
                        self.bdat = if last { Bdat::None } else { Bdat::Failed };
                        let reply = if self.tx.is_none() {
                            text::need_rcpt()
                        } else {
                            text::no_valid_recipients()
                        };
                        match self.answer("bdat", reply) {
                            Event::Reply(reply) => Event::BdatDiscard { size, reply },
                            close => close,
                        }
                    }
                    _ => {
                        self.bdat = Bdat::Open;
                        self.pending = Some("bdat");
                        Event::Bdat { size, last }
                    }
                }
            }
            Command::Starttls if self.cfg.starttls || self.tls => {
                if self.tls {
                    return self.answer(
                        "starttls",
                        Reply::new(554, "5.5.1 Error: TLS already active"),
                    );
                }
                if self.tx.is_some() {
                    return self.answer(
                        "starttls",
                        Reply::new(503, "5.5.1 Error: MAIL transaction in progress"),
                    );
                }
                self.pending = Some("starttls");
                Event::StartTls(Reply::new(220, "2.0.0 Ready to start TLS"))
            }
            Command::Auth(args) if self.auth.is_some() => {
                if self.auth_mechanisms().is_empty() {
                    // Offered under TLS only.
                    if !self.tls && self.auth.as_ref().is_some_and(|a| !a.tls.is_empty()) {
                        return self.answer("auth", text::starttls_first());
                    }
                    return self.answer(
                        "auth",
                        Reply::new(503, "5.5.1 Error: authentication not enabled"),
                    );
                }
                if self.authenticated.is_some() {
                    return self.answer(
                        "auth",
                        Reply::new(503, "5.5.1 Error: already authenticated"),
                    );
                }
                if self.tx.is_some() {
                    return self.answer(
                        "auth",
                        Reply::new(503, "5.5.1 Error: MAIL transaction in progress"),
                    );
                }
                let mut words = args.split_whitespace();
                let Some(mechanism) = words.next().map(str::to_ascii_uppercase) else {
                    return self.answer("auth", Reply::new(501, "5.5.4 Syntax: AUTH mechanism"));
                };
                let initial = words.next().map(str::to_string);
                if !self.auth_mechanisms().contains(&mechanism) {
                    return self.answer(
                        "auth",
                        Reply::new(
                            535,
                            "5.7.8 Error: authentication failed: Invalid authentication mechanism",
                        ),
                    );
                }
                self.pending = Some("auth");
                Event::Auth { mechanism, initial }
            }
            Command::Starttls | Command::Auth(_) | Command::Help | Command::Expn(_) => {
                // Not offered yet: Postfix answers these only when enabled.
                self.answer("unknown", text::not_recognized())
            }
        }
    }

    fn parse_error(&mut self, e: CommandError) -> Event {
        let (name, reply): (&'static str, Reply) = match e {
            CommandError::Empty => ("unknown", text::bad_syntax()),
            CommandError::Unknown(_) => ("unknown", text::not_recognized()),
            CommandError::Syntax("VRFY") if self.cfg.disable_vrfy => {
                ("vrfy", text::vrfy_disabled())
            }
            CommandError::Syntax("VRFY") => ("vrfy", text::syntax("VRFY address [SMTPUTF8]")),
            CommandError::Syntax("HELO") => ("helo", text::helo_syntax("HELO")),
            CommandError::Syntax("EHLO") => ("ehlo", text::helo_syntax("EHLO")),
            CommandError::Syntax("MAIL") => ("mail", text::syntax("MAIL FROM:<address>")),
            CommandError::Syntax("RCPT") => ("rcpt", text::syntax("RCPT TO:<address>")),
            CommandError::Syntax("ETRN") => ("etrn", Reply::new(500, "Syntax: ETRN domain")),
            // The chunk's end is unknowable: nothing after it can be read
            // as a command.
            CommandError::Syntax("BDAT") => {
                self.counters.count("bdat", false);
                return Event::Close(Reply::new(521, "5.5.4 Syntax: BDAT count [LAST]"));
            }
            CommandError::Syntax(verb) => (lower(verb), text::syntax(verb)),
            CommandError::Address {
                verb: "MAIL",
                error,
            } => (
                "mail",
                match error {
                    PathError::Missing => text::syntax("MAIL FROM:<address>"),
                    _ => text::bad_sender(),
                },
            ),
            CommandError::Address { error, .. } => (
                "rcpt",
                match error {
                    PathError::Missing => text::syntax("RCPT TO:<address>"),
                    _ => text::bad_recipient(),
                },
            ),
            CommandError::Param { verb, error } => (
                lower(verb),
                match error {
                    ParamError::Unsupported(o) => text::unsupported_option(&o),
                    ParamError::BadSyntax(k) => text::bad_parameter(k),
                    ParamError::SizeOverflow => text::size_overflow(),
                },
            ),
        };
        // Postfix checks the order of commands before their arguments.
        if name == "mail" && self.tx.is_some() {
            return self.answer("mail", text::nested_mail());
        }
        if name == "rcpt" && self.tx.is_none() {
            return self.answer("rcpt", text::need_mail());
        }
        self.answer(name, reply)
    }

    fn ehlo_lines(&self) -> Vec<String> {
        let mut lines = vec![self.cfg.myhostname.clone(), "PIPELINING".to_string()];
        lines.push(if self.cfg.message_size_limit > 0 {
            format!("SIZE {}", self.cfg.message_size_limit)
        } else {
            "SIZE".to_string()
        });
        if !self.cfg.disable_vrfy {
            lines.push("VRFY".to_string());
        }
        lines.push("ETRN".to_string());
        if self.cfg.starttls && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        let mechanisms = self.auth_mechanisms().join(" ");
        if !mechanisms.is_empty() {
            lines.push(format!("AUTH {mechanisms}"));
            if self.auth.as_ref().is_some_and(|a| a.broken_clients) {
                lines.push(format!("AUTH={mechanisms}"));
            }
        }
        for k in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(k.to_string());
        }
        lines
    }

    /// The driver accepted the sender.
    pub fn mail_accepted(&mut self, from: String, params: MailParams) -> Event {
        self.pending = None;
        self.tx = Some(Transaction {
            from,
            params,
            recipients: Vec::new(),
        });
        self.answer("mail", text::sender_ok())
    }

    /// The driver accepted a recipient.
    pub fn rcpt_accepted(&mut self, to: String, params: RcptParams) -> Event {
        self.pending = None;
        if let Some(tx) = &mut self.tx {
            tx.recipients.push((to, params));
        }
        self.answer("rcpt", text::recipient_ok())
    }

    /// The driver refused what it was asked about, with this reply.
    pub fn rejected(&mut self, reply: Reply) -> Event {
        let name = self.pending.take().unwrap_or("unknown");
        self.answer(name, reply)
    }

    /// The driver answered a question (VRFY) with this reply.
    pub fn replied(&mut self, reply: Reply) -> Event {
        let name = self.pending.take().unwrap_or("unknown");
        self.answer(name, reply)
    }

    /// Whether a BDAT transfer is under way (its message open).
    pub fn in_bdat(&self) -> bool {
        self.bdat == Bdat::Open
    }

    /// The client went away (or timed out) in the middle of the message
    /// data: DATA (or BDAT) counts as failed and the transaction is gone.
    pub fn data_aborted(&mut self) {
        let name = self.pending.take().unwrap_or("data");
        self.tx = None;
        self.bdat = Bdat::None;
        self.counters.count(name, false);
    }

    /// A BDAT chunk was received: `Ok(reply)` to go on (a non-LAST chunk
    /// kept, or the message queued by a LAST one), `Err(reply)` when it
    /// was refused (the transfer fails until LAST or RSET).
    pub fn bdat_done(&mut self, last: bool, result: Result<Reply, Reply>) -> Event {
        self.pending = None;
        match result {
            Ok(reply) => {
                if last {
                    self.tx = None;
                    self.bdat = Bdat::None;
                    self.accepted(&reply);
                }
                self.answer("bdat", reply)
            }
            Err(reply) => {
                self.tx = None;
                self.bdat = if last { Bdat::None } else { Bdat::Failed };
                self.answer("bdat", reply)
            }
        }
    }

    /// The message ended: `result` is the reply (250 queued, or a refusal).
    /// The transaction is over either way.
    pub fn data_done(&mut self, result: Reply) -> Event {
        self.pending = None;
        self.tx = None;
        self.accepted(&result);
        self.answer("data", result)
    }

    /// The message was refused at its end by a restriction: as Postfix
    /// does, the envelope stays (MAIL is then a nested command; more
    /// recipients join it; DATA sends the message again).
    pub fn data_rejected(&mut self, reply: Reply) -> Event {
        self.pending = None;
        self.answer("data", reply)
    }

    /// A message was accepted: the client starts over with a clean slate
    /// of errors and junk commands, as with Postfix.
    fn accepted(&mut self, result: &Reply) {
        if result.code == 250 {
            self.errors = 0;
            self.junk = 0;
        }
    }
}

fn lower(verb: &str) -> &'static str {
    match verb {
        "DATA" => "data",
        "BDAT" => "bdat",
        "RSET" => "rset",
        "VRFY" => "vrfy",
        "ETRN" => "etrn",
        "MAIL" => "mail",
        "RCPT" => "rcpt",
        "STARTTLS" => "starttls",
        _ => "unknown",
    }
}

fn unreachable_syntax(s: &mut Session) -> Event {
    // command::parse refuses HELO/EHLO without a name.
    s.answer("unknown", text::bad_syntax())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig {
            myhostname: "mail.example.test".into(),
            banner: "mail.example.test ESMTP Rostfix".into(),
            helo_required: false,
            message_size_limit: 10240000,
            recipient_limit: 1000,
            disable_vrfy: false,
            strict_rfc821: false,
            soft_error_limit: 10,
            hard_error_limit: 20,
            junk_command_limit: 100,
            recipient_overshoot_limit: 1000,
            starttls: false,
            tls_required: false,
        }
    }

    /// Drives a session where every sender and recipient is accepted.
    fn run(s: &mut Session, line: &str) -> Reply {
        match s.command(line) {
            Event::Reply(r)
            | Event::Close(r)
            | Event::StartData(r)
            | Event::NonSmtp(r)
            | Event::StartTls(r) => r,
            Event::Auth { mechanism, .. } => match s.auth_done(Ok(("alice".into(), mechanism))) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::CheckMail { from, params } => match s.mail_accepted(from, params) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::CheckRcpt { to, params } => match s.rcpt_accepted(to, params) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::Vrfy(a) => match s.replied(Reply::new(252, format!("2.0.0 {a}"))) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::Etrn(site) => match s.replied(Reply::new(459, format!("<{site}>: x"))) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::Bdat { last, .. } => match s.bdat_done(last, Ok(Reply::new(250, "2.0.0 Ok"))) {
                Event::Reply(r) => r,
                other => panic!("{other:?}"),
            },
            Event::BdatDiscard { reply, .. } => reply,
        }
    }

    #[test]
    fn starttls_offered_required_and_reset() {
        let mut c = cfg();
        c.starttls = true;
        c.tls_required = true;
        let mut s = Session::new(c);
        let ehlo = run(&mut s, "EHLO client");
        assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"));
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b>").to_string(),
            "530 5.7.0 Must issue a STARTTLS command first\r\n"
        );
        assert_eq!(run(&mut s, "STARTTLS x").code, 501);
        assert!(matches!(s.command("STARTTLS"), Event::StartTls(r) if r.code == 220));
        s.tls_started();
        // Nothing from before TLS is kept: HELO again, and no STARTTLS.
        assert!(s.helo_name().is_none() && s.is_tls());
        let ehlo = run(&mut s, "EHLO client");
        assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"));
        assert_eq!(run(&mut s, "MAIL FROM:<a@b>").code, 250);
        assert_eq!(run(&mut s, "STARTTLS").code, 554);
        assert!(s.summary().starts_with("ehlo=2 starttls=1/3 mail=1/2"));
    }

    #[test]
    fn starttls_not_offered() {
        let mut s = Session::new(cfg());
        assert!(
            !run(&mut s, "EHLO client")
                .lines
                .iter()
                .any(|l| l == "STARTTLS")
        );
        // As Postfix without TLS answers it (tests/dialog).
        assert_eq!(run(&mut s, "STARTTLS").code, 500);
    }

    #[test]
    fn bdat_out_of_order_sticks_until_rset() {
        let mut s = Session::new(cfg());
        run(&mut s, "EHLO client.example");
        assert_eq!(
            run(&mut s, "BDAT 5").to_string(),
            "503 5.5.1 Error: need RCPT command\r\n"
        );
        assert_eq!(
            run(&mut s, "MAIL FROM:<a@b.example>").to_string(),
            "503 5.5.1 Error: MAIL after BDAT\r\n"
        );
        assert_eq!(
            run(&mut s, "BDAT 7").to_string(),
            "551 5.0.0 Discarded 7 bytes after earlier error\r\n"
        );
        assert_eq!(
            run(&mut s, "DATA").to_string(),
            "503 5.5.1 Error: DATA after BDAT\r\n"
        );
        run(&mut s, "RSET");
        assert_eq!(run(&mut s, "MAIL FROM:<a@b.example>").code, 250);
        assert_eq!(run(&mut s, "RCPT TO:<c@d.example>").code, 250);
        assert_eq!(run(&mut s, "BDAT 3 LAST").code, 250);
        assert!(s.transaction().is_none(), "LAST ends the transaction");
        assert!(matches!(s.command("BDAT 5 FOO"), Event::Close(r) if r.code == 521));
    }

    fn lines(r: &Reply) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn the_seed_000_transcript() {
        let mut s = Session::new(cfg());
        assert_eq!(
            lines(&s.greeting()),
            "220 mail.example.test ESMTP Rostfix\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "HELO somedomain.org")),
            "250 mail.example.test\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "mail from: someone@somedomain.org")),
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "rcpt to: d.mazzocchio@kernel-panic.it")),
            "250 2.1.5 Ok\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "DATA")),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
        let Event::Reply(r) = s.data_done(text::queued("548D7286")) else {
            panic!()
        };
        assert_eq!(lines(&r), "250 2.0.0 Ok: queued as 548D7286\r\n");
        assert_eq!(lines(&run(&mut s, "QUIT")), "221 2.0.0 Bye\r\n");
        assert_eq!(s.summary(), "helo=1 mail=1 rcpt=1 data=1 quit=1 commands=5");
    }

    #[test]
    fn ehlo_capabilities_as_postfix_37() {
        let mut s = Session::new(cfg());
        assert_eq!(
            lines(&run(&mut s, "EHLO client.example")),
            "250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
        );
        assert_eq!(lines(&run(&mut s, "EHLO")), "501 Syntax: EHLO hostname\r\n");
    }

    #[test]
    fn order_errors() {
        let mut s = Session::new(SessionConfig {
            helo_required: true,
            ..cfg()
        });
        assert_eq!(
            lines(&run(&mut s, "MAIL FROM:<a@b>")),
            "503 5.5.1 Error: send HELO/EHLO first\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "RCPT TO:<a@b>")),
            "503 5.5.1 Error: need MAIL command\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "DATA")),
            "503 5.5.1 Error: need RCPT command\r\n"
        );
        run(&mut s, "EHLO x");
        assert_eq!(lines(&run(&mut s, "MAIL FROM:<a@b>")), "250 2.1.0 Ok\r\n");
        assert_eq!(
            lines(&run(&mut s, "MAIL FROM:<c@d>")),
            "503 5.5.1 Error: nested MAIL command\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "DATA")),
            "554 5.5.1 Error: no valid recipients\r\n"
        );
        assert_eq!(
            lines(&run(&mut s, "FOO")),
            "500 5.5.2 Error: command not recognized\r\n"
        );
        assert_eq!(lines(&run(&mut s, "")), "500 5.5.2 Error: bad syntax\r\n");
        assert_eq!(
            lines(&run(&mut s, "RCPT TO:<a@b> FOO=bar")),
            "555 5.5.4 Unsupported option: FOO=bar\r\n"
        );
        assert_eq!(
            s.summary(),
            "ehlo=1 mail=1/3 rcpt=0/2 data=0/2 unknown=0/2 commands=2/10"
        );
    }

    #[test]
    fn a_session_without_commands_counts_zero_of_zero() {
        // As Postfix 3.7 logs a client that connects and goes.
        let s = Session::new(cfg());
        assert_eq!(s.summary(), "commands=0/0");
    }

    #[test]
    fn junk_commands_count_as_errors_past_the_limit_and_mail_resets_them() {
        let mut s = Session::new(SessionConfig {
            junk_command_limit: 2,
            hard_error_limit: 3,
            soft_error_limit: 1,
            ..cfg()
        });
        run(&mut s, "EHLO client.example");
        for _ in 0..4 {
            assert_eq!(run(&mut s, "NOOP").code, 250);
        }
        assert!(s.should_sleep(), "two errors: past the soft limit of 1");
        assert_eq!(s.too_many_errors(), None);
        run(&mut s, "MAIL FROM:<a@b.example>");
        run(&mut s, "RCPT TO:<c@d.example>");
        s.data_done(Reply::new(250, "2.0.0 Ok: queued as ABC"));
        assert!(!s.should_sleep(), "an accepted message clears the errors");
        for _ in 0..4 {
            run(&mut s, "NOOP");
        }
        assert_eq!(s.too_many_errors(), None, "and the junk count");
        run(&mut s, "NOOP");
        assert!(s.too_many_errors().is_some());
    }

    #[test]
    fn hard_error_limit_closes_with_421() {
        let mut s = Session::new(SessionConfig {
            hard_error_limit: 3,
            ..cfg()
        });
        for _ in 0..3 {
            assert_eq!(s.too_many_errors(), None);
            assert!(matches!(s.command("FOO"), Event::Reply(r) if r.code == 500));
        }
        assert_eq!(
            s.too_many_errors(),
            Some(text::too_many_errors("mail.example.test"))
        );
    }
}

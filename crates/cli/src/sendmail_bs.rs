//! `sendmail -bs`: an SMTP dialogue on standard input and output, for
//! programs that submit mail by speaking SMTP to a pipe. The session
//! rules are smtpd's ([`rostfix_smtp::session`]); the client is the local
//! user, trusted as a local submission is (no relay or recipient
//! restrictions), and each message goes into the maildrop with the
//! Received header smtpd gives a client on `localhost[127.0.0.1]`, as
//! Postfix's `smtpd -S` does; pickup then queues it under a new ID.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_engine::cleanup::{Envelope, Origin, received_header};
use rostfix_queue::maildrop::Submission;
use rostfix_smtp::reply::Reply;
use rostfix_smtp::session::{Event, Session, Transaction};

use crate::msg::fatal;

pub fn main(dir: Option<&Path>) -> i32 {
    let cf = Config::load(dir).unwrap_or_else(|e| fatal(e));
    let cfg = rostfix_engine::settings::session_config(&cf).unwrap_or_else(|e| fatal(e));
    let queue_directory = PathBuf::from(cf.string("queue_directory").unwrap_or_else(|e| fatal(e)));
    let line_limit = cf.int("line_length_limit").unwrap_or(2048).max(512) as usize;
    let mut d = Dialogue {
        session: Session::new(cfg),
        input: std::io::stdin().lock(),
        output: std::io::stdout().lock(),
        queue_directory,
        line_limit,
        size_limit: cf.int("message_size_limit").unwrap_or(0).max(0) as u64,
        myhostname: cf.string("myhostname").unwrap_or_else(|e| fatal(e)),
        mail_name: cf.string("mail_name").unwrap_or_else(|e| fatal(e)),
        chunks: Vec::new(),
        log: crate::msg::maillog(&cf),
        cf,
    };
    d.say(&format!("connect from {CLIENT}"));
    let greeting = d.session.greeting();
    if d.reply(&greeting).is_err() {
        return 0;
    }
    d.run();
    let summary = d.session.summary();
    d.say(&format!("disconnect from {CLIENT} {summary}"));
    0
}

/// The client, as smtpd names it in `sendmail -bs` mode.
const CLIENT: &str = "localhost[127.0.0.1]";

struct Dialogue<R, W> {
    session: Session,
    input: R,
    output: W,
    queue_directory: PathBuf,
    line_limit: usize,
    /// message_size_limit (0: none).
    size_limit: u64,
    myhostname: String,
    mail_name: String,
    cf: Config,
    /// The maillog, where smtpd's lines go (when it can be written).
    log: Option<rostfix_engine::log::Log>,
    /// BDAT chunks so far.
    chunks: Vec<u8>,
}

/// The client went away (end of input or a broken pipe).
struct Gone;

impl<R: BufRead, W: Write> Dialogue<R, W> {
    fn say(&self, text: &str) {
        if let Some(l) = &self.log {
            l.info("smtpd", text);
        }
    }

    fn run(&mut self) {
        loop {
            let Ok(Some(line)) = self.line() else {
                return;
            };
            let event = self.session.command(&String::from_utf8_lossy(&line));
            if self.event(event).is_err() {
                return;
            }
        }
    }

    /// Carries out what the session asks for; `Err` ends the dialogue.
    fn event(&mut self, mut event: Event) -> Result<(), Gone> {
        loop {
            event = match event {
                Event::Reply(r) => return self.reply(&r),
                // -bs offers no STARTTLS (its session has none configured).
                Event::Close(r) | Event::NonSmtp(r) | Event::StartTls(r) => {
                    let _ = self.reply(&r);
                    return Err(Gone);
                }
                // -bs offers no AUTH either: the local user is known.
                Event::Auth { .. } => self.session.auth_done(Err(Reply::new(
                    503,
                    "5.5.1 Error: authentication not enabled",
                ))),
                Event::CheckMail { from, params } => self.session.mail_accepted(from, params),
                Event::CheckRcpt { to, params } => self.session.rcpt_accepted(to, params),
                Event::Vrfy(arg) => self
                    .session
                    .replied(Reply::new(252, format!("2.0.0 {arg}"))),
                // The local user has no queue of its own to run.
                Event::Etrn(_) => self
                    .session
                    .replied(Reply::new(458, "Unable to queue messages")),
                Event::StartData(r) => {
                    self.reply(&r)?;
                    let reply = self.data()?;
                    self.session.data_done(reply)
                }
                Event::Bdat { size, last } => {
                    let chunk = self.bytes(size)?;
                    self.chunks.extend_from_slice(&chunk);
                    if last {
                        let all = std::mem::take(&mut self.chunks);
                        let reply = match self.start() {
                            Ok(mut f) => match split_lines(&all).try_for_each(|l| f.line(l)) {
                                Ok(()) => self.finish(f),
                                Err(e) => {
                                    f.discard();
                                    write_error(&e)
                                }
                            },
                            Err(e) => write_error(&e),
                        };
                        self.session.bdat_done(true, Ok(reply))
                    } else {
                        let reply = Reply::new(250, format!("2.0.0 Ok: {size} bytes"));
                        self.session.bdat_done(false, Ok(reply))
                    }
                }
                Event::BdatDiscard { size, reply } => {
                    self.bytes(size)?;
                    return self.reply(&reply);
                }
            };
        }
    }

    fn reply(&mut self, r: &Reply) -> Result<(), Gone> {
        write!(self.output, "{r}")
            .and_then(|()| self.output.flush())
            .map_err(|_| Gone)
    }

    /// One command line without its line end, at most line_length_limit
    /// long (the rest of a longer one is read and dropped); `None` at
    /// end of input.
    fn line(&mut self) -> Result<Option<Vec<u8>>, Gone> {
        let Some(mut buf) = self.read_line(self.line_limit)? else {
            return Ok(None);
        };
        if buf.last() != Some(&b'\n') {
            while let Some(rest) = self.read_line(self.line_limit)? {
                if rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        trim_line_end(&mut buf);
        Ok(Some(buf))
    }

    /// Up to `limit` bytes, to and with a line end.
    fn read_line(&mut self, limit: usize) -> Result<Option<Vec<u8>>, Gone> {
        let mut buf = Vec::new();
        let n = (&mut self.input)
            .take(limit as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|_| Gone)?;
        Ok((n > 0).then_some(buf))
    }

    /// The message after DATA, dot-unstuffed, up to the line with a
    /// single dot, written into the maildrop as it comes (never held
    /// whole); a message over message_size_limit is read to its end and
    /// refused.
    fn data(&mut self) -> Result<Reply, Gone> {
        let mut drop = self.start();
        let limit = self.size_limit;
        let line_cap = match limit {
            0 => UNLIMITED_LINE,
            n => usize::try_from(n)
                .unwrap_or(UNLIMITED_LINE)
                .saturating_add(2),
        };
        let mut size: u64 = 0;
        loop {
            // A line is read whole: only message_size_limit bounds it
            // (and a longer one fails the message anyway).
            let Some(mut line) = self.read_line(line_cap)? else {
                return Err(Gone);
            };
            trim_line_end(&mut line);
            if line == b"." {
                break;
            }
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            size += line.len() as u64 + 1;
            let Ok(f) = &mut drop else { continue };
            let written = if limit > 0 && size > limit {
                Err("message file too big".to_string())
            } else {
                f.line(&line)
            };
            if let Err(e) = written
                && let Ok(f) = std::mem::replace(&mut drop, Err(e))
            {
                f.discard();
            }
        }
        Ok(match drop {
            Ok(f) => self.finish(f),
            Err(e) if e == "message file too big" => {
                Reply::new(552, "5.3.4 Error: message file too big")
            }
            Err(e) => write_error(&e),
        })
    }

    /// `n` bytes of a BDAT chunk.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, Gone> {
        let mut buf = Vec::new();
        (&mut self.input)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(|_| Gone)?;
        if (buf.len() as u64) < n {
            return Err(Gone);
        }
        Ok(buf)
    }

    /// Starts the current transaction's maildrop file with the Received
    /// header smtpd would give it (the client being `localhost[127.0.0.1]`);
    /// pickup adds its own on top.
    fn start(&self) -> Result<crate::maildrop::Drop, String> {
        let Some(Transaction {
            from, recipients, ..
        }) = self.session.transaction()
        else {
            return Err("no transaction".into());
        };
        let recipients: Vec<String> = recipients.iter().map(|(r, _)| r.clone()).collect();
        let sub = Submission {
            sender: from,
            uid: Some(nix::unistd::getuid().as_raw()),
            recipients: &recipients,
            ..Submission::default()
        };
        let env = Envelope {
            origin: Origin::Smtp {
                client_name: "localhost".into(),
                client_addr: "127.0.0.1".into(),
                helo: self.session.helo_name().map(str::to_string),
                esmtp: self.session.is_esmtp(),
                tls: None,
                authenticated: false,
                auth_header: None,
            },
            sender: from.clone(),
            recipients: recipients.clone(),
            rewrite_headers: true,
            full_name: None,
            dsn: Vec::new(),
            ret: String::new(),
            envid: String::new(),
            verify: false,
            eight_bit_mime: false,
        };
        let mut f = crate::maildrop::open(&self.cf, &self.queue_directory, &sub)?;
        self.say(&format!("{}: client={CLIENT}", f.id()));
        let received = received_header(&self.myhostname, &self.mail_name, &env, f.id());
        if let Err(e) = received.iter().try_for_each(|l| f.line(l.as_bytes())) {
            f.discard();
            return Err(e);
        }
        Ok(f)
    }

    /// Completes a maildrop file: `queued as ID`, or why not.
    fn finish(&self, f: crate::maildrop::Drop) -> Reply {
        match f.finish(&self.queue_directory) {
            Ok(id) => Reply::new(250, format!("2.0.0 Ok: queued as {id}")),
            Err(e) => write_error(&e),
        }
    }
}

/// The reply when the maildrop cannot take the message (said on
/// standard error too).
fn write_error(e: &str) -> Reply {
    crate::msg::warning(&format!("maildrop: {e}"));
    Reply::new(451, "4.3.0 Error: queue file write error")
}

/// The longest message line taken when message_size_limit is 0
/// (unlimited); a longer one continues as the next line.
const UNLIMITED_LINE: usize = 1 << 30;

/// Drops a line's LF or CRLF.
fn trim_line_end(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Lines of a message received in chunks (CRLF or LF ends a line).
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

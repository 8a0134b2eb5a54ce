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
                Event::Close(r) | Event::NonSmtp(r) => {
                    let _ = self.reply(&r);
                    return Err(Gone);
                }
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
                    let lines = self.data()?;
                    let reply = self.queue(lines.iter().map(Vec::as_slice));
                    self.session.data_done(reply)
                }
                Event::Bdat { size, last } => {
                    let chunk = self.bytes(size)?;
                    self.chunks.extend_from_slice(&chunk);
                    if last {
                        let all = std::mem::take(&mut self.chunks);
                        let reply = self.queue(split_lines(&all));
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

    /// One command line without its line end; `None` at end of input.
    fn line(&mut self) -> Result<Option<Vec<u8>>, Gone> {
        let mut buf = Vec::new();
        let n = (&mut self.input)
            .take(self.line_limit as u64)
            .read_until(b'\n', &mut buf)
            .map_err(|_| Gone)?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Some(buf))
    }

    /// The message after DATA: lines up to the one with a single dot,
    /// dot-unstuffed.
    fn data(&mut self) -> Result<Vec<Vec<u8>>, Gone> {
        let mut lines = Vec::new();
        loop {
            let Some(mut line) = self.line()? else {
                return Err(Gone);
            };
            if line == b"." {
                return Ok(lines);
            }
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            lines.push(line);
        }
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

    /// Leaves the current transaction's message in the maildrop, under
    /// the Received header smtpd would give it (the client being
    /// `localhost[127.0.0.1]`); pickup adds its own on top.
    fn queue<'a>(&self, lines: impl Iterator<Item = &'a [u8]>) -> Reply {
        let Some(Transaction {
            from, recipients, ..
        }) = self.session.transaction()
        else {
            return Reply::new(503, "5.5.1 Error: need RCPT command");
        };
        let recipients: Vec<String> = recipients.iter().map(|(r, _)| r.clone()).collect();
        let sub = Submission {
            sender: from,
            full_name: None,
            extract_recipients: false,
            uid: Some(nix::unistd::getuid().as_raw()),
            recipients: &recipients,
            notify: "",
            ret: "",
            envid: "",
            verify: false,
        };
        let env = Envelope {
            origin: Origin::Smtp {
                client_name: "localhost".into(),
                client_addr: "127.0.0.1".into(),
                helo: self.session.helo_name().map(str::to_string),
                esmtp: self.session.is_esmtp(),
            },
            sender: from.clone(),
            recipients: recipients.clone(),
            rewrite_headers: true,
            full_name: None,
            dsn: Vec::new(),
            ret: String::new(),
            envid: String::new(),
            verify: false,
        };
        let written =
            crate::maildrop::open(&self.cf, &self.queue_directory, &sub).and_then(|mut f| {
                self.say(&format!("{}: client={CLIENT}", f.id()));
                let received = received_header(&self.myhostname, &self.mail_name, &env, f.id());
                let written = received
                    .iter()
                    .try_for_each(|l| f.line(l.as_bytes()))
                    .and_then(|()| lines.into_iter().try_for_each(|l| f.line(l)));
                match written {
                    Ok(()) => f.finish(&self.queue_directory),
                    Err(e) => {
                        f.discard();
                        Err(e)
                    }
                }
            });
        match written {
            Ok(id) => Reply::new(250, format!("2.0.0 Ok: queued as {id}")),
            Err(e) => {
                crate::msg::warning(&format!("maildrop: {e}"));
                Reply::new(451, "4.3.0 Error: queue file write error")
            }
        }
    }
}

/// Lines of a message received in chunks (CRLF or LF ends a line).
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

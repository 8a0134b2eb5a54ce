//! Log lines in Postfix's format, which pflogsumm and fail2ban read:
//! `Dec 16 15:26:35 mail postfix/smtpd[29212]: connect from host[addr]`.
//! The time stamp is local time in syslog's shape, the host is the first
//! label of `myhostname`, the program is `syslog_name/service`.
//!
//! Sinks: `maillog_file`, stderr (`postfix start-fg`), or syslog through
//! /dev/log (facility mail). The file is written by a thread of its own:
//! callers append whole lines to a buffer and go on, and the thread
//! writes everything gathered with one append write. A write to a file
//! that the group commit is syncing can stall for milliseconds, and the
//! threads that serve SMTP sessions must not stall with it. Event wording lives with the
//! components that log (one function per event there); this crate owns the
//! line format and the transport.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rostfix_message::date;

/// Where lines go.
#[derive(Debug)]
enum Sink {
    File(FileWriter),
    /// Written in the caller's thread: for a process that must stay
    /// single-threaded (the master, which forks).
    FileDirect(Mutex<File>),
    Stderr,
    Syslog(UnixDatagram),
}

/// Severity, as Postfix prefixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Fatal,
    Panic,
}

impl Level {
    fn prefix(self) -> &'static str {
        match self {
            Level::Info => "",
            Level::Warning => "warning: ",
            Level::Fatal => "fatal: ",
            Level::Panic => "panic: ",
        }
    }

    /// syslog(3) priority: LOG_MAIL with info, warning, crit, emerg.
    fn priority(self) -> u8 {
        let severity = match self {
            Level::Info => 6,
            Level::Warning => 4,
            Level::Fatal => 2,
            Level::Panic => 0,
        };
        2 * 8 + severity
    }
}

/// A log writer for one process.
#[derive(Debug)]
pub struct Logger {
    sink: Sink,
    host: String,
}

impl Logger {
    /// Lines to `maillog_file`.
    pub fn to_file(path: &Path, myhostname: &str) -> io::Result<Logger> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Logger {
            sink: Sink::File(FileWriter::start(file)?),
            host: short_host(myhostname),
        })
    }

    /// Lines to `maillog_file`, written without a helper thread.
    pub fn to_file_direct(path: &Path, myhostname: &str) -> io::Result<Logger> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Logger {
            sink: Sink::FileDirect(Mutex::new(file)),
            host: short_host(myhostname),
        })
    }

    /// Lines to standard error.
    pub fn to_stderr(myhostname: &str) -> Logger {
        Logger {
            sink: Sink::Stderr,
            host: short_host(myhostname),
        }
    }

    /// Lines to the local syslog daemon.
    pub fn to_syslog(myhostname: &str) -> io::Result<Logger> {
        let socket = UnixDatagram::unbound()?;
        socket.connect("/dev/log")?;
        Ok(Logger {
            sink: Sink::Syslog(socket),
            host: short_host(myhostname),
        })
    }

    /// Writes one line for `program` (`postfix/smtpd`) and `pid`.
    pub fn log(&self, level: Level, program: &str, pid: u32, text: &str) {
        let stamp = date::syslog_stamp(&date::local(date::now()));
        let line = format!(
            "{stamp} {} {program}[{pid}]: {}{text}\n",
            self.host,
            level.prefix()
        );
        match &self.sink {
            Sink::File(f) => f.append(line.as_bytes()),
            Sink::FileDirect(f) => {
                let mut f = f.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = f.write_all(line.as_bytes());
            }
            Sink::Stderr => {
                let _ = io::stderr().write_all(line.as_bytes());
            }
            Sink::Syslog(s) => {
                let msg = format!(
                    "<{}>{stamp} {program}[{pid}]: {}{text}",
                    level.priority(),
                    level.prefix()
                );
                let _ = s.send(msg.as_bytes());
            }
        }
    }

    /// Returns when every line logged so far is written.
    pub fn flush(&self) {
        if let Sink::File(f) = &self.sink {
            f.flush();
        }
    }
}

/// Lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// Lines appended and lines written, for [`FileWriter::flush`].
    appended: u64,
    written: u64,
    /// The writer waits for lines (and must be woken for the next).
    idle: bool,
    closing: bool,
}

/// How long the writer gathers lines after a write: under load one write
/// carries many lines, and a logged line costs no wake-up of the writer.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Debug)]
struct FileWriter {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl FileWriter {
    fn start(mut file: File) -> io::Result<FileWriter> {
        let shared: Arc<(Mutex<Pending>, Condvar)> = Arc::default();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("maillog".into())
            .spawn(move || {
                let (lock, cond) = &*worker;
                let mut spare = Vec::new();
                loop {
                    let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while p.buf.is_empty() && !p.closing {
                        p.idle = true;
                        p = cond.wait(p).unwrap_or_else(PoisonError::into_inner);
                        p.idle = false;
                    }
                    if p.buf.is_empty() {
                        return;
                    }
                    std::mem::swap(&mut p.buf, &mut spare);
                    let upto = p.appended;
                    drop(p);
                    // A log line that cannot be written has nowhere to go.
                    let _ = file.write_all(&spare);
                    spare.clear();
                    let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    p.written = upto;
                    cond.notify_all();
                    let closing = p.closing;
                    drop(p);
                    if !closing {
                        std::thread::sleep(GATHER);
                    }
                }
            })?;
        Ok(FileWriter {
            shared,
            thread: Some(thread),
        })
    }

    fn append(&self, line: &[u8]) {
        let (lock, cond) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
        p.buf.extend_from_slice(line);
        p.appended += 1;
        if p.idle || p.closing {
            cond.notify_all();
        }
    }

    fn flush(&self) {
        let (lock, cond) = &*self.shared;
        let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let target = p.appended;
        while p.written < target && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            p = cond.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for FileWriter {
    /// Writes what is left before the process goes on to exit.
    fn drop(&mut self) {
        let (lock, cond) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).closing = true;
        cond.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The first label of `myhostname`, as syslog shows a host.
fn short_host(myhostname: &str) -> String {
    myhostname
        .split('.')
        .next()
        .unwrap_or(myhostname)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_have_postfix_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("maillog");
        let log = Logger::to_file(&path, "mail.kernel-panic.it").unwrap();
        log.log(
            Level::Info,
            "postfix/smtpd",
            29212,
            "connect from unknown[127.0.0.1]",
        );
        log.log(Level::Warning, "postfix/smtpd", 29212, "something odd");
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        // "Dec 16 15:26:35 mail postfix/smtpd[29212]: connect from ..."
        let (stamp, rest) = lines[0].split_at(15);
        assert!(
            stamp.as_bytes()[3] == b' '
                && stamp.as_bytes()[6] == b' '
                && stamp.as_bytes()[9] == b':',
            "{stamp}"
        );
        assert_eq!(
            rest,
            " mail postfix/smtpd[29212]: connect from unknown[127.0.0.1]"
        );
        assert!(lines[1].ends_with(" mail postfix/smtpd[29212]: warning: something odd"));
    }
}

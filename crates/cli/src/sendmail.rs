//! sendmail(1), mailq(1) and newaliases(1): one program that dispatches on
//! its name and mode flag, as Postfix's does.
//!
//! Sending (the default mode) reads a message from standard input and
//! leaves it in the maildrop for pickup(8) (see
//! [`rostfix_queue::maildrop`]); it works while the mail system is down,
//! and exits 0 only once the file is on stable storage. `-bs` speaks SMTP
//! on standard input and output ([`crate::sendmail_bs`]), `-bp` lists the
//! queue (mailq), `-bi` rebuilds the alias databases (newaliases), `-q`
//! flushes the queue. Flags Postfix accepts for compatibility with
//! Sendmail and does nothing with are accepted and ignored the same way.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_maps::build::BuildOptions;
use rostfix_queue::maildrop::Submission;

use crate::msg::{Getopt, fatal};

/// Exit statuses from sysexits.h, which callers of sendmail test.
pub const EX_TEMPFAIL: i32 = 75;

/// Postfix sendmail's option letters (getopt(3) syntax).
const SPEC: &str = "46B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Send,
    Smtp,
    Newaliases,
    Mailq,
    Flush,
    FlushSite,
    Daemon,
    /// `-q30m`: a queue interval for a daemon; nothing to do.
    Ignored,
    /// `-bv`: a probe; the sender gets a report of what delivery would do.
    Verify,
}

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    mode: Mode,
    dir: Option<PathBuf>,
    sender: Option<String>,
    full_name: Option<String>,
    extract: bool,
    /// `-i`/`-oi`: a line with a single dot does not end the message.
    ignore_dots: bool,
    alias_override: Option<String>,
    recipients: Vec<String>,
    /// -N, -R, -V: DSN requests, as the queue keeps them.
    notify: String,
    ret: String,
    envid: String,
}

pub fn main() -> i32 {
    let prog = crate::msg::init("sendmail");
    crate::msg::set_usage_status(EX_TEMPFAIL);
    let mut o = Options {
        mode: match prog {
            "newaliases" => Mode::Newaliases,
            "mailq" => Mode::Mailq,
            _ => Mode::Send,
        },
        dir: None,
        sender: None,
        full_name: None,
        extract: false,
        ignore_dots: false,
        alias_override: None,
        recipients: Vec::new(),
        notify: String::new(),
        ret: String::new(),
        envid: String::new(),
    };
    // `-q` alone flushes: it takes no interval, whatever follows it
    // (getopt would take the next word as one).
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let bare_q = args.iter().position(|a| a == "-q");
    if let Some(i) = bare_q {
        args.remove(i);
        o.mode = Mode::Flush;
    }
    let g = Getopt::parse(args, SPEC, "[options]");
    for (c, v) in &g.options {
        let text = crate::msg::option_text(v);
        match c {
            // -C may name main.cf itself (Sendmail named sendmail.cf).
            'C' => o.dir = Some(config_dir(&text)),
            'F' => o.full_name = Some(text),
            'I' => o.mode = Mode::Newaliases,
            'f' | 'r' => o.sender = Some(text),
            'i' => o.ignore_dots = true,
            't' => o.extract = true,
            'o' => match text.as_str() {
                "i" => o.ignore_dots = true,
                _ if text.starts_with('A') => o.alias_override = Some(text[1..].to_string()),
                // -om, -o7, -o8, -oem, ...: Sendmail options Postfix ignores.
                _ => {}
            },
            'b' => {
                o.mode = match text.as_str() {
                    "i" => Mode::Newaliases,
                    "p" => Mode::Mailq,
                    "s" => Mode::Smtp,
                    "m" => Mode::Send,
                    "v" => Mode::Verify,
                    "d" | "l" => Mode::Daemon,
                    _ => fatal_status(EX_TEMPFAIL, &format!("unsupported: -b{text}")),
                }
            }
            'X' => fatal_status(EX_TEMPFAIL, &format!("unsupported: -X{text}")),
            'N' => o.notify = dsn_notify(&text),
            'R' => {
                o.ret = match text.to_ascii_lowercase().as_str() {
                    r @ ("full" | "hdrs") => r.to_string(),
                    _ => fatal_status(EX_TEMPFAIL, &format!("bad -R option value: {text}")),
                }
            }
            'V' => o.envid = text,
            'q' => {
                o.mode = match text.chars().next() {
                    // -q alone flushes; -q with an interval (for a
                    // daemon Sendmail would run) is ignored.
                    None => Mode::Flush,
                    Some('R') => Mode::FlushSite,
                    Some('S') => fatal_status(EX_TEMPFAIL, "-qS is not implemented"),
                    Some(_) => Mode::Ignored,
                }
            }
            // -4 -6 -B -G -L -O -U -c -e -h -m -n -p -v -x:
            // accepted and ignored, as by Postfix for these purposes.
            _ => {}
        }
    }
    o.recipients = g
        .operands
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let refuse_recipients = |what: &str| {
        if !o.recipients.is_empty() {
            fatal_status(EX_TEMPFAIL, &format!("{what} requires no recipient"));
        }
    };
    match o.mode {
        Mode::Newaliases => {
            refuse_recipients("alias initialization mode");
            newaliases(o.dir, o.alias_override)
        }
        Mode::Mailq => postqueue(o.dir.as_deref(), "-p")
            .unwrap_or_else(|| crate::postqueue::list(o.dir.as_deref(), false)),
        Mode::Flush => {
            refuse_recipients("flush queue mode");
            // Postfix's returns at once and flushes in the background:
            // a mail system that is down is no error here.
            let _ = postqueue(o.dir.as_deref(), "-f");
            0
        }
        Mode::FlushSite => {
            refuse_recipients("flush site");
            0
        }
        Mode::Daemon => {
            refuse_recipients("daemon mode");
            start_daemon(o.dir.as_deref())
        }
        Mode::Smtp => crate::sendmail_bs::main(o.dir.as_deref()),
        Mode::Ignored if o.recipients.is_empty() => 0,
        Mode::Send | Mode::Ignored => send(&o),
        Mode::Verify => verify(&o),
    }
}

/// Runs postqueue (set-group-ID: it may reach the mail system's
/// public/ directory, which sendmail may not) with `flag`; its exit
/// status, or `None` when it cannot be run.
fn postqueue(dir: Option<&Path>, flag: &str) -> Option<i32> {
    let me = std::env::current_exe().ok()?;
    let beside = me.with_file_name("postqueue");
    let path = if beside.exists() {
        beside
    } else {
        let cf = Config::load(dir).ok()?;
        PathBuf::from(cf.string("command_directory").ok()?).join("postqueue")
    };
    let mut cmd = std::process::Command::new(path);
    if let Some(d) = dir {
        cmd.arg("-c").arg(d);
    }
    cmd.arg(flag).status().ok()?.code()
}

/// `sendmail -bd`: there is no Sendmail daemon to run; like Postfix's,
/// it starts the mail system (quietly, whether it runs already or not).
fn start_daemon(dir: Option<&Path>) -> i32 {
    let Ok(me) = std::env::current_exe() else {
        return 0;
    };
    let mut cmd = std::process::Command::new(me.with_file_name("postfix"));
    if let Some(d) = dir {
        cmd.arg("-c").arg(d);
    }
    let _ = cmd
        .arg("start")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    0
}

/// sendmail -N: `never`, or some of `success`, `failure`, `delay`.
fn dsn_notify(text: &str) -> String {
    let words: Vec<String> = text
        .split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .collect();
    let known = ["never", "success", "failure", "delay"];
    if words.iter().any(|w| !known.contains(&w.as_str()))
        || (words.len() > 1 && words.iter().any(|w| w == "never"))
    {
        fatal_status(EX_TEMPFAIL, &format!("bad -N option value: {text}"));
    }
    words.join(",")
}

/// `prog: fatal: text`, with a sysexits status.
pub fn fatal_status(status: i32, text: &str) -> ! {
    eprintln!("{}: fatal: {text}", crate::msg::program());
    std::process::exit(status)
}

/// The configuration directory `-C` names (a directory, or a file in it).
fn config_dir(arg: &str) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.is_file() {
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        p
    }
}

/// The login name and full name of the user running the command.
pub fn user() -> (String, Option<String>) {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => {
            let gecos = u.gecos.to_string_lossy().into_owned();
            let name = full_name_of(&gecos, &u.name);
            (u.name, name)
        }
        _ => fatal_status(
            EX_TEMPFAIL,
            &format!("no login name found for user ID {}", uid.as_raw()),
        ),
    }
}

/// The full name in a password file's GECOS field: its first part, with
/// `&` standing for the capitalized login name.
fn full_name_of(gecos: &str, login: &str) -> Option<String> {
    let first = gecos.split(',').next().unwrap_or("").trim();
    if first.is_empty() {
        return None;
    }
    let mut cap = login.to_string();
    if let Some(c) = cap.get_mut(..1) {
        c.make_ascii_uppercase();
    }
    Some(first.replace('&', &cap))
}

/// The envelope sender a -f or -r value gives: `<>` and the empty
/// string are the null sender; angle brackets are removed.
fn sender_arg(arg: &str) -> String {
    let a = arg.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .to_string()
}

/// Refuses a submission with no recipient to find (none given, and no
/// -t), as Postfix's sendmail does.
fn need_recipients(o: &Options, extract: bool, login: &str, uid: u32) {
    if o.recipients.is_empty() && !extract {
        fatal_status(
            EX_TEMPFAIL,
            &format!(
                "{login}({uid}): Recipient addresses must be specified on the command line or via the -t option"
            ),
        );
    }
}

/// The configuration and its queue directory (an error exits 75).
fn load(o: &Options) -> (Config, PathBuf) {
    let cf = Config::load(o.dir.as_deref()).unwrap_or_else(|e| config_error(e));
    let queue_directory = PathBuf::from(
        cf.string("queue_directory")
            .unwrap_or_else(|e| config_error(e)),
    );
    (cf, queue_directory)
}

/// `sendmail -bv`: a probe for the recipients, without reading standard
/// input; the report goes to the sender.
fn verify(o: &Options) -> i32 {
    let (login, _) = user();
    let uid = nix::unistd::getuid().as_raw();
    // A probe reads no message: -t has no headers to take them from.
    need_recipients(o, false, &login, uid);
    let (cf, queue_directory) = load(o);
    let sender = o.sender.as_deref().map_or(login.clone(), sender_arg);
    let sub = Submission {
        sender: &sender,
        uid: Some(uid),
        recipients: &o.recipients,
        verify: true,
        ..Submission::default()
    };
    let mut drop = crate::maildrop::open(&cf, &queue_directory, &sub)
        .unwrap_or_else(|e| fatal_status(EX_TEMPFAIL, &e));
    // The probe's headers, as Postfix's sendmail writes them.
    let headers = [
        format!("From: {login}"),
        "Subject: probe".to_string(),
        format!("To:\t{}", o.recipients.join(",\n\t")),
    ];
    for h in headers.iter().flat_map(|h| h.split('\n')) {
        if let Err(e) = drop.line(h.as_bytes()) {
            drop.discard();
            fatal_status(EX_TEMPFAIL, &e);
        }
    }
    match drop.finish(&queue_directory) {
        Ok(_) => {
            println!("Mail Delivery Status Report will be mailed to <{sender}>.");
            0
        }
        Err(e) => fatal_status(EX_TEMPFAIL, &e),
    }
}

/// Reads the message from standard input into the maildrop.
fn send(o: &Options) -> i32 {
    let (login, gecos_name) = user();
    let uid = nix::unistd::getuid().as_raw();
    let who = format!("{login}({uid})");
    need_recipients(o, o.extract, &login, uid);
    let (cf, queue_directory) = load(o);
    let size_limit = cf
        .int("message_size_limit")
        .unwrap_or_else(|e| config_error(e));
    let sender = o.sender.as_deref().map_or(login, sender_arg);
    // Postfix's sendmail takes `-f -Xsomething` and pipe(8) commands get
    // it as an argument that reads like an option; Rostfix refuses it
    // here, where the user sees why (EX_USAGE).
    if sender.starts_with('-') {
        fatal_status(
            64,
            &format!("-f: sender address may not begin with '-': {sender}"),
        );
    }
    let full_name = o
        .full_name
        .clone()
        .or_else(|| std::env::var("NAME").ok().filter(|n| !n.is_empty()))
        .or(gecos_name);
    let sub = Submission {
        sender: &sender,
        full_name: full_name.as_deref(),
        extract_recipients: o.extract,
        // Root may hand the file to the mail system's user (see
        // maildrop_owner); the user ID then travels in the file.
        uid: Some(uid),
        recipients: &o.recipients,
        notify: &o.notify,
        ret: &o.ret,
        envid: &o.envid,
        verify: false,
    };
    let mut drop = crate::maildrop::open(&cf, &queue_directory, &sub)
        .unwrap_or_else(|e| fatal_status(EX_TEMPFAIL, &e));
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::with_capacity(1024);
    let mut size: u64 = 0;
    let mut first = true;
    // With -t, the header lines, to see that they name a recipient.
    let mut headers: Option<Vec<Vec<u8>>> = o.extract.then(Vec::new);
    let outcome = loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err((EX_TEMPFAIL, format!("read standard input: {e}"))),
        }
        // sendmail_fix_line_endings = always: CRLF and LF both end a line.
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if !o.ignore_dots && line == b"." {
            break Ok(());
        }
        // An mbox envelope line some programs put first is no header.
        if std::mem::take(&mut first) && line.starts_with(b"From ") {
            continue;
        }
        if let Some(h) = &mut headers {
            if is_header_line(&line, h.is_empty()) {
                h.push(line.clone());
            } else {
                if !has_recipients(h) && o.recipients.is_empty() {
                    break Err((EX_TEMPFAIL, no_recipients(&who)));
                }
                headers = None;
            }
        }
        size += line.len() as u64 + 1;
        if size_limit > 0 && size > size_limit as u64 {
            break Err((EX_TEMPFAIL, "message file too big".to_string()));
        }
        if let Err(e) = drop.line(&line) {
            break Err((EX_TEMPFAIL, e));
        }
    };
    let outcome = outcome.and_then(|()| match &headers {
        Some(h) if !has_recipients(h) && o.recipients.is_empty() => {
            Err((EX_TEMPFAIL, no_recipients(&who)))
        }
        _ => Ok(()),
    });
    if let Err((status, why)) = outcome {
        drop.discard();
        fatal_status(status, &why);
    }
    match drop.finish(&queue_directory) {
        Ok(_) => 0,
        Err(e) => fatal_status(EX_TEMPFAIL, &e),
    }
}

fn config_error(e: rostfix_config::ConfigError) -> ! {
    fatal_status(EX_TEMPFAIL, &e.to_string())
}

fn no_recipients(who: &str) -> String {
    format!("{who}: No recipient addresses found in message header")
}

/// Whether `line` continues the headers: a `name:` line, or a folded
/// continuation of one.
fn is_header_line(line: &[u8], first: bool) -> bool {
    if !first && line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return true;
    }
    rostfix_message::header::is_header(line)
}

fn has_recipients(headers: &[Vec<u8>]) -> bool {
    !rostfix_engine::cleanup::header_recipients(headers.iter().map(Vec::as_slice)).is_empty()
}

fn newaliases(dir: Option<PathBuf>, alias_override: Option<String>) -> i32 {
    crate::msg::speak_as("postalias");
    let cf = Config::load(dir.as_deref()).unwrap_or_else(|e| fatal(e));
    let default_type = cf
        .string("default_database_type")
        .unwrap_or_else(|e| fatal(e));
    let databases = match alias_override {
        Some(db) => db,
        None => cf.string("alias_database").unwrap_or_else(|e| fatal(e)),
    };
    let myhostname = cf.string("myhostname").unwrap_or_else(|e| fatal(e));
    let opts = BuildOptions {
        utf8: cf.bool("smtputf8_enable").unwrap_or(false),
        ..BuildOptions::default()
    };
    for db in rostfix_config::value::split_list(&databases) {
        let (kind, name) = crate::postmap::with_type(db, &default_type);
        crate::postalias::build_aliases(&kind, &name, &opts, &myhostname);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_come_from_the_first_gecos_field() {
        assert_eq!(full_name_of("Jo Doe,,,", "jo").as_deref(), Some("Jo Doe"));
        assert_eq!(
            full_name_of("& Admin", "root").as_deref(),
            Some("Root Admin")
        );
        assert_eq!(full_name_of(",,,", "x"), None);
        assert_eq!(full_name_of("", "x"), None);
    }

    #[test]
    fn sender_arguments_drop_angle_brackets() {
        assert_eq!(sender_arg("<>"), "");
        assert_eq!(sender_arg(""), "");
        assert_eq!(sender_arg("<a@b>"), "a@b");
        assert_eq!(sender_arg("a@b"), "a@b");
    }
}

//! local(8) delivery to a command (`|command` in aliases(5) or a
//! .forward file): the command runs as the user whose privileges the
//! delivery has, in the queue directory, with umask 077, a clean
//! environment (local(8)'s variables, PATH=/usr/bin:/bin and the
//! export_environment names) and the message on its standard input,
//! preceded by an mbox `From ` line and the Return-Path, X-Original-To
//! and Delivered-To headers (no `>From` quoting, as Postfix's). Its exit
//! status says what became of the message, per sysexits(3); output that
//! starts with an enhanced status code overrides that (RFC 3463).
//!
//! The command runs through `/bin/sh -c` when it has white space or
//! shell characters, else it is executed directly (a command that cannot
//! be executed then defers rather than bouncing with the shell's 127).
//! It is killed after command_time_limit.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::virtual_agent::Failure;

/// What the command's output may add to a reason.
const OUTPUT_LIMIT: usize = 2000;

/// Characters that make a command a shell command.
const SHELL_CHARS: &[char] = &[
    ' ', '\t', '\n', '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[',
    '#', '~', '=', '%',
];

/// Who a command runs as, and the account variables it sees.
#[derive(Debug, Clone)]
pub struct Privileges {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub home: String,
    pub shell: String,
}

/// One delivery to a command.
#[derive(Debug)]
pub struct Job<'a> {
    /// The command as written (`|command`), run by the shell when it
    /// needs one; or its argument vector (pipe(8)'s argv=), run as is.
    pub command: &'a str,
    pub argv: Option<&'a [String]>,
    /// Who runs it, for the exec failure text (`local`, `pipe`).
    pub program: &'static str,
    /// Switch to these (when the process may).
    pub privileges: &'a Privileges,
    pub switch: bool,
    /// The environment, in order (local(8)'s variables).
    pub env: Vec<(&'static str, String)>,
    pub queue_directory: &'a Path,
    pub time_limit: Duration,
    /// What goes to standard input.
    pub input: Vec<u8>,
}

/// Runs the command; `Ok` when it took the message.
pub fn run(job: Job<'_>) -> Result<(), Failure> {
    let mut cmd = if let Some(argv) = job.argv {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    } else if job.command.contains(SHELL_CHARS) {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(job.command);
        c
    } else {
        Command::new(job.command)
    };
    cmd.env_clear()
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .current_dir(job.queue_directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a time-out kills what it started.
        .process_group(0);
    if job.switch {
        cmd.uid(job.privileges.uid).gid(job.privileges.gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)).desc();
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!(
                    "temporary failure. Command output: {}: fatal: execvp {}: {why} ",
                    job.program, job.command
                ),
            ));
        }
    };
    let mut stdin = child.stdin.take();
    let input = job.input;
    // Written from a thread of its own: a command may write output before
    // it reads all of its input. It is not waited for: a process the
    // command left behind may hold the pipe open (the thread ends when
    // the pipe does).
    std::thread::spawn(move || {
        if let Some(w) = stdin.as_mut() {
            let _ = w.write_all(&input);
        }
    });
    let output = collect_output(&mut child);
    let deadline = Instant::now() + job.time_limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) on the child's process group; no memory
                // is touched.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // The output, once the pipes close; a daemon the command started may
    // keep them open, so not for long after the command ended.
    let output = output.recv_timeout(OUTPUT_WAIT).unwrap_or_default();
    let Some(status) = status else {
        return Err(Failure::Defer(
            "4.3.0".into(),
            format!("command time limit exceeded: \"{}\"", job.command),
        ));
    };
    outcome(job.command, status, &output)
}

/// How long output is waited for after the command ended.
const OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// Reads standard output and error to their end (so the command never
/// dies of a closed pipe), keeping the first OUTPUT_LIMIT bytes; the text
/// comes through the channel once both are closed.
fn collect_output(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let Some(mut r) = r else { return kept };
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = out.join().unwrap_or_default();
        let err = err.join().unwrap_or_default();
        let room = OUTPUT_LIMIT.saturating_sub(text.len());
        text.extend_from_slice(&err[..err.len().min(room)]);
        // One line in a log: line ends and other controls become spaces.
        let shown = String::from_utf8_lossy(&text)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let _ = tx.send(shown);
    });
    rx
}

/// sysexits(3) statuses: enhanced status code and text, and whether the
/// failure is for now only.
fn sysexits(code: i32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        64 => ("5.3.0", "command line usage error"),
        65 => ("5.6.0", "data format error"),
        66 => ("5.3.0", "cannot open input"),
        67 => ("5.1.1", "user unknown"),
        68 => ("5.1.2", "host name unknown"),
        69 => ("5.3.0", "service unavailable"),
        70 => ("5.3.0", "internal software error"),
        71 => ("4.3.0", "system resource problem"),
        72 => ("5.3.0", "critical OS file missing"),
        73 => ("5.2.0", "can't create user output file"),
        74 => ("5.3.0", "input/output error"),
        75 => ("4.3.0", "temporary failure"),
        76 => ("5.5.0", "remote error in protocol"),
        77 => ("5.7.0", "permission denied"),
        78 => ("5.3.5", "local configuration error"),
        _ => return None,
    })
}

/// What an exit status (and the output) mean for the delivery. A bounce
/// reports the output, else the sysexits text, as its diagnostic.
fn outcome(command: &str, status: std::process::ExitStatus, output: &str) -> Result<(), Failure> {
    if let Some(signal) = status.signal() {
        return Err(Failure::Defer(
            "4.3.0".into(),
            format!("Command died with signal {signal}: \"{command}\""),
        ));
    }
    let code = status.code().unwrap_or(0);
    if code == 0 {
        return Ok(());
    }
    let fail = |dsn: &str, why: String, unix: &str| {
        let shown = output.trim();
        let unix = if shown.is_empty() { unix } else { shown };
        if dsn.starts_with('4') {
            Failure::Defer(dsn.to_string(), why)
        } else {
            Failure::BounceUnix(dsn.to_string(), why, unix.to_string())
        }
    };
    // "5.2.2 Mailbox full.": the command says itself what happened.
    if let Some((dsn, rest)) = output.split_once(' ')
        && is_enhanced_code(dsn)
    {
        let rest_trimmed = rest.trim().to_string();
        return Err(match fail(dsn, rest.to_string(), "") {
            Failure::BounceUnix(d, w, _) => Failure::BounceUnix(d, w, rest_trimmed),
            other => other,
        });
    }
    let with_output = |why: String| {
        if output.is_empty() {
            why
        } else {
            format!("{why}. Command output: {output}")
        }
    };
    Err(match sysexits(code) {
        Some((dsn, text)) => fail(dsn, with_output(text.to_string()), text),
        None => fail(
            "5.3.0",
            with_output(format!("Command died with status {code}: \"{command}\"")),
            &format!("unknown mail system error {code}"),
        ),
    })
}

/// `4.x.y` or `5.x.y` with numbers of RFC 3463's sizes.
fn is_enhanced_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: i32) -> std::process::ExitStatus {
        std::process::ExitStatus::from_raw(code << 8)
    }

    fn text(r: Result<(), Failure>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(Failure::Defer(d, w)) => format!("defer {d} {w}"),
            Err(Failure::Bounce(d, w) | Failure::BounceUnix(d, w, _)) => format!("bounce {d} {w}"),
            Err(f @ Failure::Remote { .. }) => format!("remote {f:?}"),
        }
    }

    #[test]
    fn exit_statuses_map_as_in_postfix() {
        assert_eq!(text(outcome("exit 0", status(0), "")), "ok");
        assert_eq!(
            text(outcome("exit 75", status(75), "")),
            "defer 4.3.0 temporary failure"
        );
        assert_eq!(
            text(outcome("x", status(75), "Try later. ")),
            "defer 4.3.0 temporary failure. Command output: Try later. "
        );
        assert_eq!(
            text(outcome("exit 67", status(67), "")),
            "bounce 5.1.1 user unknown"
        );
        assert_eq!(
            text(outcome("exit 1", status(1), "")),
            "bounce 5.3.0 Command died with status 1: \"exit 1\""
        );
        assert_eq!(
            text(outcome("x", status(75), "5.2.2 Mailbox full. ")),
            "bounce 5.2.2 Mailbox full. "
        );
        assert_eq!(
            text(outcome("kill", std::process::ExitStatus::from_raw(9), "")),
            "defer 4.3.0 Command died with signal 9: \"kill\""
        );
    }
}

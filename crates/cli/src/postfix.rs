//! postfix(1): start, stop and look after the mail system.
//!
//! `start` runs the engine in the background and returns once it accepts
//! connections (or says why it cannot start); `start-fg` runs it in the
//! foreground; `stop` (SIGTERM) and `abort` (SIGKILL) end it; `status`
//! tells whether it runs; `check` validates the configuration; `reload`
//! signals it. The master's pid lives in `$queue_directory/pid/master.pid`
//! as with Postfix. Messages use Postfix's `postfix/postfix-script:`
//! wording, which init scripts and people look for.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rostfix_config::Config;

use crate::msg::{Getopt, fatal};

const USAGE: &str = "[-c config_dir] [-Dv] command";
const SCRIPT: &str = "postfix/postfix-script";

fn say(text: &str) {
    eprintln!("{SCRIPT}: {text}");
}

fn script_fatal(text: &str) -> ! {
    eprintln!("{SCRIPT}: fatal: {text}");
    std::process::exit(1)
}

/// The running master's pid, if its pid file names a live process.
fn running(queue_directory: &Path) -> Option<Pid> {
    let pid = rostfix_engine::running(queue_directory)?;
    Some(Pid::from_raw(i32::try_from(pid).ok()?))
}

pub fn main() -> i32 {
    crate::msg::init("postfix");
    let g = Getopt::parse(std::env::args_os().skip(1), "c:Dv", USAGE);
    let mut dir: Option<PathBuf> = None;
    for (c, v) in g.options {
        if c == 'c' {
            dir = v.map(PathBuf::from);
        }
    }
    let Some(command) = g.operands.first().map(|o| o.to_string_lossy().into_owned()) else {
        crate::msg::usage_exit(USAGE);
    };
    let cf = Config::load(dir.as_deref()).unwrap_or_else(|e| fatal(e));
    let queue_directory = PathBuf::from(cf.string("queue_directory").unwrap_or_else(|e| fatal(e)));
    match command.as_str() {
        "start" => start(dir.as_deref(), &queue_directory),
        "start-fg" => {
            if running(&queue_directory).is_some() {
                script_fatal("the Postfix mail system is already running");
            }
            match rostfix_engine::run(dir.as_deref(), true, || {}) {
                Ok(()) => 0,
                Err(e) => fatal(e),
            }
        }
        "stop" | "abort" => {
            let Some(pid) = running(&queue_directory) else {
                script_fatal("the Postfix mail system is not running");
            };
            let (signal, words) = if command == "stop" {
                (Signal::SIGTERM, "stopping the Postfix mail system")
            } else {
                (Signal::SIGKILL, "aborting the Postfix mail system")
            };
            say(words);
            let _ = kill(pid, signal);
            let deadline = Instant::now() + Duration::from_secs(30);
            while running(&queue_directory).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if command == "abort" {
                let _ = std::fs::remove_file(rostfix_engine::pid_file(&queue_directory));
            }
            0
        }
        "status" => match running(&queue_directory) {
            Some(pid) => {
                say(&format!("the Postfix mail system is running: PID: {pid}"));
                0
            }
            None => {
                say("the Postfix mail system is not running");
                1
            }
        },
        "reload" => {
            let Some(pid) = running(&queue_directory) else {
                script_fatal("the Postfix mail system is not running");
            };
            say("refreshing the Postfix mail system");
            let _ = kill(pid, Signal::SIGHUP);
            0
        }
        "check" => match rostfix_engine::settings::Settings::resolve(&cf) {
            Ok(_) => 0,
            Err(e) => fatal(e),
        },
        other => fatal(format!(
            "unknown command: '{other}'. Usage: postfix {USAGE}"
        )),
    }
}

/// Forks the engine into the background and waits until it accepts
/// connections or reports why it cannot.
fn start(dir: Option<&Path>, queue_directory: &Path) -> i32 {
    if running(queue_directory).is_some() {
        script_fatal("the Postfix mail system is already running");
    }
    let (mut reader, writer) = std::io::pipe().unwrap_or_else(|e| fatal(format!("pipe: {e}")));
    // SAFETY: this process has started no threads yet (no runtime, no
    // helper threads), so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fatal(format!("fork: {e}")),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(reader);
            let _ = nix::unistd::setsid();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                use std::os::fd::AsRawFd;
                // SAFETY: dup2 onto the standard descriptors of this
                // single-threaded child; `null` outlives the calls.
                unsafe {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                    libc::dup2(null.as_raw_fd(), 2);
                }
            }
            let writer = std::sync::Mutex::new(Some(writer));
            let ready = || {
                if let Some(mut w) = writer.lock().ok().and_then(|mut w| w.take()) {
                    let _ = w.write_all(b"ok");
                }
            };
            let result = rostfix_engine::run(dir, false, ready);
            if let (Err(e), Some(mut w)) = (&result, writer.lock().ok().and_then(|mut w| w.take()))
            {
                let _ = w.write_all(e.as_bytes());
            }
            std::process::exit(if result.is_ok() { 0 } else { 1 });
        }
        Ok(nix::unistd::ForkResult::Parent { .. }) => {
            drop(writer);
            let mut answer = String::new();
            let _ = reader.read_to_string(&mut answer);
            if answer == "ok" {
                say("starting the Postfix mail system");
                0
            } else if answer.is_empty() {
                fatal("the mail system exited before it was ready")
            } else {
                fatal(answer)
            }
        }
    }
}

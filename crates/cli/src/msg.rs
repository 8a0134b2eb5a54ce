//! Diagnostics in Postfix's shape: `prog: warning: text` and
//! `prog: fatal: text` on standard error, where prog is the command name
//! (argv[0] without its directory). fatal exits with status 1.

use std::sync::OnceLock;

static PROGRAM: OnceLock<String> = OnceLock::new();

/// Sets the name diagnostics are printed under, from argv[0], and sends
/// lookup-table warnings through [`warning`].
pub fn init(default: &str) -> &'static str {
    let name = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| default.to_string());
    let name = PROGRAM.get_or_init(|| name);
    rostfix_maps::set_warning_sink(warning);
    name
}

static ALIAS: OnceLock<&'static str> = OnceLock::new();

pub fn program() -> &'static str {
    if let Some(name) = ALIAS.get() {
        return name;
    }
    PROGRAM.get().map(String::as_str).unwrap_or("postfix")
}

/// Speak as another program from now on: newaliases reports as postalias,
/// the program Postfix's newaliases runs to do the work.
pub fn speak_as(name: &'static str) {
    let _ = ALIAS.set(name);
}

/// The maillog a command writes its lines to as well (postsuper,
/// postqueue): maillog_file when set, else syslog; `None` when neither
/// can be opened (the command still says it on standard error).
pub fn maillog(cf: &rostfix_config::Config) -> Option<rostfix_engine::log::Log> {
    let host = cf.string("myhostname").ok()?;
    let syslog_name = cf.string("syslog_name").ok()?;
    let logger = match cf.string("maillog_file").ok().filter(|p| !p.is_empty()) {
        Some(path) => rostfix_maillog::Logger::to_file_direct(std::path::Path::new(&path), &host),
        None => rostfix_maillog::Logger::to_syslog(&host),
    }
    .ok()?;
    Some(rostfix_engine::log::Log::new(logger, &syslog_name))
}

/// An I/O error as C's strerror(3) words it (no "(os error N)").
pub fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

pub fn warning(text: &str) {
    eprintln!("{}: warning: {text}", program());
}

pub fn fatal(text: impl std::fmt::Display) -> ! {
    eprintln!("{}: fatal: {text}", program());
    std::process::exit(1)
}

/// An option's argument as text (empty for a flag without one).
pub fn option_text(value: &Option<std::ffi::OsString>) -> String {
    value
        .as_ref()
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Command-line options the way Postfix's commands see them: getopt(3) in
/// POSIX mode (options end at the first operand or `--`, as Postfix asks
/// with its "+" prefix), bundled flags (`-nf`), attached or separate values
/// (`-cDIR`, `-c DIR`), and glibc's wording for mistakes.
#[derive(Debug)]
pub struct Getopt {
    pub options: Vec<(char, Option<std::ffi::OsString>)>,
    pub operands: Vec<std::ffi::OsString>,
}

impl Getopt {
    /// Parses `args` (without argv[0]) against `spec`, where a letter
    /// followed by `:` takes a value. On a mistake prints GNU getopt's
    /// message and then `fatal: usage: prog USAGE`.
    pub fn parse(
        args: impl IntoIterator<Item = std::ffi::OsString>,
        spec: &str,
        usage_text: &str,
    ) -> Getopt {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let takes_value = |c: char| {
            spec.find(c)
                .map(|i| spec[i + c.len_utf8()..].starts_with(':'))
        };
        let mut out = Getopt {
            options: Vec::new(),
            operands: Vec::new(),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let bytes = arg.as_bytes();
            if bytes == b"--" {
                out.operands.extend(args.by_ref());
                break;
            }
            if bytes.len() < 2 || bytes[0] != b'-' {
                out.operands.push(arg);
                out.operands.extend(args.by_ref());
                break;
            }
            let mut i = 1;
            while i < bytes.len() {
                let c = bytes[i] as char;
                i += 1;
                match takes_value(c) {
                    _ if c == ':' => bad_option(c, usage_text),
                    None => bad_option(c, usage_text),
                    Some(false) => out.options.push((c, None)),
                    Some(true) => {
                        let value = if i < bytes.len() {
                            std::ffi::OsString::from_vec(bytes[i..].to_vec())
                        } else {
                            match args.next() {
                                Some(v) => v,
                                None => {
                                    eprintln!(
                                        "{}: option requires an argument -- '{c}'",
                                        program()
                                    );
                                    usage_exit(usage_text)
                                }
                            }
                        };
                        out.options.push((c, Some(value)));
                        break;
                    }
                }
            }
        }
        out
    }
}

fn bad_option(c: char, usage_text: &str) -> ! {
    eprintln!("{}: invalid option -- '{c}'", program());
    usage_exit(usage_text)
}

static USAGE_STATUS: OnceLock<i32> = OnceLock::new();

/// The exit status of a usage error from now on (1 unless set):
/// sendmail's is EX_TEMPFAIL, postqueue's EX_UNAVAILABLE, as Postfix's.
pub fn set_usage_status(status: i32) {
    let _ = USAGE_STATUS.set(status);
}

/// `prog: fatal: usage: prog USAGE`, exit 1 (or the status set).
pub fn usage_exit(usage_text: &str) -> ! {
    eprintln!("{}: fatal: usage: {} {usage_text}", program(), program());
    std::process::exit(USAGE_STATUS.get().copied().unwrap_or(1))
}

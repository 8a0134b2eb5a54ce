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

pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("postfix")
}

pub fn warning(text: &str) {
    eprintln!("{}: warning: {text}", program());
}

pub fn fatal(text: impl std::fmt::Display) -> ! {
    eprintln!("{}: fatal: {text}", program());
    std::process::exit(1)
}

/// A lexopt error as a fatal usage message.
pub fn usage(text: impl std::fmt::Display, usage: &str) -> ! {
    eprintln!("{}: fatal: {text}", program());
    eprintln!("{}: fatal: usage: {} {usage}", program(), program());
    std::process::exit(1)
}

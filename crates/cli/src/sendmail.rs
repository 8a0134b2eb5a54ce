//! sendmail(1), mailq(1) and newaliases(1): one program that dispatches on
//! its name, as Postfix's does. `newaliases` (= `sendmail -bi`) rebuilds
//! every table in `alias_database`. Mail submission and the queue listing
//! arrive with issue 4; until then they say so and fail.

use std::path::PathBuf;

use rostfix_config::Config;

use rostfix_maps::build::BuildOptions;

use crate::msg::fatal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Send,
    Newaliases,
    Mailq,
}

pub fn main() -> i32 {
    let prog = crate::msg::init("sendmail");
    let mut mode = match prog {
        "newaliases" => Mode::Newaliases,
        "mailq" => Mode::Mailq,
        _ => Mode::Send,
    };
    let mut dir: Option<PathBuf> = None;
    let mut alias_override: Option<String> = None;
    let mut args = std::env::args().skip(1);
    // sendmail's flags are historical and permissive; parse them by hand
    // the way Postfix's getopt string does, accepting attached values.
    while let Some(a) = args.next() {
        if a == "--" || !a.starts_with('-') {
            break;
        }
        match a.as_str() {
            "-bi" | "-I" => mode = Mode::Newaliases,
            "-bp" => mode = Mode::Mailq,
            "-C" => dir = args.next().map(PathBuf::from),
            _ if a.starts_with("-C") => dir = Some(PathBuf::from(&a[2..])),
            _ if a.starts_with("-oA") => alias_override = Some(a[3..].to_string()),
            _ => {}
        }
    }
    match mode {
        Mode::Newaliases => newaliases(dir, alias_override),
        Mode::Mailq => crate::unimplemented::main("mailq", "the queue tools (issue 4)"),
        Mode::Send => crate::unimplemented::main("sendmail", "local submission (issue 4)"),
    }
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

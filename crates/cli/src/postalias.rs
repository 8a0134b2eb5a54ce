//! postalias(1): build, query and edit alias tables (aliases(5) format).
//!
//! Like postmap, but the input is `name: value, value...` and every built
//! table also gets the entries Sendmail-era tools expect: `@` → `@` and the
//! NIS bookkeeping keys `YP_LAST_MODIFIED` and `YP_MASTER_NAME` (stored
//! without NUL, as Postfix stores them).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use lexopt::prelude::*;
use rostfix_config::Config;
use rostfix_maps::build::{BuildOptions, Duplicates, TableWriter, update_in_place};
use rostfix_maps::{Dict, DictError, NulMode, OpenOptions};

use crate::msg::{fatal, warning};
use crate::postmap::{lookup_or_die, open_or_die, with_type};

const USAGE: &str = "[-Nfinorsvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";

#[derive(Debug, Default)]
struct Opts {
    dir: Option<PathBuf>,
    query: Option<String>,
    delete: Vec<String>,
    dump: bool,
    no_fold: bool,
    nul: Option<NulMode>,
    duplicates: Option<Duplicates>,
    files: Vec<String>,
}

fn parse_args() -> Result<Opts, lexopt::Error> {
    let mut o = Opts::default();
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Short('c') => o.dir = Some(p.value()?.into()),
            Short('q') => o.query = Some(p.value()?.string()?),
            Short('d') => o.delete.push(p.value()?.string()?),
            Short('s') => o.dump = true,
            Short('f') => o.no_fold = true,
            Short('N') => o.nul = Some(NulMode::With),
            Short('n') => o.nul = Some(NulMode::Without),
            Short('r') => o.duplicates = Some(Duplicates::Replace),
            Short('w') => o.duplicates = Some(Duplicates::Ignore),
            Short('i') | Short('o') | Short('v') | Short('p') | Short('u') | Short('U') => {}
            Value(v) => o.files.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

pub fn main() -> i32 {
    crate::msg::init("postalias");
    let o = parse_args().unwrap_or_else(|e| crate::msg::usage(e, USAGE));
    let cf = Config::load(o.dir.as_deref()).unwrap_or_else(|e| fatal(e));
    if o.files.is_empty() {
        crate::msg::usage("missing file name", USAGE);
    }
    let default_type = cf
        .string("default_database_type")
        .unwrap_or_else(|e| fatal(e));
    let tables: Vec<(String, String)> = o
        .files
        .iter()
        .map(|f| with_type(f, &default_type))
        .collect();
    let open_opts = OpenOptions {
        fold: !o.no_fold,
        nul: o.nul.unwrap_or(NulMode::Auto),
    };
    if let Some(key) = &o.query {
        let dicts: Vec<Box<dyn Dict>> = tables
            .iter()
            .map(|(k, n)| open_or_die(k, n, &open_opts))
            .collect();
        let find = |key: &str| dicts.iter().find_map(|d| lookup_or_die(d.as_ref(), key));
        if key != "-" {
            return match find(key) {
                Some(v) => {
                    println!("{v}");
                    0
                }
                None => 1,
            };
        }
        let mut found = false;
        let mut out = std::io::stdout().lock();
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let k = line.trim();
            if let Some(v) = find(k).filter(|_| !k.is_empty()) {
                found = true;
                let _ = writeln!(out, "{k}:\t{v}");
            }
        }
        return if found { 0 } else { 1 };
    }
    if !o.delete.is_empty() {
        let keys: Vec<String> = o
            .delete
            .iter()
            .map(|k| {
                if o.no_fold {
                    k.clone()
                } else {
                    k.to_ascii_lowercase()
                }
            })
            .collect();
        let mut any = false;
        for (kind, name) in &tables {
            match update_in_place(kind, name, &[], &keys, open_opts.nul) {
                Ok(found) => any |= found.iter().any(|f| *f),
                Err(e) => fatal(e),
            }
        }
        return if any { 0 } else { 1 };
    }
    if o.dump {
        for (kind, name) in &tables {
            let d = open_or_die(kind, name, &open_opts);
            match d.sequence() {
                Ok(entries) => {
                    let mut out = std::io::stdout().lock();
                    for (k, v) in entries {
                        let _ = writeln!(out, "{k}:\t{v}");
                    }
                }
                Err(DictError::Config(text)) => fatal(text),
                Err(e) => fatal(e),
            }
        }
        return 0;
    }
    let myhostname = cf.string("myhostname").unwrap_or_else(|e| fatal(e));
    let opts = BuildOptions {
        nul: open_opts.nul,
        fold: !o.no_fold,
        duplicates: o.duplicates.unwrap_or(Duplicates::Warn),
    };
    for (kind, name) in &tables {
        build_aliases(kind, name, &opts, &myhostname);
    }
    0
}

/// Builds one alias table from its source file `name`.
pub(crate) fn build_aliases(kind: &str, name: &str, opts: &BuildOptions, myhostname: &str) {
    let text = std::fs::read(name)
        .unwrap_or_else(|e| fatal(format!("open {name}: {}", rostfix_config::io_text(&e))));
    let src = rostfix_maps::source::parse_aliases(name, &String::from_utf8_lossy(&text));
    for w in &src.warnings {
        warning(w);
    }
    let mut writer = TableWriter::new(kind, name, opts.nul).unwrap_or_else(|e| fatal(e));
    for w in writer.add_entries(name, src.entries, opts) {
        warning(&w);
    }
    writer.add("@", "@");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writer.add_raw(b"YP_LAST_MODIFIED", now.to_string().as_bytes());
    writer.add_raw(b"YP_MASTER_NAME", myhostname.as_bytes());
    if let Err(e) = writer.commit(Some(Path::new(name))) {
        fatal(e);
    }
}

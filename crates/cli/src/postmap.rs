//! postmap(1): build lookup tables from text files, query, list and edit
//! them.
//!
//! `postmap [-bfhiNnorsvw] [-c dir] [-d key] [-q key] [type:]file ...`.
//! Without `-q`, `-d` or `-s` each file is (re)built; `-i` adds standard
//! input's entries to an existing table instead. `-q -` reads keys from
//! standard input and prints `key<TAB>value` for each hit; with `-h` or
//! `-b` it reads a message and queries its header or body lines, as
//! header_checks and body_checks would see them. Exit status: 0 when a
//! query or delete found something, 1 otherwise.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use lexopt::prelude::*;
use rostfix_config::Config;
use rostfix_maps::build::{BuildOptions, Duplicates, TableWriter, update_in_place};
use rostfix_maps::{Dict, DictError, NulMode, OpenOptions};

use crate::msg::{fatal, warning};

const USAGE: &str = "[-bfhiNnorsvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";

#[derive(Debug, Default)]
struct Opts {
    dir: Option<PathBuf>,
    query: Option<String>,
    delete: Vec<String>,
    dump: bool,
    incremental: bool,
    no_fold: bool,
    header: bool,
    body: bool,
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
            Short('i') => o.incremental = true,
            Short('f') => o.no_fold = true,
            Short('h') => o.header = true,
            Short('b') => o.body = true,
            Short('N') => o.nul = Some(NulMode::With),
            Short('n') => o.nul = Some(NulMode::Without),
            Short('r') => o.duplicates = Some(Duplicates::Replace),
            Short('w') => o.duplicates = Some(Duplicates::Ignore),
            Short('o') | Short('v') | Short('m') | Short('M') | Short('p') | Short('u')
            | Short('U') => {}
            Value(v) => o.files.push(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

/// `type:name` with the configured default type filled in.
pub(crate) fn with_type(arg: &str, default_type: &str) -> (String, String) {
    match arg.split_once(':') {
        Some((t, n)) if !t.contains('/') => (t.to_string(), n.to_string()),
        _ => (default_type.to_string(), arg.to_string()),
    }
}

pub(crate) fn open_or_die(kind: &str, name: &str, opts: &OpenOptions) -> Box<dyn Dict> {
    match rostfix_maps::open(&format!("{kind}:{name}"), opts) {
        Ok(d) => d,
        Err(DictError::Retry { reason, .. }) => fatal(reason),
        Err(DictError::Config(text)) => fatal(text),
    }
}

pub(crate) fn lookup_or_die(d: &dyn Dict, key: &str) -> Option<String> {
    match d.lookup(key) {
        Ok(v) => v,
        Err(DictError::Retry { table, reason }) => {
            fatal(format!("table {table}: query error: {reason}"))
        }
        Err(DictError::Config(text)) => fatal(text),
    }
}

pub fn main() -> i32 {
    crate::msg::init("postmap");
    let o = parse_args().unwrap_or_else(|e| crate::msg::usage(e, USAGE));
    let cf = Config::load(o.dir.as_deref()).unwrap_or_else(|e| fatal(e));
    let default_type = cf
        .string("default_database_type")
        .unwrap_or_else(|e| fatal(e));
    if o.files.is_empty() {
        crate::msg::usage("missing file name", USAGE);
    }
    let open_opts = OpenOptions {
        fold: !o.no_fold,
        nul: o.nul.unwrap_or(NulMode::Auto),
    };
    let tables: Vec<(String, String)> = o
        .files
        .iter()
        .map(|f| with_type(f, &default_type))
        .collect();
    if let Some(key) = &o.query {
        return query(&o, key, &tables, &open_opts);
    }
    if !o.delete.is_empty() {
        return delete(&o, &tables);
    }
    if o.dump {
        for (kind, name) in &tables {
            let d = open_or_die(kind, name, &open_opts);
            match d.sequence() {
                Ok(entries) => {
                    let mut out = std::io::stdout().lock();
                    for (k, v) in entries {
                        let _ = writeln!(out, "{k}\t{v}");
                    }
                }
                Err(DictError::Config(text)) => fatal(text),
                Err(e) => fatal(e),
            }
        }
        return 0;
    }
    let build = BuildOptions {
        nul: open_opts.nul,
        fold: !o.no_fold,
        duplicates: o.duplicates.unwrap_or(Duplicates::Warn),
    };
    for (kind, name) in &tables {
        if o.incremental {
            incremental(kind, name, &build);
        } else {
            build_table(kind, name, &build);
        }
    }
    0
}

fn build_table(kind: &str, name: &str, opts: &BuildOptions) {
    let text = std::fs::read(name)
        .unwrap_or_else(|e| fatal(format!("open {name}: {}", rostfix_config::io_text(&e))));
    let src = rostfix_maps::source::parse_table(name, &String::from_utf8_lossy(&text));
    for w in &src.warnings {
        warning(w);
    }
    let mut writer = TableWriter::new(kind, name, opts.nul).unwrap_or_else(|e| fatal(e));
    for w in writer.add_entries(name, src.entries, opts) {
        warning(&w);
    }
    if let Err(e) = writer.commit(Some(std::path::Path::new(name))) {
        fatal(e);
    }
}

fn incremental(kind: &str, name: &str, opts: &BuildOptions) {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        fatal(format!("read standard input: {e}"));
    }
    let src = rostfix_maps::source::parse_table("-", &text);
    for w in &src.warnings {
        warning(w);
    }
    let adds: Vec<(String, String)> = src
        .entries
        .into_iter()
        .map(|e| {
            let key = if opts.fold {
                e.key.to_ascii_lowercase()
            } else {
                e.key
            };
            (key, e.value)
        })
        .collect();
    if let Err(e) = update_in_place(kind, name, &adds, &[], opts.nul) {
        fatal(e);
    }
}

fn delete(o: &Opts, tables: &[(String, String)]) -> i32 {
    let mut keys: Vec<String> = Vec::new();
    for k in &o.delete {
        if k == "-" {
            keys.extend(
                std::io::stdin()
                    .lock()
                    .lines()
                    .map_while(Result::ok)
                    .map(|l| l.trim().to_string()),
            );
        } else {
            keys.push(k.clone());
        }
    }
    if !o.no_fold {
        for k in &mut keys {
            k.make_ascii_lowercase();
        }
    }
    let mut any = false;
    for (kind, name) in tables {
        match update_in_place(kind, name, &[], &keys, o.nul.unwrap_or(NulMode::Auto)) {
            Ok(found) => any |= found.iter().any(|f| *f),
            Err(e) => fatal(e),
        }
    }
    if any { 0 } else { 1 }
}

fn query(o: &Opts, key: &str, tables: &[(String, String)], opts: &OpenOptions) -> i32 {
    let dicts: Vec<Box<dyn Dict>> = tables
        .iter()
        .map(|(k, n)| open_or_die(k, n, opts))
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
    let mut out = std::io::stdout().lock();
    let mut found = false;
    if o.header || o.body {
        let mut text = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut text);
        for line in message_lines(&String::from_utf8_lossy(&text), o.header, o.body) {
            if let Some(v) = find(&line) {
                found = true;
                let _ = writeln!(out, "{line}\t{v}");
            }
        }
    } else {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let k = line.trim();
            if k.is_empty() {
                continue;
            }
            if let Some(v) = find(k) {
                found = true;
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
    }
    if found { 0 } else { 1 }
}

/// The logical header lines (continuations joined with their newlines)
/// and/or the body lines of a message.
fn message_lines(text: &str, header: bool, body: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut lines = text.lines();
    let mut headers: Vec<String> = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        match headers.last_mut() {
            Some(h) if line.starts_with([' ', '\t']) => {
                h.push('\n');
                h.push_str(line);
            }
            _ => headers.push(line.to_string()),
        }
    }
    if header {
        out.extend(headers);
    }
    if body {
        out.extend(lines.map(str::to_string));
    }
    out
}

//! postmap(1): build lookup tables from text files, query, list and edit
//! them.
//!
//! `postmap [-bfFhimMnNoprsuUvw] [-c dir] [-d key] [-q key] [type:]file...`.
//! Without `-q`, `-d` or `-s` each file is (re)built; `-i` adds standard
//! input's entries to the first table instead. `-q key` searches the tables
//! in order; `-q -` reads keys from standard input and prints
//! `key<TAB>value` for each hit; with `-h` or `-b` it reads a message and
//! queries its header or body lines, as header_checks and body_checks see
//! them. `-d` deletes from every table, `-s` lists the first. Exit status:
//! 0 when a query or delete found something, 1 otherwise.

use std::io::{BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_maps::build::{BuildOptions, TableWriter, update_in_place};
use rostfix_maps::source::Reader;
use rostfix_maps::{Dict, DictError, Duplicates, NulMode, OpenOptions};

use crate::msg::{Getopt, fatal, usage_exit, warning};

const USAGE: &str = "[-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";
const OPTIONS: &str = "bc:d:fFhimMnNopq:rsuUvw";

/// What postmap was asked to do.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Build,
    Query(Vec<u8>),
    Delete(Vec<String>),
    Dump,
}

/// Options shared by postmap and postalias.
#[derive(Debug)]
pub(crate) struct Opts {
    pub dir: Option<PathBuf>,
    action: Action,
    pub incremental: bool,
    pub header: bool,
    pub body: bool,
    pub mime: bool,
    pub open: OpenOptions,
    pub default_mode: bool,
    /// `-o`: keep root privileges instead of running as the source's owner.
    pub keep_root: bool,
    /// -u / -U, when given; otherwise smtputf8_enable decides.
    utf8_flag: Option<bool>,
    pub files: Vec<String>,
}

impl Opts {
    pub fn query_key(&self) -> Option<&[u8]> {
        match &self.action {
            Action::Query(k) => Some(k),
            _ => None,
        }
    }

    pub fn delete_keys(&self) -> Option<&[String]> {
        match &self.action {
            Action::Delete(k) => Some(k),
            _ => None,
        }
    }

    pub fn is_dump(&self) -> bool {
        self.action == Action::Dump
    }
}

/// Parses the command line the way Postfix's postmap/postalias do,
/// including the order-dependent conflict messages.
pub(crate) fn parse(options: &str, usage: &str) -> Opts {
    let g = Getopt::parse(std::env::args_os().skip(1), options, usage);
    let mut o = Opts {
        dir: None,
        action: Action::Build,
        incremental: false,
        header: false,
        body: false,
        mime: false,
        open: OpenOptions::default(),
        default_mode: false,
        keep_root: false,
        utf8_flag: None,
        files: Vec::new(),
    };
    let mut deletes = Vec::new();
    for (c, value) in g.options {
        let text = || crate::msg::option_text(&value);
        match c {
            'c' => o.dir = value.map(PathBuf::from),
            'd' => {
                if matches!(o.action, Action::Query(_) | Action::Dump) {
                    fatal("specify only one of -s -q or -d");
                }
                deletes.push(text());
                o.action = Action::Delete(deletes.clone());
            }
            'q' => {
                if matches!(o.action, Action::Delete(_) | Action::Dump) {
                    fatal("specify only one of -s -q or -d");
                }
                o.action = Action::Query(value.map(|v| v.as_bytes().to_vec()).unwrap_or_default());
            }
            's' => {
                if matches!(o.action, Action::Delete(_) | Action::Query(_)) {
                    fatal("specify only one of -s or -q or -d");
                }
                o.action = Action::Dump;
            }
            'i' => o.incremental = true,
            'f' => o.open.fold = false,
            'h' => o.header = true,
            'b' => o.body = true,
            'm' => o.mime = true,
            'N' => o.open.nul = NulMode::With,
            'n' => o.open.nul = NulMode::Without,
            'r' => o.open.duplicates = Duplicates::Replace,
            'w' => o.open.duplicates = Duplicates::Ignore,
            'p' => o.default_mode = true,
            'o' => o.keep_root = true,
            'u' => o.utf8_flag = Some(false),
            'U' => o.utf8_flag = Some(true),
            _ => {}
        }
    }
    if (o.header || o.body || o.mime) && o.action != Action::Query(b"-".to_vec()) {
        fatal("specify -b -h or -m only with \"-q -\"");
    }
    o.files = g
        .operands
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    if o.files.is_empty() {
        usage_exit(usage);
    }
    o
}

/// Loads main.cf and settles what depends on it: each table operand as
/// `(type, name)` with default_database_type filled in and, unless -u/-U
/// said otherwise, Unicode folding from smtputf8_enable.
pub(crate) fn configure(o: &mut Opts) -> (Config, Vec<(String, String)>) {
    let cf = Config::load(o.dir.as_deref()).unwrap_or_else(|e| fatal(e));
    // -U cannot turn on what smtputf8_enable leaves off; -u turns it off.
    o.open.utf8 = o.utf8_flag != Some(false) && cf.bool("smtputf8_enable").unwrap_or(false);
    let default_type = cf
        .string("default_database_type")
        .unwrap_or_else(|e| fatal(e));
    let tables = o
        .files
        .iter()
        .map(|f| with_type(f, &default_type))
        .collect();
    (cf, tables)
}

/// `type:name` with the configured default type filled in.
pub(crate) fn with_type(arg: &str, default_type: &str) -> (String, String) {
    match arg.split_once(':') {
        Some((t, n)) if !t.contains('/') => (t.to_string(), n.to_string()),
        _ => (default_type.to_string(), arg.to_string()),
    }
}

pub(crate) fn die(e: DictError) -> ! {
    match e {
        DictError::Retry { reason, .. } => fatal(reason),
        DictError::Config(text) => fatal(text),
    }
}

pub(crate) fn open_or_die(kind: &str, name: &str, opts: &OpenOptions) -> Box<dyn Dict> {
    rostfix_maps::open(&format!("{kind}:{name}"), opts).unwrap_or_else(|e| die(e))
}

/// A lookup as postmap -q reports it: query errors are fatal, and an empty
/// result gets Postfix's two warnings (tables must answer "not found"
/// rather than an empty string).
pub(crate) fn lookup_or_die(d: &dyn Dict, key: &str) -> Option<String> {
    match d.lookup(key) {
        Ok(Some(v)) => {
            if v.is_empty() {
                warning(&format!(
                    "table {}: key {key}: empty string result is not allowed",
                    d.name()
                ));
                warning(&format!(
                    "table {} should return NO RESULT in case of NOT FOUND",
                    d.name()
                ));
            }
            Some(v)
        }
        Ok(None) => None,
        Err(DictError::Retry { table, reason }) => {
            fatal(format!("table {table}: query error: {reason}"))
        }
        Err(DictError::Config(text)) => fatal(text),
    }
}

/// Prints every entry of the table, or dies as Postfix does.
pub(crate) fn dump(d: &dyn Dict, separator: &str) {
    match d.sequence() {
        Ok(entries) => {
            let mut out = std::io::stdout().lock();
            for (k, v) in entries {
                let _ = writeln!(out, "{k}{separator}{v}");
            }
        }
        Err(DictError::Retry { table, reason }) => {
            fatal(format!("table {table}: sequence error: {reason}"))
        }
        Err(DictError::Config(text)) => fatal(text),
    }
}

/// Deletes `keys` from every table; exit status 0 when any was found.
pub(crate) fn delete(o: &Opts, keys: &[String], tables: &[(String, String)]) -> i32 {
    let mut expanded: Vec<String> = Vec::new();
    for k in keys {
        if k == "-" {
            expanded.extend(
                std::io::stdin()
                    .lock()
                    .lines()
                    .map_while(Result::ok)
                    .map(|l| l.trim().to_string()),
            );
        } else {
            expanded.push(k.clone());
        }
    }
    if o.open.fold {
        for k in &mut expanded {
            *k = rostfix_maps::fold(k, o.open.utf8).into_owned();
        }
    }
    let mut any = false;
    for (kind, name) in tables {
        match update_in_place(kind, name, &[], &expanded, o.open.nul, o.open.duplicates) {
            Ok((_, found)) => any |= found.iter().any(|f| *f),
            Err(e) => die(e),
        }
    }
    if any { 0 } else { 1 }
}

pub fn main() -> i32 {
    crate::msg::init("postmap");
    let mut o = parse(OPTIONS, USAGE);
    let (_, tables) = configure(&mut o);
    match &o.action {
        Action::Query(key) => query(&o, key, &tables, "\t"),
        Action::Delete(keys) => delete(&o, keys, &tables),
        Action::Dump => {
            // Postfix lists the first table only.
            let (kind, name) = &tables[0];
            dump(open_or_die(kind, name, &o.open).as_ref(), "\t");
            0
        }
        Action::Build if o.incremental => {
            let (kind, name) = &tables[0];
            incremental(kind, name, &o, |bytes| {
                rostfix_maps::source::parse_table("stdin", bytes, o.open.utf8, Reader::Postmap)
            });
            0
        }
        Action::Build => {
            for (kind, name) in &tables {
                build_table(kind, name, &o);
            }
            0
        }
    }
}

fn build_options(o: &Opts) -> BuildOptions {
    BuildOptions {
        nul: o.open.nul,
        fold: o.open.fold,
        utf8: o.open.utf8,
        duplicates: o.open.duplicates,
        default_mode: o.default_mode,
    }
}

/// Run as the owner of `source` when started as root (unless -o), so that
/// a table is written with the rights of whoever owns its source, as
/// Postfix's postmap and postalias do.
pub(crate) fn drop_to_owner(source: &str, keep_root: bool) {
    use nix::unistd::{Gid, Uid, geteuid, setgid, setgroups, setuid};
    use std::os::unix::fs::MetadataExt;
    if keep_root || !geteuid().is_root() {
        return;
    }
    let Ok(meta) = std::fs::metadata(source) else {
        return;
    };
    if meta.uid() == 0 {
        return;
    }
    let (uid, gid) = (Uid::from_raw(meta.uid()), Gid::from_raw(meta.gid()));
    if let Err(e) = setgroups(&[gid])
        .and_then(|_| setgid(gid))
        .and_then(|_| setuid(uid))
    {
        fatal(format!("change to the owner of {source}: {e}"));
    }
}

fn build_table(kind: &str, name: &str, o: &Opts) {
    drop_to_owner(name, o.keep_root);
    // Postfix reads the source before it looks at the table type.
    let bytes = std::fs::read(name)
        .unwrap_or_else(|e| fatal(format!("open {name}: {}", rostfix_config::io_text(&e))));
    let mut writer = TableWriter::new(kind, name, o.open.nul).unwrap_or_else(|e| die(e));
    let opts = build_options(o);
    let src = rostfix_maps::source::parse_table(name, &bytes, opts.utf8, Reader::Postmap);
    for w in writer.add_source(src, &opts) {
        warning(&w);
    }
    if let Err(e) = writer.commit(Some(Path::new(name)), opts.default_mode) {
        die(e);
    }
}

/// `-i`: adds what standard input holds, parsed by `parse`, to the table.
pub(crate) fn incremental(
    kind: &str,
    name: &str,
    o: &Opts,
    parse: impl FnOnce(&[u8]) -> rostfix_maps::source::Source,
) {
    // Refuse before reading input, as Postfix does.
    if let Err(e) = TableWriter::new(kind, name, o.open.nul) {
        die(e);
    }
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        fatal(format!("read standard input: {e}"));
    }
    add_in_place(kind, name, o, parse(&bytes));
}

/// Adds parsed entries to an existing table under the duplicate rules,
/// printing the warnings in input order.
pub(crate) fn add_in_place(kind: &str, name: &str, o: &Opts, src: rostfix_maps::source::Source) {
    let adds: Vec<(String, String)> = src
        .entries
        .iter()
        .map(|e| {
            let key = if o.open.fold {
                rostfix_maps::fold(&e.key, o.open.utf8).into_owned()
            } else {
                e.key.to_string()
            };
            (key, e.value.to_string())
        })
        .collect();
    let (dups, _) = update_in_place(kind, name, &adds, &[], o.open.nul, o.open.duplicates)
        .unwrap_or_else(|e| die(e));
    let mut warnings = src.warnings;
    for (i, w) in dups {
        warnings.push((src.entries[i].line, w));
    }
    warnings.sort_by_key(|(line, _)| *line);
    for (_, w) in warnings {
        warning(&w);
    }
}

/// `-q KEY` or `-q -` over `tables`; `separator` goes between key and value
/// in `-q -` output (postalias prints `key:<TAB>value`).
pub(crate) fn query(o: &Opts, key: &[u8], tables: &[(String, String)], separator: &str) -> i32 {
    let dicts: Vec<Box<dyn Dict>> = tables
        .iter()
        .map(|(k, n)| open_or_die(k, n, &o.open))
        .collect();
    let find = |key: &str| dicts.iter().find_map(|d| lookup_or_die(d.as_ref(), key));
    if key != b"-" {
        let Ok(key) = std::str::from_utf8(key) else {
            warning(&format!(
                "{}: non-UTF-8 key \"{}\": malformed UTF-8 or invalid codepoint",
                dicts[0].name(),
                rostfix_maps::source::printable(key)
            ));
            return 1;
        };
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
        for line in message_lines(&String::from_utf8_lossy(&text), o.header, o.body, o.mime) {
            if let Some(v) = find(&line) {
                found = true;
                let _ = writeln!(out, "{line}{separator}{v}");
            }
        }
    } else {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let k = line.trim();
            if let Some(v) = find(k) {
                found = true;
                let _ = writeln!(out, "{k}{separator}{v}");
            }
        }
    }
    if found { 0 } else { 1 }
}

/// The lines header_checks (`header`) and body_checks (`body`) would see:
/// logical header lines (continuations joined with their newlines) and body
/// lines. With `mime`, MIME part headers and the headers of attached
/// messages (message/rfc822) count as headers too.
fn message_lines(text: &str, header: bool, body: bool, mime: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut boundaries: Vec<String> = Vec::new();
    let mut in_headers = true;
    let mut block: Vec<String> = Vec::new();
    let end_headers =
        |block: &mut Vec<String>, out: &mut Vec<String>, boundaries: &mut Vec<String>| -> bool {
            let mut nested = false;
            for h in block.drain(..) {
                if mime {
                    if let Some(b) = boundary_of(&h) {
                        boundaries.push(b);
                    }
                    let lower = h.to_ascii_lowercase();
                    nested |=
                        lower.starts_with("content-type:") && lower.contains("message/rfc822");
                }
                if header {
                    out.push(h);
                }
            }
            nested
        };
    for line in text.lines() {
        if in_headers {
            if line.is_empty() {
                in_headers = end_headers(&mut block, &mut out, &mut boundaries);
            } else if line.starts_with([' ', '\t']) && !block.is_empty() {
                if let Some(h) = block.last_mut() {
                    h.push('\n');
                    h.push_str(line);
                }
            } else {
                block.push(line.to_string());
            }
            continue;
        }
        if mime && let Some(rest) = line.strip_prefix("--") {
            if boundaries.iter().any(|b| rest == b) {
                in_headers = true;
                continue;
            }
            if boundaries
                .iter()
                .any(|b| rest.strip_suffix("--") == Some(b.as_str()))
            {
                continue;
            }
        }
        if body {
            out.push(line.to_string());
        }
    }
    end_headers(&mut block, &mut out, &mut boundaries);
    out
}

/// The `boundary=` parameter of a multipart Content-Type header.
fn boundary_of(header: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    if !lower.starts_with("content-type:") || !lower.contains("multipart/") {
        return None;
    }
    let at = lower.find("boundary=")? + "boundary=".len();
    let rest = &header[at..];
    let value = match rest.strip_prefix('"') {
        Some(q) => q.split('"').next()?,
        None => rest.split([';', ' ', '\t', '\n']).next()?,
    };
    Some(value.to_string())
}

//! postalias(1): build, query and edit alias tables (aliases(5) format).
//!
//! Like postmap, but the input is `name: value, value...`, `-q -` and `-s`
//! print `name: value`, and every built table also gets the entries
//! Sendmail-era tools expect: `@` → `@` and the NIS bookkeeping keys
//! `YP_LAST_MODIFIED` and `YP_MASTER_NAME` (stored without NUL, as Postfix
//! stores them).

use std::path::Path;

use rostfix_maps::build::{BuildOptions, TableWriter};

use crate::msg::{fatal, warning};
use crate::postmap::{configure, delete, die, dump, open_or_die, parse};

const USAGE: &str = "[-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...";
const OPTIONS: &str = "Nc:d:finopq:rsuUvw";

pub fn main() -> i32 {
    crate::msg::init("postalias");
    let mut o = parse(OPTIONS, USAGE);
    let (cf, tables) = configure(&mut o);
    if let Some(key) = o.query_key() {
        return crate::postmap::query(&o, key, &tables, ":\t");
    }
    if let Some(keys) = o.delete_keys() {
        return delete(&o, keys, &tables);
    }
    if o.is_dump() {
        let (kind, name) = &tables[0];
        dump(open_or_die(kind, name, &o.open).as_ref(), ":\t");
        return 0;
    }
    if o.incremental {
        let (kind, name) = &tables[0];
        crate::postmap::incremental(kind, name, &o, |bytes| {
            rostfix_maps::source::parse_aliases("stdin", bytes)
        });
        return 0;
    }
    let myhostname = cf.string("myhostname").unwrap_or_else(|e| fatal(e));
    let opts = BuildOptions {
        nul: o.open.nul,
        fold: o.open.fold,
        utf8: o.open.utf8,
        duplicates: o.open.duplicates,
        default_mode: o.default_mode,
    };
    for (kind, name) in &tables {
        crate::postmap::drop_to_owner(name, o.keep_root);
        build_aliases(kind, name, &opts, &myhostname);
    }
    0
}

/// Builds one alias table from its source file `name`.
pub(crate) fn build_aliases(kind: &str, name: &str, opts: &BuildOptions, myhostname: &str) {
    let mut writer = TableWriter::new(kind, name, opts.nul).unwrap_or_else(|e| die(e));
    let bytes = std::fs::read(name)
        .unwrap_or_else(|e| fatal(format!("open {name}: {}", rostfix_config::io_text(&e))));
    let src = rostfix_maps::source::parse_aliases(name, &bytes);
    for w in writer.add_source(src, opts) {
        warning(&w);
    }
    writer.put("@", "@");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writer.add_raw(b"YP_LAST_MODIFIED", now.to_string().as_bytes());
    writer.add_raw(b"YP_MASTER_NAME", myhostname.as_bytes());
    if let Err(e) = writer.commit(Some(Path::new(name)), opts.default_mode) {
        die(e);
    }
}

//! postconf(1): print and edit main.cf and master.cf.
//!
//! Parameter modes: all parameters (default), `-d` defaults, `-n` settings
//! in main.cf, `-h` values only, `-H` names only, `-x` expanded, `-f`
//! folded at 80 columns, `-o name=value` overrides, `-e` (or a bare
//! `name=value`) edits, `-X` removes, `-#` comments out. master.cf modes:
//! `-M` entries, `-F` fields, `-P` per-service parameters, each with
//! `-e`, `-X` and `-#`. Also `-m` (table types), `-a`/`-A` (SASL server
//! and client types), `-l` (lock methods).

use std::path::PathBuf;

use rostfix_config::{Config, Defaults, MainCf, Service};

use crate::msg::{Getopt, fatal, warning};

const USAGE: &str = "[-aAbdefFhHlmMnPtTvxX#] [-c config_dir] [-o name=value] [name ...]";
const LINE_LIMIT: usize = 80;

#[derive(Debug, Default)]
struct Opts {
    dir: Option<PathBuf>,
    defaults: bool,
    non_default: bool,
    value_only: bool,
    name_only: bool,
    expand: bool,
    fold: bool,
    edit: bool,
    remove: bool,
    comment: bool,
    master: bool,
    fields: bool,
    service_params: bool,
    maps: bool,
    sasl_server: bool,
    sasl_client: bool,
    locks: bool,
    overrides: Vec<(String, String)>,
    args: Vec<String>,
}

fn parse_args() -> Opts {
    let g = Getopt::parse(
        std::env::args_os().skip(1),
        "aAbBc:C:dDeEfFhHlmMno:pPtTvxX#",
        USAGE,
    );
    let mut o = Opts::default();
    for (c, value) in g.options {
        match c {
            'c' => o.dir = value.map(PathBuf::from),
            'o' => {
                let v = value
                    .map(|v| v.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match v.split_once('=') {
                    Some((n, val)) => o
                        .overrides
                        .push((n.trim().to_string(), val.trim().to_string())),
                    None => fatal(format!("-o option requires \"name=value\"; got \"{v}\"")),
                }
            }
            'd' => o.defaults = true,
            'n' => o.non_default = true,
            'h' => o.value_only = true,
            'H' => o.name_only = true,
            'x' => o.expand = true,
            'f' => o.fold = true,
            'e' => o.edit = true,
            'X' => o.remove = true,
            '#' => o.comment = true,
            'M' => o.master = true,
            'F' => o.fields = true,
            'P' => o.service_params = true,
            'm' => o.maps = true,
            'a' => o.sasl_server = true,
            'A' => o.sasl_client = true,
            'l' => o.locks = true,
            _ => {}
        }
    }
    o.args = g
        .operands
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    o
}

pub fn main() -> i32 {
    crate::msg::init("postconf");
    let o = parse_args();
    if o.maps {
        for t in rostfix_maps::TYPES {
            println!("{t}");
        }
        return 0;
    }
    if o.sasl_server {
        for t in ["cyrus", "dovecot", "rostfix"] {
            println!("{t}");
        }
        return 0;
    }
    if o.sasl_client {
        println!("cyrus");
        return 0;
    }
    if o.locks {
        for t in ["flock", "fcntl", "dotlock"] {
            println!("{t}");
        }
        return 0;
    }
    if o.master || o.fields || o.service_params {
        return master_mode(&o);
    }
    let edits_by_value = !o.args.is_empty() && o.args.iter().all(|a| a.contains('='));
    if o.edit || o.remove || o.comment || (edits_by_value && !o.defaults) {
        return edit_main(&o);
    }
    print_parameters(&o)
}

fn load(o: &Opts) -> Config {
    let mut cf = Config::load(o.dir.as_deref()).unwrap_or_else(|e| fatal(e));
    if !o.overrides.is_empty() {
        cf.main.set(&o.overrides);
    }
    for w in &cf.warnings {
        warning(w);
    }
    cf
}

fn warn_unused(cf: &Config) {
    for e in cf.unused_main_parameters() {
        warning(&format!(
            "{}: unused parameter: {}={}",
            cf.main.path.display(),
            e.name,
            e.value
        ));
    }
    if let Some(master) = &cf.master {
        for (s, n, v) in cf.unused_master_parameters() {
            warning(&format!(
                "{}: unused parameter: {}/{}={}={}",
                master.path.display(),
                s.name,
                s.kind.as_str(),
                n,
                v
            ));
        }
    }
}

fn print_parameters(o: &Opts) -> i32 {
    let cf = load(o);
    let which = if o.defaults {
        Defaults::BuiltIn
    } else {
        Defaults::Effective
    };
    if !o.defaults {
        warn_unused(&cf);
    }
    let names: Vec<String> = if !o.args.is_empty() {
        o.args.clone()
    } else if o.non_default {
        let mut names: Vec<String> = cf
            .main
            .effective()
            .iter()
            .filter(|e| cf.all_names(Defaults::Effective).contains(&e.name))
            .map(|e| e.name.clone())
            .collect();
        if cf.explicit_directory && !names.iter().any(|n| n == "config_directory") {
            names.push("config_directory".to_string());
        }
        names.sort();
        names
    } else {
        cf.all_names(which).into_iter().collect()
    };
    let mut out = String::new();
    for name in &names {
        let raw = if o.defaults {
            cf.default_value(name, Defaults::BuiltIn)
                .map(|v| v.into_owned())
        } else if o.non_default && o.args.is_empty() {
            cf.raw(name).map(|v| v.into_owned())
        } else {
            let known = cf.all_names(Defaults::Effective).contains(name);
            if known {
                cf.raw(name).map(|v| v.into_owned())
            } else {
                None
            }
        };
        let Some(raw) = raw else {
            warning(&format!("{name}: unknown parameter"));
            continue;
        };
        let value = if o.expand {
            let expanded = if o.defaults {
                cf.expanded_default(name).ok_or(())
            } else {
                cf.expand_text(&raw).map_err(|_| ())
            };
            expanded.unwrap_or(raw)
        } else {
            raw
        };
        if o.name_only {
            out.push_str(name);
            out.push('\n');
        } else if o.value_only {
            out.push_str(&fold_words(&value, "", o.fold));
            out.push('\n');
        } else {
            out.push_str(&fold_words(&value, &format!("{name} ="), o.fold));
            out.push('\n');
        }
    }
    print!("{out}");
    0
}

/// `head` followed by the words of `value` separated by single spaces;
/// with `fold`, lines break before a word that would pass column 80 and
/// continue indented by four spaces.
fn fold_words(value: &str, head: &str, fold: bool) -> String {
    let mut out = String::new();
    let mut line = head.to_string();
    for word in value.split_whitespace() {
        let at_start = line.is_empty() || line.trim().is_empty();
        if fold && !at_start && line.len() + 1 + word.len() > LINE_LIMIT {
            out.push_str(&line);
            out.push('\n');
            line = format!("    {word}");
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    out.push_str(&line);
    out
}

fn edit_main(o: &Opts) -> i32 {
    let (dir, _) = Config::directory(o.dir.as_deref());
    let path = dir.join("main.cf");
    let mut main = MainCf::read(&path).unwrap_or_else(|e| fatal(e));
    if o.remove {
        main.remove(&o.args);
    } else if o.comment {
        main.comment_out(&o.args);
    } else {
        let mut edits = Vec::new();
        for a in &o.args {
            match rostfix_config::main_cf::split_nameval(a) {
                Ok((n, v)) => edits.push((n.to_string(), v.to_string())),
                Err(why) => fatal(format!("{why}: \"{a}\"")),
            }
        }
        main.set(&edits);
    }
    if let Err(e) = main.write() {
        fatal(format!(
            "write {}: {}",
            path.display(),
            rostfix_config::io_text(&e)
        ));
    }
    0
}

/// Does `request` (`service`, `service/type`, with `-F`/`-P` also
/// `service/type/name`) select `s`? Returns the third part if any.
fn matches<'a>(request: &'a str, s: &Service) -> Option<Option<&'a str>> {
    let mut parts = request.splitn(3, '/');
    let name = parts.next()?;
    if !name.is_empty() && name != s.name {
        return None;
    }
    if let Some(kind) = parts.next()
        && !kind.is_empty()
        && kind != s.kind.as_str()
    {
        return None;
    }
    Some(parts.next())
}

fn master_mode(o: &Opts) -> i32 {
    if o.edit || o.remove || o.comment {
        return edit_master(o);
    }
    let cf = load(o);
    let Some(master) = &cf.master else {
        return 0;
    };
    let requests: Vec<&str> = o.args.iter().map(String::as_str).collect();
    let mut matched = vec![false; requests.len()];
    let mut out = String::new();
    for s in &master.services {
        let selected: Vec<(usize, Option<&str>)> = requests
            .iter()
            .enumerate()
            .filter_map(|(i, r)| matches(r, s).map(|third| (i, third)))
            .collect();
        if !requests.is_empty() && selected.is_empty() {
            continue;
        }
        if o.master {
            for (i, _) in &selected {
                matched[*i] = true;
            }
            out.push_str(&master_entry(s, o.fold));
        } else if o.fields {
            let values = field_values(s);
            for (field, value) in rostfix_config::master_cf::FIELDS.iter().zip(values) {
                let wanted = requests.is_empty()
                    || selected
                        .iter()
                        .any(|(_, third)| third.is_none_or(|t| t == *field));
                if wanted {
                    for (i, third) in &selected {
                        if third.is_none_or(|t| t == *field) {
                            matched[*i] = true;
                        }
                    }
                    let head = format!("{}/{}/{field} =", s.name, s.kind.as_str());
                    out.push_str(&fold_words(&value, &head, o.fold));
                    out.push('\n');
                }
            }
        } else {
            let mut params = s.options();
            params.sort_by(|a, b| a.0.cmp(&b.0));
            for (n, v) in params {
                let wanted = requests.is_empty()
                    || selected
                        .iter()
                        .any(|(_, third)| third.is_none_or(|t| t == n));
                if wanted {
                    for (i, third) in &selected {
                        if third.is_none_or(|t| t == n) {
                            matched[*i] = true;
                        }
                    }
                    let head = format!("{}/{}/{n} =", s.name, s.kind.as_str());
                    out.push_str(&fold_words(&v, &head, o.fold));
                    out.push('\n');
                }
            }
        }
    }
    print!("{out}");
    for (r, m) in requests.iter().zip(matched) {
        if !m {
            warning(&format!("unmatched request: \"{r}\""));
        }
    }
    0
}

fn field_values(s: &Service) -> [String; 8] {
    [
        s.name.clone(),
        s.kind.as_str().to_string(),
        s.private.clone(),
        s.unpriv.clone(),
        s.chroot.clone(),
        s.wakeup.clone(),
        s.maxproc.clone(),
        s.command_line(),
    ]
}

/// One master.cf entry in postconf -M's column layout.
fn master_entry(s: &Service, fold: bool) -> String {
    let mut line = format!(
        "{:<10} {:<5} {:<7} {:<7} {:<7} {:<7} {:<7} {}",
        s.name,
        s.kind.as_str(),
        s.private,
        s.unpriv,
        s.chroot,
        s.wakeup,
        s.maxproc,
        s.command
    );
    let mut out = String::new();
    let mut args = s.args.iter().peekable();
    while let Some(a) = args.next() {
        let word = if a == "-o" {
            match args.next() {
                Some(v) => format!("-o {}", rostfix_config::master_cf::quote_arg(v)),
                None => "-o".to_string(),
            }
        } else {
            rostfix_config::master_cf::quote_arg(a)
        };
        let new_line =
            fold && (word.starts_with("-o ") || line.len() + 1 + word.len() > LINE_LIMIT);
        if new_line {
            out.push_str(&line);
            out.push('\n');
            line = format!("    {word}");
        } else {
            line.push(' ');
            line.push_str(&word);
        }
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `-Me`, `-MX`, `-M#`, `-Fe`, `-Pe`, `-PX`: edit master.cf in place.
fn edit_master(o: &Opts) -> i32 {
    let (dir, _) = Config::directory(o.dir.as_deref());
    let path = dir.join("master.cf");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        fatal(format!(
            "open {}: {}",
            path.display(),
            rostfix_config::io_text(&e)
        ))
    });
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for request in &o.args {
        let master =
            rostfix_config::MasterCf::parse(&path, &lines.join("\n")).unwrap_or_else(|e| fatal(e));
        let (target, value) = match request.split_once('=') {
            Some((t, v)) => (t.trim(), Some(v.trim())),
            None => (request.as_str(), None),
        };
        let Some(s) = master
            .services
            .iter()
            .find(|s| matches(target, s).is_some())
        else {
            match value {
                Some(v) if o.master && o.edit => lines.push(v.to_string()),
                _ => warning(&format!("unmatched request: \"{target}\"")),
            }
            continue;
        };
        let third = target.splitn(3, '/').nth(2).unwrap_or("");
        let new: Vec<String> = if o.master {
            if o.remove {
                Vec::new()
            } else if o.comment {
                lines[s.line - 1..s.end]
                    .iter()
                    .map(|l| format!("#{l}"))
                    .collect()
            } else {
                let v = value.unwrap_or_else(|| fatal(format!("missing '=' in \"{request}\"")));
                vec![v.to_string()]
            }
        } else if o.fields {
            let v = value.unwrap_or_else(|| fatal(format!("missing '=' in \"{request}\"")));
            let mut values = field_values(s);
            match rostfix_config::master_cf::FIELDS
                .iter()
                .position(|f| *f == third)
            {
                Some(i) => values[i] = v.to_string(),
                None => fatal(format!("invalid field name: \"{third}\"")),
            }
            vec![values.join(" ")]
        } else {
            let setting = value.filter(|_| !o.remove).map(|v| format!("{third}={v}"));
            let mut values = field_values(s);
            values[7] = command_with_option(s, third, setting.as_deref());
            vec![values.join(" ")]
        };
        lines.splice(s.line - 1..s.end, new);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let tmp = path.with_extension("cf.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
        fatal(format!(
            "write {}: {}",
            path.display(),
            rostfix_config::io_text(&e)
        ));
    }
    0
}

/// The command line of `s` with the `-o param=...` override replaced by
/// `setting` (removed when `None`; appended when absent).
fn command_with_option(s: &Service, param: &str, setting: Option<&str>) -> String {
    let quote = rostfix_config::master_cf::quote_arg;
    let mut words = vec![s.command.clone()];
    let mut placed = false;
    let mut it = s.args.iter();
    while let Some(a) = it.next() {
        if a == "-o"
            && let Some(current) = it.next()
        {
            let name = current.split_once('=').map_or(current.as_str(), |(n, _)| n);
            if name == param {
                if let Some(new) = setting {
                    words.extend(["-o".to_string(), quote(new)]);
                }
                placed = true;
            } else {
                words.extend(["-o".to_string(), quote(current)]);
            }
            continue;
        }
        words.push(quote(a));
    }
    if let (false, Some(new)) = (placed, setting) {
        words.extend(["-o".to_string(), quote(new)]);
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_breaks_before_column_80() {
        let v = "$myhostname, localhost.$mydomain, localhost, aaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, cccc";
        assert_eq!(
            fold_words(v, "mydestination =", true),
            "mydestination = $myhostname, localhost.$mydomain, localhost,\n    aaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, cccc"
        );
        assert_eq!(fold_words("  foo   bar ", "x =", false), "x = foo bar");
        assert_eq!(fold_words("", "x =", false), "x =");
    }
}

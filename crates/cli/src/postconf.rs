//! postconf(1): print and edit main.cf and master.cf.
//!
//! Parameter modes: all parameters (default), `-d` defaults, `-n` settings
//! in main.cf, `-h` values only, `-H` names only, `-x` expanded, `-f`
//! folded at 80 columns, `-o name=value` overrides, `-C class` filters,
//! `-e` (or bare `name=value` operands) edits, `-X` removes, `-#` comments
//! out. master.cf modes: `-M` entries, `-F` fields, `-P` per-service
//! parameters, each with `-e`, `-X` and `-#`. Also `-m` (table types), `-a`
//! and `-A` (SASL server and client types), `-l` (lock methods).
//!
//! Output layout, checks and messages follow Postfix 3.7's postconf; the
//! golden transcripts under tests/golden/postconf pin them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rostfix_config::main_cf::{EditMode, edit_text, split_nameval};
use rostfix_config::master_cf::{EntryError, FIELDS, parse_entry, quote_arg};
use rostfix_config::{Config, Defaults, MasterCf, Service};

use crate::msg::{Getopt, fatal, warning};

const USAGE: &str = "[-a (server SASL types)] [-A (client SASL types)] [-b (bounce templates)] [-c config_dir] [-c param_class] [-d (parameter defaults)] [-e (edit configuration)] [-f (fold lines)] [-F (master.cf fields)] [-h (no names)] [-H (no values)] [-l (lock types)] [-m (map types)] [-M (master.cf)] [-n (non-default parameters)] [-o name=value (override parameter value)] [-p (main.cf, default)] [-P (master.cf parameters)] [-t (bounce templates)] [-T compile-version|run-version|public-key-algorithms] [-v (verbose)] [-x (expand parameter values)] [-X (exclude)] [-# (comment-out)] [name...]";

/// Lines fold before a word would reach this column.
const LINE_LIMIT: usize = 80;
const INDENT: &str = "    ";

/// Where master.cf columns start in `postconf -M` output.
const COLUMN_GOALS: [usize; 8] = [0, 11, 17, 25, 33, 41, 49, 57];

/// Daemon options that take a value (`-o name=value`).
const OPTIONS_WITH_VALUE: &[&str] = &["-o"];

/// Which kind of parameters `-C` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Builtin,
    Service,
    User,
}

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
    classes: Option<Vec<Class>>,
    overrides: Vec<(String, String)>,
    args: Vec<String>,
}

fn parse_args() -> Opts {
    let g = Getopt::parse(
        std::env::args_os().skip(1),
        "aAbBc:C:dDeEfFhHlmMno:pPtT:vxX#",
        USAGE,
    );
    let mut o = Opts::default();
    for (c, value) in g.options {
        let text = || crate::msg::option_text(&value);
        match c {
            'c' => o.dir = value.map(PathBuf::from),
            'C' => o.classes = Some(parse_classes(&text())),
            'o' => {
                let v = text();
                match split_nameval(&v) {
                    Ok((n, val)) => o.overrides.push((n.to_string(), val.to_string())),
                    Err(why) => fatal(format!("invalid parameter override: {v}: {why}")),
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
    check_conflicts(&o);
    o
}

fn parse_classes(text: &str) -> Vec<Class> {
    let mut out = Vec::new();
    for word in rostfix_config::value::split_list(text) {
        match word {
            "builtin" => out.push(Class::Builtin),
            "service" => out.push(Class::Service),
            "user" => out.push(Class::User),
            "all" => out.extend([Class::Builtin, Class::Service, Class::User]),
            _ => fatal(format!("unknown -C option value \"{word}\" in \"{text}\"")),
        }
    }
    out
}

/// The option combinations Postfix refuses, with its words.
fn check_conflicts(o: &Opts) {
    let pairs: [(bool, bool, &str); 12] = [
        (o.defaults, o.non_default, "specify one of -d -n"),
        (o.defaults, !o.overrides.is_empty(), "specify one of -d -o"),
        (o.sasl_server, o.maps, "specify one of -a -m"),
        (o.sasl_client, o.maps, "specify one of -A -m"),
        (o.sasl_server, o.sasl_client, "specify one of -a -A"),
        (o.master, o.service_params, "specify one of -M -P"),
        (o.master, o.fields, "specify one of -M -F"),
        (o.fields, o.service_params, "specify one of -F -P"),
        (o.edit, o.remove, "specify one of -e -X"),
        (o.edit, o.comment, "specify one of -e -#"),
        (o.remove, o.comment, "specify one of -X -#"),
        (o.edit, o.non_default, "specify one of -e -n"),
    ];
    for (a, b, message) in pairs {
        if a && b {
            fatal(message);
        }
    }
    if o.master && o.non_default {
        fatal("with option -M, do not specify -n");
    }
    if o.master && o.value_only {
        fatal("with option -M, do not specify -h");
    }
}

pub fn main() -> i32 {
    crate::msg::init("postconf");
    let mut o = parse_args();
    if o.maps {
        // Postfix reads (and checks) main.cf even to list table types.
        let cf = load(&o, false);
        check_main(&cf);
    }
    let list: Option<&[&str]> = if o.maps {
        Some(rostfix_maps::TYPES)
    } else if o.sasl_server {
        // The server types smtpd_sasl_type accepts (they arrive with the
        // submission issue; the list is what main.cf may name).
        Some(&["cyrus", "dovecot"])
    } else if o.sasl_client {
        Some(&["cyrus"])
    } else if o.locks {
        Some(&["flock", "fcntl", "dotlock"])
    } else {
        None
    };
    if let Some(items) = list {
        for t in items {
            println!("{t}");
        }
        return 0;
    }
    let master_mode = o.master || o.fields || o.service_params;
    // name=value operands are an edit even without -e.
    if !o.args.is_empty()
        && !o.defaults
        && !o.remove
        && !o.comment
        && o.args.iter().all(|a| a.contains('='))
    {
        o.edit = true;
    }
    if o.edit || o.remove || o.comment {
        return if master_mode {
            edit_master(&o)
        } else {
            edit_main(&o)
        };
    }
    if master_mode {
        return show_master(&o);
    }
    print_parameters(&o)
}

/// Loads the configuration the way postconf does: a missing main.cf reads
/// as empty, a missing master.cf is a warning (fatal in master.cf modes).
fn load(o: &Opts, need_master: bool) -> Config {
    // Defaults never read main.cf; master.cf work may do without one.
    let mut cf = if o.defaults {
        Config::load_defaults(o.dir.as_deref()).unwrap_or_else(|e| fatal(e))
    } else {
        Config::load_with(o.dir.as_deref(), need_master).unwrap_or_else(|e| fatal(e))
    };
    if need_master && cf.master.is_none() {
        let path = cf.config_directory.join("master.cf");
        if let Err(e) = MasterCf::read(&path) {
            fatal(e);
        }
    }
    if !o.overrides.is_empty() {
        cf.main.set(&o.overrides);
    }
    for w in &cf.warnings {
        if need_master && w.starts_with("open ") && w.contains("master.cf") {
            continue;
        }
        warning(w);
    }
    cf
}

/// What postconf checks in main.cf whenever it reads it: database table
/// files, `$name` expansion (loops and syntax errors are fatal), and
/// references to parameters that exist nowhere.
fn check_main(cf: &Config) {
    check_database_files(cf);
    check_expansions(cf);
    for name in cf.undefined_references() {
        warning(&format!(
            "{}: undefined parameter: {name}",
            cf.main.path.display()
        ));
    }
}

/// Warnings for database table configuration files that main.cf names, in
/// parameter order (postconf checks them on every run).
fn check_database_files(cf: &Config) {
    let mut params: Vec<&rostfix_config::main_cf::Entry> = cf
        .main
        .effective()
        .into_iter()
        .filter(|e| rostfix_config::param::spec(&e.name).is_some())
        .collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for e in params {
        for item in rostfix_config::value::split_list(&e.value) {
            let mut spec = item;
            while let Some(rest) = spec
                .strip_prefix("proxy:")
                .or_else(|| spec.strip_prefix("proxywrite:"))
            {
                spec = rest;
            }
            let Some((kind, name)) = spec.split_once(':') else {
                continue;
            };
            if !name.contains('/') || !seen.insert((kind.to_string(), name.to_string())) {
                continue;
            }
            for w in rostfix_config::dbms::check_file(kind, name) {
                warning(&w);
            }
        }
    }
}

/// Expands every main.cf value of a known parameter, as postconf does to
/// find the parameters they use; a loop or a syntax error is fatal.
fn check_expansions(cf: &Config) {
    // Postfix resolves these while it starts, so their failures are
    // reported by its configuration dictionary.
    const EARLY: &[&str] = &["myhostname", "mydomain"];
    for name in EARLY {
        if let Err(e) = cf.expanded(name) {
            expansion_fatal(e, true);
        }
    }
    for e in cf.main.effective() {
        if cf.is_known(&e.name)
            && !rostfix_config::param::is_raw(&e.name)
            && let Err(err) = cf.expand_text(&e.value)
        {
            expansion_fatal(err, false);
        }
    }
}

fn expansion_fatal(e: rostfix_config::ExpandError, early: bool) -> ! {
    // Postfix scans a value twice before it gives up on a syntax error,
    // and says so each time.
    if let rostfix_config::ExpandError::Nesting(_, partial) = &e
        && !partial.is_empty()
    {
        warning(&format!("unreasonable macro call nesting: \"{partial}\""));
    }
    let times = if e.is_syntax() { 2 } else { 1 };
    for _ in 0..times {
        warning(&e.to_string());
    }
    if early {
        fatal("dictionary mail_dict: macro processing error")
    }
    fatal("macro processing error")
}

/// "unused parameter" warnings: main.cf's only in parameter modes,
/// master.cf's always.
fn warn_unused(cf: &Config, main_too: bool) {
    if main_too {
        for e in cf.unused_main_parameters() {
            warning(&format!(
                "{}: unused parameter: {}={}",
                cf.main.path.display(),
                e.name,
                e.value
            ));
        }
    }
    if let Some(master) = &cf.master {
        for (_, n, v) in cf.unused_master_parameters() {
            warning(&format!(
                "{}: unused parameter: {n}={v}",
                master.path.display()
            ));
        }
    }
}

/// The class of a known parameter name.
fn class_of(cf: &Config, name: &str) -> Class {
    if cf.is_service_param(name) {
        Class::Service
    } else if cf.is_known(name) {
        Class::Builtin
    } else {
        Class::User
    }
}

fn print_parameters(o: &Opts) -> i32 {
    let cf = load(o, false);
    if !o.defaults {
        check_database_files(&cf);
        check_expansions(&cf);
        for name in cf.undefined_references() {
            warning(&format!(
                "{}: undefined parameter: {name}",
                cf.main.path.display()
            ));
        }
    }
    let which = if o.defaults {
        Defaults::BuiltIn
    } else {
        Defaults::Effective
    };
    let listed: BTreeSet<String> = cf.all_names(which);
    let in_main =
        |name: &str| cf.main.get(name).is_some() && (listed.contains(name) || cf.is_known(name));
    let names: Vec<String> = if !o.args.is_empty() {
        // -n with names shows only those that main.cf sets.
        o.args
            .iter()
            .filter(|n| !o.non_default || in_main(n) || !cf.is_known(n))
            .cloned()
            .collect()
    } else if o.non_default {
        cf.main
            .effective()
            .iter()
            .filter(|e| in_main(&e.name))
            .map(|e| e.name.clone())
            .collect()
    } else {
        listed.iter().cloned().collect()
    };
    let mut out = String::new();
    for name in &names {
        if o.args.is_empty()
            && let Some(classes) = &o.classes
            && !classes.contains(&class_of(&cf, name))
        {
            continue;
        }
        let raw = if o.defaults {
            cf.default_value(name, Defaults::BuiltIn)
                .map(|v| v.into_owned())
        } else if listed.contains(name) || cf.is_known(name) {
            cf.raw(name).map(|v| v.into_owned())
        } else {
            None
        };
        let Some(raw) = raw else {
            warning(&format!("{name}: unknown parameter"));
            continue;
        };
        let value = if !o.expand {
            raw
        } else if o.defaults {
            cf.expanded_default(name).unwrap_or(raw)
        } else {
            cf.expand_text(&raw)
                .unwrap_or_else(|e| expansion_fatal(e, false))
        };
        let line = if o.name_only {
            name.clone()
        } else if o.value_only {
            fold_words(&value, "", o.fold)
        } else {
            fold_words(&value, &format!("{name} ="), o.fold)
        };
        out.push_str(&line);
        out.push('\n');
    }
    print!("{out}");
    if !o.defaults {
        warn_unused(&cf, true);
    }
    0
}

/// `head` followed by the words of `value` separated by single spaces;
/// with `fold`, a line breaks before a word that would reach column 80
/// and goes on indented by four spaces.
fn fold_words(value: &str, head: &str, fold: bool) -> String {
    let mut out = String::new();
    let mut line = head.to_string();
    for word in value.split_ascii_whitespace() {
        let at_start = line.is_empty() || line.len() == INDENT.len() && line == INDENT;
        if fold && !at_start && line.len() + 1 + word.len() > LINE_LIMIT {
            out.push_str(&line);
            out.push('\n');
            line = format!("{INDENT}{word}");
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
    let mode = if o.remove {
        EditMode::Remove
    } else if o.comment {
        EditMode::CommentOut
    } else {
        EditMode::Set
    };
    if o.args.is_empty() {
        match mode {
            EditMode::Set => fatal("-e requires name=value argument"),
            _ => fatal("missing service argument"),
        }
    }
    if mode != EditMode::Set && o.args.iter().any(|a| a.contains('=')) {
        fatal(if o.remove {
            "specify one of -e -X"
        } else {
            "specify one of -e -#"
        });
    }
    let mut edits: Vec<(String, String)> = Vec::new();
    for a in &o.args {
        let t = a.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if t.starts_with('#') {
            fatal("-e, -X, or -# accepts no comment input");
        }
        let (name, value) = match mode {
            EditMode::Set => match split_nameval(t) {
                Ok((n, v)) => (n.to_string(), v.to_string()),
                Err(why) => fatal(format!("{why}: \"{a}\"")),
            },
            _ if t.contains('=') => fatal("-X or -# requires names without value"),
            _ => (
                t.trim_end_matches(|c: char| c.is_ascii_whitespace())
                    .to_string(),
                String::new(),
            ),
        };
        if let Some(i) = edits.iter().position(|(n, _)| *n == name) {
            let (n, v) = edits.remove(i);
            warning(&format!("ignoring earlier request: '{n} = {v}'"));
        }
        edits.push((name, value));
    }
    let (dir, _) = Config::directory(o.dir.as_deref());
    let path = dir.join("main.cf");
    let text = read_for_edit(&path);
    let display = path.display().to_string();
    let edited = edit_text(&text, mode, &edits, &mut |w| {
        warning(&format!("{display}: {w}"))
    });
    write_edited(&path, &edited);
    0
}

/// The file an edit starts from. As Postfix does, the temporary file is
/// made first, so a missing directory is reported against it.
fn read_for_edit(path: &std::path::Path) -> String {
    let tmp = tmp_path(path);
    if let Err(e) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
    {
        fatal(format!(
            "open {}: {}",
            tmp.display(),
            rostfix_config::io_text(&e)
        ));
    }
    match std::fs::read(path) {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            fatal(format!(
                "open {} for reading: {}",
                path.display(),
                rostfix_config::io_text(&e)
            ))
        }
    }
}

fn tmp_path(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Replaces the file: the temporary file is written, synced, and renamed.
fn write_edited(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let tmp = tmp_path(path);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| {
            if let Ok(meta) = std::fs::metadata(path) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        fatal(format!(
            "write {}: {}",
            path.display(),
            rostfix_config::io_text(&e)
        ));
    }
}

/// A `service[/type[/third]]` request. `*` matches anything.
#[derive(Debug)]
struct Pattern {
    parts: Vec<String>,
}

impl Pattern {
    /// Splits `text`; `None` unless it has between `min` and `max` parts.
    fn parse(text: &str, min: usize, max: usize) -> Option<Pattern> {
        let parts: Vec<String> = text.split('/').map(str::to_string).collect();
        (parts.len() >= min && parts.len() <= max && !parts[0].is_empty())
            .then_some(Pattern { parts })
    }

    fn matches(&self, s: &Service) -> bool {
        let ok = |i: usize, v: &str| self.parts.get(i).is_none_or(|p| p == "*" || p == v);
        ok(0, &s.name) && ok(1, s.kind.as_str())
    }

    fn third(&self) -> Option<&str> {
        self.parts.get(2).map(String::as_str)
    }
}

fn field_index(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| *f == name)
}

fn show_master(o: &Opts) -> i32 {
    let cf = load(o, true);
    check_main(&cf);
    let Some(master) = &cf.master else {
        return 0;
    };
    let (min, max, what) = if o.master {
        (1, 2, "-M option requires service_name[/type]")
    } else if o.fields {
        (1, 3, "-F option requires service_name[/type[/field]]")
    } else {
        (1, 3, "-P option requires service_name[/type[/parameter]]")
    };
    let requests: Vec<(String, Pattern)> = o
        .args
        .iter()
        .map(|a| {
            (
                a.clone(),
                Pattern::parse(a, min, max).unwrap_or_else(|| fatal(what)),
            )
        })
        .collect();
    if o.fields {
        for (_, p) in &requests {
            if let Some(f) = p.third()
                && f != "*"
                && field_index(f).is_none()
            {
                fatal(format!("invalid service attribute name: \"{f}\""));
            }
        }
    }
    let mut matched = vec![0usize; requests.len()];
    let mut out = String::new();
    for s in &master.services {
        let view = if o.service_params && o.expand {
            Some(service_view(&cf, s))
        } else {
            None
        };
        let show = |selector: Option<&str>, out: &mut String| -> bool {
            if o.master {
                out.push_str(&master_entry(s, o.fold));
                true
            } else if o.fields {
                let mut any = false;
                for (i, field) in FIELDS.iter().enumerate() {
                    if selector.is_none_or(|f| f == "*" || f == *field) {
                        out.push_str(&master_field(s, i, o.fold, o.value_only));
                        any = true;
                    }
                }
                any
            } else {
                // A name given twice shows once, with its last value.
                let mut params: Vec<(String, String)> = Vec::new();
                for (n, v) in s.options() {
                    params.retain(|(p, _)| *p != n);
                    params.push((n, v));
                }
                params.sort_by(|a, b| a.0.cmp(&b.0));
                let mut any = false;
                for (n, v) in params {
                    if selector.is_none_or(|p| p == "*" || p == n) {
                        let v = match &view {
                            Some(view) => view
                                .expand_text(&v)
                                .unwrap_or_else(|e| expansion_fatal(e, false)),
                            None => v,
                        };
                        let head = if o.value_only {
                            String::new()
                        } else {
                            format!("{}/{}/{n} =", s.name, s.kind.as_str())
                        };
                        out.push_str(&fold_words(&v, &head, o.fold));
                        out.push('\n');
                        any = true;
                    }
                }
                any
            }
        };
        if requests.is_empty() {
            show(None, &mut out);
            continue;
        }
        for (i, (_, p)) in requests.iter().enumerate() {
            if p.matches(s) && show(p.third(), &mut out) {
                matched[i] += 1;
            }
        }
    }
    print!("{out}");
    for ((raw, _), m) in requests.iter().zip(matched) {
        if m == 0 {
            warning(&format!("unmatched request: \"{raw}\""));
        }
    }
    warn_unused(&cf, false);
    0
}

/// The configuration a service sees: main.cf plus its `-o` overrides, with
/// `service_name` set (postconf -Px).
fn service_view(cf: &Config, s: &Service) -> Config {
    let view = cf.for_service(s);
    let mut main = view.main.clone();
    main.set(&[("service_name".to_string(), s.name.clone())]);
    Config::from_parts(
        view.config_directory.clone(),
        view.explicit_directory,
        main,
        view.master.clone(),
        Vec::new(),
    )
}

/// A line builder for master.cf entries: text, and where the line is.
struct Line {
    out: String,
    len: usize,
}

impl Line {
    fn add(&mut self, text: &str) {
        self.out.push_str(text);
        self.len += text.len();
    }

    /// A separator before `arg_len` more columns: a space, or with `fold`
    /// a line break when the item would reach column 80.
    fn separate(&mut self, arg_len: usize, fold: bool) {
        if self.len > INDENT.len() {
            if !fold || self.len + 1 + arg_len < LINE_LIMIT {
                self.add(" ");
            } else {
                self.out.push('\n');
                self.out.push_str(INDENT);
                self.len = INDENT.len();
            }
        }
    }

    /// The daemon arguments after the command: options that take a value
    /// go on a line of their own with their value; generic options stay on
    /// the current line until the first non-option argument.
    fn daemon_args(&mut self, args: &[String], fold: bool) {
        let mut in_options = true;
        let mut i = 0;
        while i < args.len() {
            let arg = quote_arg(&args[i]);
            let mut arg_len = arg.len();
            let mut value = None;
            if in_options {
                if !args[i].starts_with('-') || args[i] == "--" {
                    in_options = false;
                } else if OPTIONS_WITH_VALUE.contains(&args[i].as_str())
                    && let Some(v) = args.get(i + 1)
                {
                    self.len = LINE_LIMIT;
                    let v = quote_arg(v);
                    arg_len += v.len() + 1;
                    value = Some(v);
                }
            }
            self.separate(arg_len, fold);
            self.add(&arg);
            if let Some(v) = value {
                self.add(" ");
                self.add(&v);
                i += 1;
                self.len = LINE_LIMIT;
            }
            i += 1;
        }
    }
}

/// One master.cf entry in postconf -M's layout: the columns at their
/// preferred positions (at least one space apart), then the arguments.
fn master_entry(s: &Service, fold: bool) -> String {
    let mut line = Line {
        out: String::new(),
        len: 0,
    };
    let columns = [
        s.name.as_str(),
        s.kind.as_str(),
        &s.private,
        &s.unpriv,
        &s.chroot,
        &s.wakeup,
        &s.maxproc,
        &s.command,
    ];
    for (goal, text) in COLUMN_GOALS.iter().zip(columns) {
        if line.len > 0 {
            loop {
                line.add(" ");
                if line.len >= *goal {
                    break;
                }
            }
        }
        line.add(text);
    }
    line.daemon_args(&s.args, fold);
    line.out.push('\n');
    line.out
}

/// One `service/type/field = value` line of postconf -F.
fn master_field(s: &Service, field: usize, fold: bool, value_only: bool) -> String {
    let values = [
        s.name.as_str(),
        s.kind.as_str(),
        &s.private,
        &s.unpriv,
        &s.chroot,
        &s.wakeup,
        &s.maxproc,
        &s.command,
    ];
    let mut line = Line {
        out: String::new(),
        len: 0,
    };
    if !value_only {
        line.add(&format!(
            "{}/{}/{} = ",
            s.name,
            s.kind.as_str(),
            FIELDS[field]
        ));
        if line.len + values[field].len() > LINE_LIMIT {
            line.out.push('\n');
            line.out.push_str(INDENT);
            line.len = INDENT.len();
        }
    }
    line.add(values[field]);
    if field == FIELDS.len() - 1 {
        line.daemon_args(&s.args, fold);
    }
    line.out.push('\n');
    line.out
}

/// `-Me`, `-MX`, `-M#`, `-Fe`, `-Pe`, `-PX`: edit master.cf in place. Lines
/// outside the edited entries pass through unchanged; an edited entry is
/// written in the -Mf layout.
fn edit_master(o: &Opts) -> i32 {
    let edit_opts = "-Me, -Fe, -Pe, -X, or -#";
    if o.args.is_empty() {
        fatal("missing service argument");
    }
    struct Request {
        raw: String,
        pattern: Pattern,
        value: Option<String>,
        matched: usize,
    }
    let mut requests: Vec<Request> = Vec::new();
    for raw in &o.args {
        if raw.contains('\n') {
            fatal(format!("{edit_opts} accept no multi-line input"));
        }
        let t = raw.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if t.starts_with('#') {
            fatal(format!("{edit_opts} accept no comment input"));
        }
        let (pattern, value) = if o.edit {
            match split_nameval(t) {
                Ok((p, v)) => (p.to_string(), Some(v.to_string())),
                Err(why) => fatal(format!("{why}: \"{raw}\"")),
            }
        } else {
            if t.contains('=') {
                fatal(if o.remove {
                    "specify one of -e -X"
                } else {
                    "specify one of -e -#"
                });
            }
            (t.trim_end().to_string(), None)
        };
        let whitespace = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|v| v.contains(|c: char| c.is_ascii_whitespace()))
        };
        let pattern = if o.master {
            Pattern::parse(&pattern, 2, 2)
                .unwrap_or_else(|| fatal("-Me, -MX or -M# requires service_name/type"))
        } else if o.fields {
            let p = Pattern::parse(&pattern, 3, 3)
                .unwrap_or_else(|| fatal("-Fe or -FX requires service_name/type/field_name"));
            let f = p.third().unwrap_or_default();
            if f == "*" {
                fatal("-Fe does not accept wild-card field name");
            }
            let Some(i) = field_index(f) else {
                fatal(format!("invalid service attribute name: \"{f}\""));
            };
            if o.edit && i < FIELDS.len() - 1 && whitespace(&value) {
                fatal("-Fe does not accept whitespace in non-command field");
            }
            p
        } else {
            let p = Pattern::parse(&pattern, 3, 3)
                .unwrap_or_else(|| fatal("-Pe or -PX requires service_name/type/parameter"));
            if p.third() == Some("*") {
                fatal("-Pe does not accept wild-card parameter name");
            }
            if o.edit && whitespace(&value) {
                fatal("-Pe does not accept whitespace in parameter value");
            }
            p
        };
        requests.push(Request {
            raw: raw.clone(),
            pattern,
            value,
            matched: 0,
        });
    }
    let (dir, _) = Config::directory(o.dir.as_deref());
    let path = dir.join("master.cf");
    let text = read_for_edit(&path);
    let parse_new = |raw: &str, value: &str| -> Service {
        parse_entry(value, 0, 0).unwrap_or_else(|e| match e {
            EntryError::FieldCount => fatal(format!("bad field count: \"{raw}\"")),
            EntryError::Field(what) => fatal(what),
        })
    };
    let mut out = String::with_capacity(text.len() + 128);
    let mut rest = text.as_str();
    let mut lineno = 0;
    let mut matched_entry = false;
    while !rest.is_empty() {
        let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        lineno += 1;
        if rostfix_config::lines::is_blank_or_comment(line) {
            out.push_str(line);
            continue;
        }
        if rostfix_config::lines::starts_with_space(line) {
            if !matched_entry {
                out.push_str(line);
            } else if o.comment {
                out.push('#');
                out.push_str(line);
            }
            continue;
        }
        // The start of an entry: gather its continuation lines (comments
        // among them pass through), then decide.
        let mut entry_text = line.trim_end_matches(['\n', '\r']).to_string();
        let mut continuation = String::new();
        let mut look = rest;
        let mut taken = 0;
        while !look.is_empty() {
            let e = look.find('\n').map_or(look.len(), |i| i + 1);
            let l = &look[..e];
            if rostfix_config::lines::is_blank_or_comment(l) {
                continuation.push_str(l);
            } else if rostfix_config::lines::starts_with_space(l) {
                entry_text.push(' ');
                entry_text.push_str(l.trim());
                continuation.push_str(l);
            } else {
                break;
            }
            look = &look[e..];
            taken += e;
        }
        let mut words = entry_text.split_ascii_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            fatal(format!(
                "file {}: line {lineno}: specify service name and type on the same line",
                path.display()
            ));
        };
        let probe = Service {
            name: name.to_string(),
            kind: rostfix_config::ServiceType::parse(kind)
                .unwrap_or(rostfix_config::ServiceType::Unix),
            private: String::new(),
            unpriv: String::new(),
            chroot: String::new(),
            wakeup: String::new(),
            maxproc: String::new(),
            command: String::new(),
            args: Vec::new(),
            line: lineno,
            end: lineno,
        };
        let type_ok = rostfix_config::ServiceType::parse(kind).is_some();
        matched_entry = false;
        let mut new_entry: Option<Service> = None;
        for r in requests.iter_mut() {
            if !type_ok || !r.pattern.matches(&probe) {
                continue;
            }
            matched_entry = true;
            r.matched += 1;
            if o.master {
                if let Some(v) = &r.value {
                    new_entry = Some(parse_new(&r.raw, v));
                }
            } else if o.edit || (o.service_params && o.remove) {
                let mut s = match new_entry.take() {
                    Some(s) => s,
                    None => parse_entry(&entry_text, lineno, lineno).unwrap_or_else(|e| match e {
                        EntryError::FieldCount => fatal(format!(
                            "file {}: line {lineno}: bad field count",
                            path.display()
                        )),
                        EntryError::Field(what) => fatal(what),
                    }),
                };
                let third = r.pattern.third().unwrap_or_default().to_string();
                if o.fields {
                    set_field(&mut s, &third, r.value.as_deref().unwrap_or_default());
                } else {
                    set_option(
                        &mut s,
                        &third,
                        if o.remove { None } else { r.value.as_deref() },
                    );
                }
                new_entry = Some(s);
            }
        }
        if let Some(s) = new_entry {
            if o.master {
                // -Me: the new entry takes the old one's place; the old
                // continuation lines are dropped as the loop meets them.
                out.push_str(&master_entry(&s, true));
            } else {
                // -Fe/-Pe read the whole old entry first, so comments among
                // its lines come out before the rewritten entry.
                for l in continuation.split_inclusive('\n') {
                    if rostfix_config::lines::is_blank_or_comment(l) {
                        out.push_str(l);
                    }
                }
                out.push_str(&master_entry(&s, true));
                rest = &rest[taken..];
                matched_entry = false;
            }
        } else if !matched_entry {
            out.push_str(line);
        } else if o.comment {
            out.push('#');
            out.push_str(line);
        }
    }
    for r in &requests {
        if r.matched > 0 {
            continue;
        }
        match (&r.value, o.master && o.edit) {
            (Some(v), true) => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&master_entry(&parse_new(&r.raw, v), true));
            }
            _ if !o.master => warning(&format!("unmatched service_name/type: \"{}\"", r.raw)),
            _ => {}
        }
    }
    write_edited(&path, &out);
    0
}

/// `-Fe`: one column replaced (the command column takes the command and
/// its arguments).
fn set_field(s: &mut Service, field: &str, value: &str) {
    let check = |v: &str, ok: bool| {
        if !ok {
            fatal(format!("invalid {field} field \"{v}\" in \"{v}\""));
        }
    };
    match field {
        "service" => s.name = value.to_string(),
        "type" => match rostfix_config::ServiceType::parse(value) {
            Some(k) => s.kind = k,
            None => check(value, false),
        },
        "private" | "unprivileged" | "chroot" => {
            check(value, matches!(value, "y" | "n" | "-"));
            let slot = match field {
                "private" => &mut s.private,
                "unprivileged" => &mut s.unpriv,
                _ => &mut s.chroot,
            };
            *slot = value.to_string();
        }
        "wakeup" => {
            let w = value.strip_suffix('?').unwrap_or(value);
            check(value, w == "-" || w.parse::<u32>().is_ok());
            s.wakeup = value.to_string();
        }
        "process_limit" => {
            check(value, value == "-" || value.parse::<u32>().is_ok());
            s.maxproc = value.to_string();
        }
        _ => {
            let mut words = value.split_ascii_whitespace().map(str::to_string);
            s.command = words.next().unwrap_or_default();
            s.args = words.collect();
        }
    }
}

/// `-Pe` / `-PX`: set, add or remove `-o name=value` among the daemon
/// options (before the first non-option argument).
fn set_option(s: &mut Service, name: &str, value: Option<&str>) {
    let mut i = 0;
    let mut found = false;
    while i < s.args.len() {
        let arg = &s.args[i];
        if !arg.starts_with('-') || arg == "--" {
            break;
        }
        if OPTIONS_WITH_VALUE.contains(&arg.as_str()) && i + 1 < s.args.len() {
            let is_it = arg == "-o"
                && s.args[i + 1]
                    .split_once('=')
                    .is_some_and(|(n, _)| n == name);
            if is_it {
                found = true;
                match value {
                    Some(v) => s.args[i + 1] = format!("{name}={v}"),
                    None => {
                        s.args.drain(i..i + 2);
                        continue;
                    }
                }
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    if let (false, Some(v)) = (found, value) {
        s.args
            .splice(i..i, ["-o".to_string(), format!("{name}={v}")]);
    }
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

    #[test]
    fn master_columns_and_option_lines() {
        let cf = MasterCf::parse(
            std::path::Path::new("m"),
            "postlog unix-dgram n - n - 1 postlogd\nrelay unix - - y - - smtp -v -o syslog_name=postfix/$service_name -x extra -o a=b\n",
        )
        .unwrap();
        assert_eq!(
            master_entry(&cf.services[0], false),
            "postlog    unix-dgram n  -       n       -       1       postlogd\n"
        );
        assert_eq!(
            master_entry(&cf.services[1], true),
            "relay      unix  -       -       y       -       -       smtp -v\n    -o syslog_name=postfix/$service_name\n    -x extra -o a=b\n"
        );
    }
}

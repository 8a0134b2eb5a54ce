//! Rostfix configuration: main.cf and master.cf as Postfix reads them.
//!
//! Corresponds to Postfix's `mail_conf*`, `mail_params`, `master_ent` and the
//! postconf(1) internals. [`Config`] is one loaded configuration directory:
//! main.cf entries over the defaults of [`param_table`], the services of
//! master.cf, and the per-service parameters they imply; it answers raw
//! values, expanded values and typed values. Everything here is pure apart
//! from reading the two files and asking the system for its host name and
//! interfaces.

pub mod dbms;
pub mod expand;
pub mod lines;
pub mod main_cf;
pub mod master_cf;
pub mod param;
mod param_table;
pub mod system;
pub mod value;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use expand::ExpandError;
pub use main_cf::{MainCf, MainCfError};
pub use master_cf::{MasterCf, MasterCfError, Service, ServiceType};
pub use param::{DefaultValue, ParamSpec, ParamType};

/// The configuration directory when neither `-c` nor `MAIL_CONFIG` names one.
pub const DEFAULT_CONFIG_DIRECTORY: &str = "/etc/postfix";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    MainCf(#[from] MainCfError),
    #[error(transparent)]
    MasterCf(#[from] MasterCfError),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error("{file}: parameter {name}: bad {what} value: \"{value}\"")]
    BadValue {
        file: String,
        name: String,
        what: &'static str,
        value: String,
    },
}

/// Which defaults to use: `postconf -d` shows the built-in ones (system
/// values derived from the system alone); everything else derives them from
/// the configuration in force (e.g. `mydomain` from main.cf's `myhostname`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defaults {
    BuiltIn,
    Effective,
}

/// One loaded configuration directory.
#[derive(Debug)]
pub struct Config {
    pub config_directory: PathBuf,
    /// True when `-c` or `MAIL_CONFIG` chose the directory; postconf then
    /// shows `config_directory` among the explicit settings, as Postfix does.
    pub explicit_directory: bool,
    pub main: MainCf,
    /// `None` when master.cf could not be read (postconf only warns then).
    pub master: Option<MasterCf>,
    /// Warnings from reading the files, worded as Postfix words them.
    pub warnings: Vec<String>,
    /// Parameters that master.cf services imply, with their defaults.
    service_params: BTreeMap<String, &'static str>,
    interfaces: OnceLock<Vec<system::InterfaceAddr>>,
    system_hostname: OnceLock<String>,
}

impl Config {
    /// The directory chosen by `-c DIR`, else `MAIL_CONFIG`, else the default.
    pub fn directory(cli: Option<&Path>) -> (PathBuf, bool) {
        if let Some(dir) = cli {
            return (dir.to_path_buf(), true);
        }
        match std::env::var_os("MAIL_CONFIG") {
            Some(dir) if !dir.is_empty() => (PathBuf::from(dir), true),
            _ => (PathBuf::from(DEFAULT_CONFIG_DIRECTORY), false),
        }
    }

    /// Loads main.cf (required) and master.cf (a warning when missing).
    pub fn load(cli_dir: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(cli_dir, false)
    }

    /// The built-in configuration of a directory: master.cf (for the
    /// parameters its services imply) but not main.cf (`postconf -d`).
    pub fn load_defaults(cli_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let (dir, explicit) = Config::directory(cli_dir);
        let main = MainCf {
            path: dir.join("main.cf"),
            ..MainCf::default()
        };
        let mut warnings = Vec::new();
        let master = read_master(&dir, &mut warnings)?;
        Ok(Config::from_parts(dir, explicit, main, master, warnings))
    }

    /// Like [`Config::load`]; with `missing_main_ok` a missing main.cf reads
    /// as an empty one (postconf works without one, as Postfix's does).
    pub fn load_with(cli_dir: Option<&Path>, missing_main_ok: bool) -> Result<Config, ConfigError> {
        let (dir, explicit) = Config::directory(cli_dir);
        // -c DIR sets config_directory before main.cf is read, so a
        // config_directory line in main.cf overrides it (with a warning).
        let preset = if explicit {
            vec![main_cf::Entry {
                name: "config_directory".to_string(),
                value: dir.to_string_lossy().into_owned(),
                line: 0,
            }]
        } else {
            Vec::new()
        };
        let path = dir.join("main.cf");
        let main = match MainCf::read_with(&path, preset.clone()) {
            Err(MainCfError::Open { source, .. })
                if missing_main_ok && source.kind() == std::io::ErrorKind::NotFound =>
            {
                MainCf {
                    path,
                    entries: preset,
                    warnings: Vec::new(),
                }
            }
            other => other?,
        };
        let mut warnings = main.warnings.clone();
        let master = read_master(&dir, &mut warnings)?;
        Ok(Config::from_parts(dir, explicit, main, master, warnings))
    }

    /// A configuration from already parsed files (tests, reload).
    pub fn from_parts(
        dir: PathBuf,
        explicit_directory: bool,
        main: MainCf,
        master: Option<MasterCf>,
        warnings: Vec<String>,
    ) -> Config {
        let service_params = master.as_ref().map(service_params).unwrap_or_default();
        Config {
            config_directory: dir,
            explicit_directory,
            main,
            master,
            warnings,
            service_params,
            interfaces: OnceLock::new(),
            system_hostname: OnceLock::new(),
        }
    }

    /// True for names that master.cf's services imply.
    pub fn is_service_param(&self, name: &str) -> bool {
        self.service_params.contains_key(name)
    }

    /// True for built-in and master.cf-implied parameters, and for the
    /// names built-in defaults refer to (`virtual_maps`, `stress`, ...),
    /// which Postfix knows with an empty default but does not list.
    pub fn is_known(&self, name: &str) -> bool {
        param::spec(name).is_some()
            || self.service_params.contains_key(name)
            || param::is_hidden(name)
    }

    /// The raw value in force: main.cf's entry, else the default.
    pub fn raw(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.main.get(name) {
            return Some(Cow::Borrowed(v));
        }
        self.default_value(name, Defaults::Effective)
    }

    /// The default of `name`: the table's text, a master.cf-implied default,
    /// or a value derived from the system.
    pub fn default_value(&self, name: &str, which: Defaults) -> Option<Cow<'_, str>> {
        if let Some(spec) = param::spec(name) {
            return Some(match spec.default {
                DefaultValue::Static(text) => Cow::Borrowed(text),
                DefaultValue::Dynamic => Cow::Owned(self.dynamic_default(name, which)),
            });
        }
        if let Some(v) = self.service_params.get(name) {
            return Some(Cow::Borrowed(*v));
        }
        param::is_hidden(name).then_some(Cow::Borrowed(""))
    }

    fn dynamic_default(&self, name: &str, which: Defaults) -> String {
        let effective = |param: &str| -> String {
            match which {
                Defaults::Effective => self.expanded(param).ok().flatten().unwrap_or_default(),
                Defaults::BuiltIn => self.expanded_default(param).unwrap_or_default(),
            }
        };
        match name {
            "myhostname" => self.system_hostname.get_or_init(system::myhostname).clone(),
            "mydomain" => system::mydomain_for(&effective("myhostname")),
            "mynetworks" => {
                let style = effective("mynetworks_style");
                let addrs = self.interfaces.get_or_init(system::interface_addrs);
                let chosen = match which {
                    Defaults::BuiltIn => addrs.clone(),
                    Defaults::Effective => self.filter_interfaces(addrs),
                };
                system::mynetworks(&style, &chosen)
            }
            "process_id" => std::process::id().to_string(),
            "process_name" => system::process_name(),
            _ => String::new(),
        }
    }

    /// The interface addresses that `inet_interfaces` and `inet_protocols`
    /// select.
    fn filter_interfaces(&self, addrs: &[system::InterfaceAddr]) -> Vec<system::InterfaceAddr> {
        let protocols = self
            .expanded("inet_protocols")
            .ok()
            .flatten()
            .unwrap_or_default();
        let protocols = value::split_list(&protocols);
        let want_v4 = protocols.iter().any(|p| matches!(*p, "all" | "ipv4"));
        let want_v6 = protocols.iter().any(|p| matches!(*p, "all" | "ipv6"));
        let interfaces = self
            .expanded("inet_interfaces")
            .ok()
            .flatten()
            .unwrap_or_default();
        let listed = value::split_list(&interfaces);
        let all = listed.is_empty() || listed.iter().any(|i| i.eq_ignore_ascii_case("all"));
        addrs
            .iter()
            .filter(|a| if a.addr.is_ipv4() { want_v4 } else { want_v6 })
            .filter(|a| {
                all || listed.iter().any(|i| {
                    let i = i.trim_start_matches('[').trim_end_matches(']');
                    if i.eq_ignore_ascii_case("loopback-only")
                        || i.eq_ignore_ascii_case("localhost")
                    {
                        a.addr.is_loopback()
                    } else {
                        i.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == a.addr)
                    }
                })
            })
            .copied()
            .collect()
    }

    /// `name` fully expanded (raw parameters as they are); `Ok(None)` for
    /// an unknown name.
    pub fn expanded(&self, name: &str) -> Result<Option<String>, ExpandError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        if param::is_raw(name) {
            return Ok(Some(raw.into_owned()));
        }
        self.expand_text(&raw).map(Some)
    }

    /// `text` expanded against the parameters in force; undefined names
    /// expand to nothing.
    pub fn expand_text(&self, text: &str) -> Result<String, ExpandError> {
        let lookup = |n: &str| self.raw(n).map(Cow::into_owned);
        expand::expand(text, &lookup, &mut |_| {})
    }

    /// `text` expanded, also reporting the names it referred to that are
    /// not defined anywhere.
    pub fn expand_text_reporting(
        &self,
        text: &str,
        undefined: &mut dyn FnMut(&str),
    ) -> Result<String, ExpandError> {
        let lookup = |n: &str| self.raw(n).map(Cow::into_owned);
        expand::expand(text, &lookup, undefined)
    }

    /// The built-in default of `name`, expanded against built-in defaults only.
    pub fn expanded_default(&self, name: &str) -> Option<String> {
        let raw = self.default_value(name, Defaults::BuiltIn)?;
        let lookup = |n: &str| {
            self.default_value(n, Defaults::BuiltIn)
                .map(Cow::into_owned)
        };
        expand::expand(&raw, &lookup, &mut |_| {}).ok()
    }

    /// Names of every parameter `postconf` lists: built-ins, master.cf
    /// implied ones, and main.cf's own parameters that something uses.
    pub fn all_names(&self, which: Defaults) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = param::all().iter().map(|s| s.name.to_string()).collect();
        names.extend(self.service_params.keys().cloned());
        if which == Defaults::Effective {
            let used = self.referenced_names();
            for e in &self.main.entries {
                if used.contains(&e.name) {
                    names.insert(e.name.clone());
                }
            }
        }
        names
    }

    /// Every `$name` referenced by a main.cf value or a master.cf `-o` value.
    fn referenced_names(&self) -> BTreeSet<String> {
        let mut refs = BTreeSet::new();
        let mut scan = |text: &str| collect_refs(text, &mut refs);
        for e in &self.main.entries {
            scan(&e.value);
        }
        if let Some(master) = &self.master {
            for s in &master.services {
                for (_, v) in s.options() {
                    scan(&v);
                }
            }
        }
        // Names that smtpd_restriction_classes declares are parameters too.
        if let Some(classes) = self.main.get("smtpd_restriction_classes") {
            for c in value::split_list(classes) {
                refs.insert(c.to_string());
            }
        }
        // A database table named without a path (`mysql:name`) takes its
        // settings from main.cf as name_hosts, name_user, ...
        for (kind, name) in self.database_tables() {
            if !name.contains('/')
                && let Some(fields) = dbms::fields(&kind)
            {
                for f in fields {
                    refs.insert(format!("{name}_{f}"));
                }
            }
        }
        refs
    }

    /// Every `type:name` of a database client type (mysql, pgsql, ldap,
    /// sqlite, memcache) in main.cf values, in file order, proxy: removed.
    pub fn database_tables(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for e in &self.main.entries {
            for item in value::split_list(&e.value) {
                let mut spec = item;
                while let Some(rest) = spec
                    .strip_prefix("proxy:")
                    .or_else(|| spec.strip_prefix("proxywrite:"))
                {
                    spec = rest;
                }
                if let Some((kind, name)) = spec.split_once(':')
                    && dbms::fields(kind).is_some()
                    && !name.is_empty()
                    && !out.iter().any(|(k, n)| k == kind && n == name)
                {
                    out.push((kind.to_string(), name.to_string()));
                }
            }
        }
        out
    }

    /// Names referred to with `$name` in main.cf values that nothing
    /// defines, sorted (postconf's "undefined parameter" warnings).
    pub fn undefined_references(&self) -> Vec<String> {
        let mut refs = BTreeSet::new();
        for e in &self.main.entries {
            if !param::is_raw(&e.name) {
                collect_refs(&e.value, &mut refs);
            }
        }
        refs.into_iter()
            .filter(|n| !self.is_known(n) && self.main.get(n).is_none())
            .collect()
    }

    /// main.cf entries that nothing knows or uses, for the "unused
    /// parameter" warnings (in file order, last entry per name).
    pub fn unused_main_parameters(&self) -> Vec<&main_cf::Entry> {
        let used = self.referenced_names();
        self.main
            .effective()
            .into_iter()
            .filter(|e| !self.is_known(&e.name) && !used.contains(&e.name))
            .collect()
    }

    /// master.cf `-o` settings of parameters that nothing knows or uses.
    pub fn unused_master_parameters(&self) -> Vec<(&Service, String, String)> {
        let Some(master) = &self.master else {
            return Vec::new();
        };
        let used = self.referenced_names();
        let mut out = Vec::new();
        for s in &master.services {
            for (n, v) in s.options() {
                let known = self.is_known(&n) || used.contains(&n) || self.main.get(&n).is_some();
                if !known {
                    out.push((s, n, v));
                }
            }
        }
        out
    }

    /// A per-service view: this configuration with a service's `-o`
    /// overrides on top (master(5)).
    pub fn for_service(&self, service: &Service) -> Config {
        let mut main = self.main.clone();
        let overrides = service.options();
        if !overrides.is_empty() {
            main.set(&overrides);
        }
        Config::from_parts(
            self.config_directory.clone(),
            self.explicit_directory,
            main,
            self.master.clone(),
            Vec::new(),
        )
    }

    /// A typed boolean.
    pub fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        let v = self.expanded(name)?.unwrap_or_default();
        value::parse_bool(&v).ok_or_else(|| self.bad(name, "boolean", v))
    }

    /// A typed time, in seconds.
    pub fn time(&self, name: &str) -> Result<u64, ConfigError> {
        let unit = match param::spec(name).map(|s| s.ty) {
            Some(ParamType::Time(u)) => u,
            _ => b's',
        };
        let v = self.expanded(name)?.unwrap_or_default();
        value::parse_time(&v, unit).ok_or_else(|| self.bad(name, "time", v))
    }

    /// A typed integer.
    pub fn int(&self, name: &str) -> Result<i64, ConfigError> {
        let v = self.expanded(name)?.unwrap_or_default();
        value::parse_int(&v).ok_or_else(|| self.bad(name, "numerical", v))
    }

    /// An expanded string ("" for an unknown name).
    pub fn string(&self, name: &str) -> Result<String, ConfigError> {
        Ok(self.expanded(name)?.unwrap_or_default())
    }

    fn bad(&self, name: &str, what: &'static str, value: String) -> ConfigError {
        let file = match self.main.entries.iter().rev().find(|e| e.name == name) {
            Some(e) => format!("{}, line {}", self.main.path.display(), e.line),
            None => format!("{} (default)", self.main.path.display()),
        };
        ConfigError::BadValue {
            file,
            name: name.to_string(),
            what,
            value,
        }
    }
}

/// The parameters master.cf's delivery services imply (postconf(5):
/// `transport_destination_concurrency_limit` and friends), with their
/// defaults; some of them are built-in parameters too (local_...), whose
/// built-in default then applies.
fn service_params(master: &MasterCf) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for s in &master.services {
        if param::DELIVERY_AGENTS.contains(&s.command.as_str()) {
            for (suffix, default) in param::PER_TRANSPORT_PARAMS {
                out.insert(format!("{}_{}", s.name, suffix), *default);
            }
        }
        if param::COMMAND_RUNNERS.contains(&s.command.as_str()) {
            out.insert(format!("{}_time_limit", s.name), "$command_time_limit");
        }
    }
    out
}

/// Adds every `$name`, `${name...}` and `$(name...)` reference in `text`.
pub(crate) fn collect_refs(text: &str, out: &mut BTreeSet<String>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        i += 1;
        if i < b.len() && (b[i] == b'{' || b[i] == b'(') {
            i += 1;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            out.insert(text[start..i].to_string());
        }
    }
}

/// An I/O error the way Postfix prints `%m` (the bare strerror text).
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// master.cf of `dir`; a missing one is a warning, not an error, so that
/// commands that only need main.cf still work.
fn read_master(dir: &Path, warnings: &mut Vec<String>) -> Result<Option<MasterCf>, ConfigError> {
    match MasterCf::read(&dir.join("master.cf")) {
        Ok(m) => {
            warnings.extend(m.warnings.iter().cloned());
            Ok(Some(m))
        }
        Err(MasterCfError::Open { path, source }) => {
            warnings.push(format!("open {}: {}", path.display(), io_text(&source)));
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(main: &str, master: &str) -> Config {
        let main = MainCf::parse(Path::new("./main.cf"), main).unwrap();
        let master = MasterCf::parse(Path::new("./master.cf"), master).unwrap();
        Config::from_parts(PathBuf::from("."), true, main, Some(master), Vec::new())
    }

    #[test]
    fn effective_values_and_expansion() {
        let cf = config("myhostname = mail.example.com\nmyorigin = $mydomain\n", "");
        assert_eq!(cf.expanded("myorigin").unwrap().unwrap(), "example.com");
        assert_eq!(
            cf.expanded("mydestination").unwrap().unwrap(),
            "mail.example.com, localhost.example.com, localhost"
        );
        assert_eq!(cf.time("smtpd_timeout").unwrap(), 300);
        assert_eq!(cf.time("maximal_queue_lifetime").unwrap(), 5 * 86400);
        assert!(!cf.bool("smtpd_helo_required").unwrap());
        assert_eq!(
            cf.expanded("relay_domains").unwrap().unwrap(),
            "mail.example.com, localhost.example.com, localhost"
        );
    }

    #[test]
    fn compatibility_level_switches_defaults() {
        let cf = config("compatibility_level = 3.6\n", "");
        assert_eq!(cf.expanded("relay_domains").unwrap().unwrap(), "");
        assert_eq!(
            cf.expanded("smtpd_relay_restrictions").unwrap().unwrap(),
            "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let cf = config("myorigin = x\nsmtpd_helo_required = maybe\n", "");
        assert_eq!(
            cf.bool("smtpd_helo_required").unwrap_err().to_string(),
            "./main.cf, line 2: parameter smtpd_helo_required: bad boolean value: \"maybe\""
        );
    }

    #[test]
    fn services_imply_parameters_and_overrides() {
        let master = "dovecot unix - n n - - pipe\n  argv=/x ${recipient}\n\
                      submission inet n - n - - smtpd\n  -o smtpd_client_restrictions=$mua_client_restrictions\n  -o bogus=1\n";
        let cf = config(
            "mua_client_restrictions = permit_sasl_authenticated, reject\nunused = 1\n",
            master,
        );
        assert_eq!(
            cf.raw("dovecot_destination_recipient_limit").unwrap(),
            "$default_destination_recipient_limit"
        );
        assert_eq!(cf.expanded("dovecot_time_limit").unwrap().unwrap(), "1000s");
        let unused: Vec<&str> = cf
            .unused_main_parameters()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(unused, ["unused"]);
        let bad: Vec<String> = cf
            .unused_master_parameters()
            .iter()
            .map(|(_, n, _)| n.clone())
            .collect();
        assert_eq!(bad, ["bogus"]);
        let sub = cf.for_service(
            cf.master
                .as_ref()
                .unwrap()
                .find("submission", None)
                .unwrap(),
        );
        assert_eq!(
            sub.expanded("smtpd_client_restrictions").unwrap().unwrap(),
            "permit_sasl_authenticated, reject"
        );
    }
}

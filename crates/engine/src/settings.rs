//! Typed, immutable views of the configuration that the daemons use,
//! resolved once at start (DESIGN.md section 5): no component reads raw
//! parameter strings or opens a table while it handles a message.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rostfix_config::{Config, ConfigError, value};
use rostfix_maps::order::{Maps, OrderContext};
use rostfix_maps::{DictError, OpenOptions};
use rostfix_smtp::data::BareNewline;
use rostfix_smtp::session::SessionConfig;

use crate::mbox::{LockMethods, Locking};
use crate::resolve::Routing;
use crate::rewrite::{Classes, Rewriting};

/// Everything the engine needs, shared by its tasks.
#[derive(Debug)]
pub struct Settings {
    pub myhostname: String,
    /// The machine's host name as Maildir file names carry it (`/` and
    /// `:` written as `\057` and `\072`, as the Maildir convention asks).
    pub maildir_host: String,
    pub mail_name: String,
    pub syslog_name: String,
    pub queue_directory: PathBuf,
    /// Empty queue files for reuse (cleanup takes, qmgr gives back).
    pub queue_pool: rostfix_queue::Pool,
    pub long_queue_ids: bool,
    pub session: SessionConfig,
    pub bare_newline: BareNewline,
    pub mynetworks: Vec<Network>,
    pub inet_interface_addrs: Vec<IpAddr>,
    pub mydestination: Vec<String>,
    pub virtual_mailbox_domains: Vec<String>,
    pub relay_domains: Vec<String>,
    /// Sites ETRN and postqueue -s may flush (and their subdomains).
    pub fast_flush_domains: Vec<String>,
    /// The smtpd restriction lists, with their tables and reply codes.
    pub access: crate::smtpd_check::Access,
    /// smtpd_reject_unlisted_recipient
    pub reject_unlisted_recipient: bool,
    pub virtual_mailbox_maps: Maps,
    /// The owner a virtual mailbox is written as (when the delivering
    /// process runs as root).
    pub virtual_uid_maps: Maps,
    pub virtual_gid_maps: Maps,
    pub virtual_minimum_uid: u32,
    /// Whether this process may write as other users (it runs as root).
    pub privileged: bool,
    pub virtual_mailbox_base: PathBuf,
    /// virtual_mailbox_limit (0: none)
    pub virtual_mailbox_limit: u64,
    /// virtual_mailbox_lock, deliver_lock_attempts, deliver_lock_delay,
    /// stale_lock_time
    pub virtual_mailbox_lock: Locking,
    pub virtual_alias_maps: Maps,
    /// Addresses that moved (relocated(5)): refused with 5.1.6.
    pub relocated_maps: Maps,
    pub virtual_alias_recursion_limit: usize,
    /// Received headers a message may carry (its own included).
    pub hopcount_limit: u64,
    /// Seconds mail may wait before it goes back to the sender.
    pub maximal_queue_lifetime: u64,
    /// Seconds after which the sender hears that mail is delayed (0: never).
    pub delay_warning_time: u64,
    /// What the postmaster is told of (notify_classes: `bounce`,
    /// `2bounce`, `delay`, ...), and where it goes.
    pub notify_classes: Vec<String>,
    pub bounce_notice_recipient: String,
    pub double_bounce_notice_recipient: String,
    pub delay_notice_recipient: String,
    /// The sender of postmaster notices (`double-bounce`@$myhostname).
    pub double_bounce_sender: String,
    /// The same for notifications (mail from the null sender).
    pub bounce_queue_lifetime: u64,
    /// bounce_size_limit: a bigger message is returned as its headers.
    pub bounce_size_limit: usize,
    /// message_drop_headers, lower case.
    pub message_drop_headers: Vec<String>,
    /// Bytes of one header kept (with its continuation lines).
    pub header_size_limit: usize,
    pub virtual_alias_expansion_limit: usize,
    /// myorigin, lower case.
    pub myorigin: String,
    pub mydomain: String,
    pub append_at_myorigin: bool,
    pub append_dot_mydomain: bool,
    pub swap_bangpath: bool,
    pub allow_percent_hack: bool,
    /// canonical(5) and masquerading.
    pub rewriting: Rewriting,
    /// Transports and next hops (trivial-rewrite).
    pub routing: Routing,
    /// The smtp and lmtp transports (smtp(8), lmtp(8)).
    pub clients: crate::smtp::Clients,
    /// The pipe(8) transports.
    pub pipes: Vec<crate::pipe_agent::Pipe>,
    /// smtpd's TLS, for a smtpd service that has it.
    pub smtpd_tls: Option<Arc<crate::tls_server::ServerTls>>,
    /// smtpd's SMTP AUTH, for a smtpd service that offers it.
    pub smtpd_sasl: Option<Arc<crate::sasl_server::SaslServer>>,
    /// local(8)'s settings.
    pub local: LocalSettings,
    /// `local_recipient_maps`; `None` when empty (no validation).
    pub local_recipient_maps: Option<Maps>,
    pub always_add_missing_headers: bool,
    /// Deferred mail: retry backoff bounds and how often the queue is scanned.
    pub minimal_backoff_time: u64,
    pub maximal_backoff_time: u64,
    pub queue_run_delay: u64,
    /// How long smtpd waits for a client's next command or data.
    pub smtpd_timeout: std::time::Duration,
    /// How long each reply waits once a client passed the soft error limit.
    pub smtpd_error_sleep_time: std::time::Duration,
    /// Messages qmgr delivers at once: virtual's destination concurrency
    /// limit (all virtual mailbox domains count as one destination until
    /// per-destination scheduling comes with outbound SMTP).
    pub delivery_concurrency: usize,
    pub order: OrderContext,
}

/// An address block of mynetworks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let t = text.trim_start_matches('[');
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a.trim_end_matches(']'), Some(p)),
            None => (t.trim_end_matches(']'), None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

pub(crate) fn list(cf: &Config, name: &str) -> Result<Vec<String>, ConfigError> {
    Ok(value::split_list(&cf.string(name)?)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Domains compared case-insensitively and without a trailing dot.
fn domains(cf: &Config, name: &str) -> Result<Vec<String>, ConfigError> {
    Ok(list(cf, name)?
        .into_iter()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .collect())
}

/// The tables of a parameter. A table that cannot be opened now (a
/// missing file) answers every lookup with a temporary failure, so mail
/// waits instead of bouncing; a misconfigured one stops the start.
pub(crate) fn maps(cf: &Config, name: &str) -> Result<Maps, String> {
    open_maps(cf, name, false)
}

/// The tables of a parameter; with `lenient`, any table that cannot be
/// opened (not only a missing one) makes its lookups wait.
fn open_maps(cf: &Config, name: &str, lenient: bool) -> Result<Maps, String> {
    let v = cf.string(name).map_err(|e| e.to_string())?;
    open_value(name, &v, lenient)
}

/// The tables `v` names, for parameter (or restriction) `name`.
pub(crate) fn open_value(name: &str, v: &str, lenient: bool) -> Result<Maps, String> {
    let mut tables: Vec<Box<dyn rostfix_maps::Dict>> = Vec::new();
    for spec in value::split_list(v) {
        match rostfix_maps::open(spec, &OpenOptions::default()) {
            Ok(t) => tables.push(t),
            Err(e) if lenient || matches!(e, DictError::Retry { .. }) => {
                eprintln!("warning: {name}: {spec}: {e}; lookups will be deferred");
                tables.push(Box::new(rostfix_maps::simple::Fail::new(spec)));
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Ok(Maps::from_tables(name, tables))
}

fn maildir_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
        .replace('/', "\\057")
        .replace(':', "\\072")
}

/// A per-transport parameter (`virtual_destination_concurrency_limit`),
/// else its `default_` form.
pub(crate) fn transport_int(cf: &Config, transport: &str, suffix: &str) -> Result<i64, String> {
    match cf.int(&format!("{transport}_{suffix}")) {
        Ok(v) => Ok(v),
        Err(_) => cf
            .int(&format!("default_{suffix}"))
            .map_err(|e| e.to_string()),
    }
}

/// canonical(5) and masquerading settings.
fn rewriting(cf: &Config) -> Result<Rewriting, String> {
    let e = |e: ConfigError| e.to_string();
    let classes = |name: &str| Classes::parse(name, &list(cf, name).map_err(e)?);
    let propagate = list(cf, "propagate_unmatched_extensions").map_err(e)?;
    Ok(Rewriting {
        canonical_maps: maps(cf, "canonical_maps")?,
        canonical_classes: classes("canonical_classes")?,
        sender_canonical_maps: maps(cf, "sender_canonical_maps")?,
        sender_canonical_classes: classes("sender_canonical_classes")?,
        recipient_canonical_maps: maps(cf, "recipient_canonical_maps")?,
        recipient_canonical_classes: classes("recipient_canonical_classes")?,
        masquerade_domains: list(cf, "masquerade_domains")
            .map_err(e)?
            .into_iter()
            .map(|d| {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                match d.strip_prefix('!') {
                    Some(never) => (never.to_string(), true),
                    None => (d, false),
                }
            })
            .collect(),
        masquerade_classes: classes("masquerade_classes")?,
        masquerade_exceptions: list(cf, "masquerade_exceptions")
            .map_err(e)?
            .into_iter()
            .map(|u| u.to_ascii_lowercase())
            .collect(),
        propagate_canonical: propagate.iter().any(|p| p == "canonical"),
        propagate_virtual: propagate.iter().any(|p| p == "virtual"),
    })
}

/// local(8)'s settings.
#[derive(Debug)]
pub struct LocalSettings {
    pub alias_maps: Maps,
    pub home_mailbox: String,
    /// A trailing `/` makes each user's spool mailbox a Maildir.
    pub mail_spool_directory: String,
    pub mailbox_size_limit: u64,
    pub mailbox_delivery_lock: Locking,
    /// The .forward files to try, unexpanded (`$home/.forward`...).
    pub forward_path: String,
    /// The characters a sender-chosen part may bring into forward_path.
    pub forward_expansion_filter: String,
    /// Where mail for unknown users goes (raw: `$user` and the like are
    /// local(8)'s), or empty.
    pub luser_relay: String,
    /// `transport:nexthop` that delivers users' mailboxes instead of
    /// local(8) (after aliases and .forward), and the one for users this
    /// host does not know; empty when not set.
    pub mailbox_transport: String,
    pub fallback_transport: String,
    /// Mailbox delivery by a command, per user or for all (raw text).
    pub mailbox_command_maps: Maps,
    pub mailbox_command: String,
    /// Where `|command` and `/file` destinations are allowed: `alias`,
    /// `forward`, `include`.
    pub allow_mail_to_commands: Vec<String>,
    pub allow_mail_to_files: Vec<String>,
    /// The user alias commands and files run as.
    pub default_privs: String,
    pub command_time_limit: std::time::Duration,
    /// Environment variables passed on to commands from the mail
    /// system's own (and MAIL_CONFIG, the configuration directory).
    pub export_environment: Vec<String>,
    pub config_directory: PathBuf,
}

/// Like [`maps`], for tables that may well be missing where Rostfix runs
/// (alias_maps defaults to `hash:/etc/aliases, nis:mail.aliases`): one
/// that cannot be opened makes its lookups wait, with a warning, instead
/// of stopping the start.
fn deferring_maps(cf: &Config, name: &str) -> Result<Maps, String> {
    open_maps(cf, name, true)
}

/// The transport settings, and the services master.cf defines.
fn routing(cf: &Config) -> Result<Routing, String> {
    let e = |e: ConfigError| e.to_string();
    let text = |name: &str| cf.string(name).map_err(e);
    let parents = list(cf, "parent_domain_matches_subdomains").map_err(e)?;
    Ok(Routing {
        local_transport: text("local_transport")?,
        virtual_transport: text("virtual_transport")?,
        relay_transport: text("relay_transport")?,
        default_transport: text("default_transport")?,
        relayhost: text("relayhost")?,
        sender_dependent_relayhost_maps: maps(cf, "sender_dependent_relayhost_maps")?,
        empty_address_relayhost_key: text("empty_address_relayhost_maps_lookup_key")?,
        transport_maps: maps(cf, "transport_maps")?,
        transport_order: OrderContext {
            recipient_delimiter: text("recipient_delimiter")?,
            parent_matches_subdomains: parents.iter().any(|p| p == "transport_maps"),
        },
        services: cf
            .master
            .iter()
            .flat_map(|m| &m.services)
            .filter(|svc| svc.kind == rostfix_config::master_cf::ServiceType::Unix)
            .map(|svc| {
                // The log's program name: the service's own syslog_name
                // (`-o syslog_name=postfix/$service_name`) and its command.
                let syslog = cf.for_service(svc).string("syslog_name").map_err(e)?;
                Ok(crate::resolve::Service {
                    name: svc.name.clone(),
                    command: svc.command.clone(),
                    tag: format!("{syslog}/{}", svc.command),
                })
            })
            .collect::<Result<_, String>>()?,
    })
}

/// Whether `site` is one of `domains` or a subdomain of one (ETRN's
/// `@domain` and `#name` forms are taken as the domain).
pub fn flushable(domains: &[String], site: &str) -> bool {
    let site = site
        .trim_start_matches(['@', '#'])
        .trim_end_matches('.')
        .to_ascii_lowercase();
    !site.is_empty()
        && domains.iter().any(|d| {
            site == *d
                || (site.len() > d.len()
                    && site.ends_with(d.as_str())
                    && site[..site.len() - d.len()].ends_with('.'))
        })
}

/// The pipe services of master.cf.
fn pipes(cf: &Config) -> Result<Vec<crate::pipe_agent::Pipe>, String> {
    let privileged = nix::unistd::geteuid().is_root();
    cf.master
        .iter()
        .flat_map(|m| &m.services)
        .filter(|svc| {
            svc.command == "pipe" && svc.kind == rostfix_config::master_cf::ServiceType::Unix
        })
        .map(|svc| {
            let view = cf.for_service(svc);
            crate::pipe_agent::Pipe::from_config(&view, &svc.name, &svc.args, privileged).or_else(
                |m| {
                    let why = format!("master.cf service {} (line {}): {m}", svc.name, svc.line);
                    eprintln!("warning: {why}; mail for it will be deferred");
                    let syslog = view.string("syslog_name").map_err(|e| e.to_string())?;
                    Ok(crate::pipe_agent::Pipe::broken(
                        &svc.name,
                        format!("{syslog}/pipe"),
                        why,
                    ))
                },
            )
        })
        .collect()
}

/// The smtp and lmtp services of master.cf, each with its settings, and
/// the resolver they share.
fn clients(cf: &Config) -> Result<crate::smtp::Clients, String> {
    let e = |e: ConfigError| e.to_string();
    let mut out = Vec::new();
    for svc in cf.master.iter().flat_map(|m| &m.services) {
        let lmtp = match svc.command.as_str() {
            "smtp" => false,
            "lmtp" => true,
            _ => continue,
        };
        if svc.kind != rostfix_config::master_cf::ServiceType::Unix {
            continue;
        }
        let view = cf.for_service(svc);
        out.push(
            crate::smtp::Client::from_config(&view, &svc.name, lmtp)
                .map_err(|m| format!("master.cf service {}: {m}", svc.name))?,
        );
    }
    let use_dns = !cf.bool("disable_dns_lookups").map_err(e)?
        && list(cf, "smtp_host_lookup")
            .map_err(e)?
            .iter()
            .any(|l| l.eq_ignore_ascii_case("dns"));
    let servers = list(cf, "rostfix_dns_servers").map_err(e)?;
    let probe = cf.string("dnssec_probe").map_err(e)?;
    let dns = crate::smtp::dns::Dns::new(use_dns, &servers, &probe)?;
    Ok(crate::smtp::Clients::new(out, dns))
}

/// A mailbox lock setting with the delivery lock timing.
fn locking(cf: &Config, name: &str) -> Result<Locking, String> {
    let e = |e: ConfigError| e.to_string();
    Ok(Locking {
        methods: LockMethods::parse(&list(cf, name).map_err(e)?)
            .map_err(|w| format!("{name}: {w}"))?,
        attempts: u32::try_from(cf.int("deliver_lock_attempts").map_err(e)?.max(1)).unwrap_or(1),
        delay: std::time::Duration::from_secs(cf.time("deliver_lock_delay").map_err(e)?),
        stale: std::time::Duration::from_secs(cf.time("stale_lock_time").map_err(e)?),
    })
}

impl Settings {
    /// Resolves the configuration (with a service's `-o` overrides applied).
    pub fn resolve(cf: &Config) -> Result<Arc<Settings>, String> {
        let e = |e: ConfigError| e.to_string();
        let myhostname = cf.string("myhostname").map_err(e)?;
        let mut mynetworks = Vec::new();
        for n in list(cf, "mynetworks").map_err(e)? {
            match Network::parse(&n) {
                Some(net) => mynetworks.push(net),
                None => return Err(format!("mynetworks: bad network: {n}")),
            }
        }
        let interfaces = list(cf, "inet_interfaces").map_err(e)?;
        let inet_interface_addrs = if interfaces.iter().any(|i| i.eq_ignore_ascii_case("all")) {
            rostfix_config::system::interface_addrs()
                .into_iter()
                .map(|a| a.addr)
                .collect()
        } else {
            interfaces
                .iter()
                .filter_map(|i| match i.as_str() {
                    "localhost" | "loopback-only" => {
                        Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                    }
                    other => other
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse()
                        .ok(),
                })
                .collect()
        };
        let session = session_config(cf)?;
        let virtual_mailbox_limit = cf.int("virtual_mailbox_limit").map_err(e)?.max(0) as u64;
        let virtual_mailbox_domains = domains(cf, "virtual_mailbox_domains").map_err(e)?;
        // virtual(8) refuses to run with these (Postfix's master then
        // throttles it and mail waits in silence); here they stop the
        // start or the reload, with the reason.
        if virtual_mailbox_limit > 0 && !virtual_mailbox_domains.is_empty() {
            if session.message_size_limit == 0 {
                return Err("configuration error: virtual_mailbox_limit is limited but message_size_limit is unlimited".into());
            }
            if virtual_mailbox_limit < session.message_size_limit {
                return Err(
                    "configuration error: virtual_mailbox_limit is smaller than message_size_limit"
                        .into(),
                );
            }
        }
        let bare = cf.string("smtpd_forbid_bare_newline").map_err(e)?;
        let bare_newline = BareNewline::parse(&bare)
            .ok_or_else(|| format!("smtpd_forbid_bare_newline: bad value: {bare}"))?;
        Ok(Arc::new(Settings {
            mail_name: cf.string("mail_name").map_err(e)?,
            syslog_name: cf.string("syslog_name").map_err(e)?,
            queue_directory: PathBuf::from(cf.string("queue_directory").map_err(e)?),
            queue_pool: rostfix_queue::Pool::new(Path::new(
                &cf.string("queue_directory").map_err(e)?,
            )),
            long_queue_ids: cf.bool("enable_long_queue_ids").map_err(e)?,
            session,
            bare_newline,
            mynetworks,
            inet_interface_addrs,
            mydestination: domains(cf, "mydestination").map_err(e)?,
            virtual_mailbox_domains,
            relay_domains: domains(cf, "relay_domains").map_err(e)?,
            fast_flush_domains: domains(cf, "fast_flush_domains").map_err(e)?,
            access: crate::smtpd_check::Access::load(cf)?,
            reject_unlisted_recipient: cf.bool("smtpd_reject_unlisted_recipient").map_err(e)?,
            virtual_mailbox_maps: maps(cf, "virtual_mailbox_maps")?,
            virtual_uid_maps: maps(cf, "virtual_uid_maps")?,
            virtual_gid_maps: maps(cf, "virtual_gid_maps")?,
            virtual_minimum_uid: u32::try_from(cf.int("virtual_minimum_uid").map_err(e)?.max(1))
                .unwrap_or(u32::MAX),
            privileged: nix::unistd::geteuid().is_root(),
            virtual_mailbox_base: PathBuf::from(cf.string("virtual_mailbox_base").map_err(e)?),
            virtual_mailbox_limit,
            virtual_mailbox_lock: locking(cf, "virtual_mailbox_lock")?,
            virtual_alias_maps: maps(cf, "virtual_alias_maps")?,
            relocated_maps: maps(cf, "relocated_maps")?,
            virtual_alias_recursion_limit: cf
                .int("virtual_alias_recursion_limit")
                .map_err(e)?
                .max(1) as usize,
            virtual_alias_expansion_limit: cf
                .int("virtual_alias_expansion_limit")
                .map_err(e)?
                .max(1) as usize,
            hopcount_limit: cf.int("hopcount_limit").map_err(e)?.max(1) as u64,
            bounce_size_limit: cf.int("bounce_size_limit").map_err(e)?.max(0) as usize,
            maximal_queue_lifetime: cf.time("maximal_queue_lifetime").map_err(e)?,
            delay_warning_time: cf.time("delay_warning_time").map_err(e)?,
            notify_classes: list(cf, "notify_classes").map_err(e)?,
            bounce_notice_recipient: cf.string("bounce_notice_recipient").map_err(e)?,
            double_bounce_notice_recipient: cf.string("2bounce_notice_recipient").map_err(e)?,
            delay_notice_recipient: cf.string("delay_notice_recipient").map_err(e)?,
            double_bounce_sender: cf.string("double_bounce_sender").map_err(e)?,
            bounce_queue_lifetime: cf.time("bounce_queue_lifetime").map_err(e)?,
            message_drop_headers: list(cf, "message_drop_headers")
                .map_err(e)?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            header_size_limit: cf.int("header_size_limit").map_err(e)?.max(1) as usize,
            mydomain: cf.string("mydomain").map_err(e)?.to_ascii_lowercase(),
            append_at_myorigin: cf.bool("append_at_myorigin").map_err(e)?,
            append_dot_mydomain: cf.bool("append_dot_mydomain").map_err(e)?,
            swap_bangpath: cf.bool("swap_bangpath").map_err(e)?,
            allow_percent_hack: cf.bool("allow_percent_hack").map_err(e)?,
            myorigin: cf
                .string("myorigin")
                .map_err(e)?
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            rewriting: rewriting(cf)?,
            routing: routing(cf)?,
            clients: clients(cf)?,
            pipes: pipes(cf)?,
            smtpd_tls: None,
            smtpd_sasl: None,
            local: LocalSettings {
                alias_maps: deferring_maps(cf, "alias_maps")?,
                home_mailbox: cf.string("home_mailbox").map_err(e)?,
                mail_spool_directory: cf.string("mail_spool_directory").map_err(e)?,
                mailbox_size_limit: cf.int("mailbox_size_limit").map_err(e)?.max(0) as u64,
                mailbox_delivery_lock: locking(cf, "mailbox_delivery_lock")?,
                forward_path: cf.string("forward_path").map_err(e)?,
                forward_expansion_filter: cf.string("forward_expansion_filter").map_err(e)?,
                luser_relay: cf.string("luser_relay").map_err(e)?,
                mailbox_transport: cf.string("mailbox_transport").map_err(e)?,
                fallback_transport: cf.string("fallback_transport").map_err(e)?,
                mailbox_command_maps: maps(cf, "mailbox_command_maps")?,
                mailbox_command: cf.string("mailbox_command").map_err(e)?,
                allow_mail_to_commands: list(cf, "allow_mail_to_commands").map_err(e)?,
                allow_mail_to_files: list(cf, "allow_mail_to_files").map_err(e)?,
                default_privs: cf.string("default_privs").map_err(e)?,
                command_time_limit: std::time::Duration::from_secs(
                    cf.time("command_time_limit").map_err(e)?,
                ),
                export_environment: list(cf, "export_environment").map_err(e)?,
                config_directory: cf.config_directory.clone(),
            },
            local_recipient_maps: {
                let m = maps(cf, "local_recipient_maps")?;
                (!m.is_empty()).then_some(m)
            },
            always_add_missing_headers: cf.bool("always_add_missing_headers").map_err(e)?,
            minimal_backoff_time: cf.time("minimal_backoff_time").map_err(e)?,
            maximal_backoff_time: cf.time("maximal_backoff_time").map_err(e)?,
            queue_run_delay: cf.time("queue_run_delay").map_err(e)?,
            smtpd_timeout: std::time::Duration::from_secs(
                cf.time("smtpd_timeout").map_err(e)?.max(1),
            ),
            smtpd_error_sleep_time: std::time::Duration::from_secs(
                cf.time("smtpd_error_sleep_time").map_err(e)?,
            ),
            delivery_concurrency: transport_int(cf, "virtual", "destination_concurrency_limit")?
                .max(1) as usize,
            order: OrderContext {
                recipient_delimiter: cf.string("recipient_delimiter").map_err(e)?,
                parent_matches_subdomains: false,
            },
            maildir_host: maildir_host(),
            myhostname,
        }))
    }

    /// A smtpd service's settings with its TLS (loaded while the process
    /// could still read the key): STARTTLS offered or required, or TLS
    /// from the first byte.
    pub fn with_tls(
        cf: &Config,
        tls: Option<Arc<crate::tls_server::ServerTls>>,
    ) -> Result<Arc<Settings>, String> {
        let mut s = Arc::try_unwrap(Settings::resolve(cf)?)
            .map_err(|_| "settings shared before use".to_string())?;
        if let Some(t) = &tls {
            s.session.starttls = !t.wrapper;
            s.session.tls_required = !t.wrapper && t.level == crate::tls_server::Level::Encrypt;
        }
        s.smtpd_tls = tls;
        s.smtpd_sasl = crate::sasl_server::SaslServer::load(cf, &s.queue_directory)?;
        Ok(Arc::new(s))
    }

    /// Whether ETRN and postqueue -s may flush mail for `site`: it is in
    /// fast_flush_domains, or a subdomain of one.
    pub fn flushable(&self, site: &str) -> bool {
        flushable(&self.fast_flush_domains, site)
    }

    pub fn in_mynetworks(&self, ip: IpAddr) -> bool {
        self.mynetworks.iter().any(|n| n.contains(ip))
    }
}

/// The SMTP session's view of main.cf (smtpd, and `sendmail -bs`).
pub fn session_config(cf: &Config) -> Result<SessionConfig, String> {
    let e = |e: ConfigError| e.to_string();
    Ok(SessionConfig {
        myhostname: cf.string("myhostname").map_err(e)?,
        banner: cf.string("smtpd_banner").map_err(e)?,
        helo_required: cf.bool("smtpd_helo_required").map_err(e)?,
        message_size_limit: cf.int("message_size_limit").map_err(e)?.max(0) as u64,
        recipient_limit: cf.int("smtpd_recipient_limit").map_err(e)?.max(1) as usize,
        disable_vrfy: cf.bool("disable_vrfy_command").map_err(e)?,
        strict_rfc821: cf.bool("strict_rfc821_envelopes").map_err(e)?,
        soft_error_limit: cf.int("smtpd_soft_error_limit").map_err(e)?.max(0) as u32,
        hard_error_limit: cf.int("smtpd_hard_error_limit").map_err(e)?.max(1) as u32,
        junk_command_limit: cf.int("smtpd_junk_command_limit").map_err(e)?.max(0) as u32,
        recipient_overshoot_limit: cf.int("smtpd_recipient_overshoot_limit").map_err(e)?.max(0)
            as u32,
        // Set with the service's TLS (Settings::with_tls).
        starttls: false,
        tls_required: false,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_flush_sites() {
        let d = vec!["example.net".to_string()];
        assert!(flushable(&d, "example.net"));
        assert!(flushable(&d, "@Example.NET"));
        assert!(flushable(&d, "mx.example.net"));
        assert!(!flushable(&d, "badexample.net"));
        assert!(!flushable(&d, "other.example"));
        assert!(!flushable(&d, ""));
    }

    use super::*;

    #[test]
    fn networks() {
        let n = Network::parse("127.0.0.0/8").unwrap();
        assert!(n.contains("127.1.2.3".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("10.0.0.1".parse().unwrap()));
        assert!(
            Network::parse("[::1]/128")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        assert!(Network::parse("127.0.0.1/33").is_none());
    }
}

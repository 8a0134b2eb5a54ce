//! smtp(8) and lmtp(8): delivery to another server. One client speaks
//! both protocols; a master.cf service whose command is `smtp` or `lmtp`
//! is a transport with its own settings (its `-o` overrides applied, the
//! `lmtp_` parameters for lmtp).
//!
//! qmgr hands a message's recipients for one next hop over together
//! ([`deliver`]): they go in one SMTP transaction. Connections to a next
//! hop are limited by its destination concurrency limit, and kept open
//! for the next message when more mail for the same next hop waits or
//! is being delivered (smtp_connection_cache_on_demand) or the next hop
//! is listed in
//! smtp_connection_cache_destinations.

pub mod conn;
pub mod dane;
pub mod dns;
pub mod nexthop;
pub mod sasl;
mod session;
pub mod tls;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rostfix_config::{Config, ConfigError, value};
use rostfix_maps::order::Maps;
use rostfix_queue::file::Dsn;

use crate::settings::Settings;
use crate::virtual_agent::Failure;
use conn::Conn;
use dns::{Dns, Families};

/// The time limits of a conversation (`smtp_*_timeout`).
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub helo: Duration,
    pub starttls: Duration,
    pub mail: Duration,
    pub rcpt: Duration,
    pub data_init: Duration,
    pub data_xfer: Duration,
    pub data_done: Duration,
    pub quit: Duration,
}

/// What DANE does for a host named by an MX lookup that was not secure
/// (smtp_tls_dane_insecure_mx_policy): its TLSA records still count
/// (`dane`), or TLS without them (`may`, `encrypt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsecureMx {
    May,
    Encrypt,
    Dane,
}

impl InsecureMx {
    fn parse(s: &str) -> Result<InsecureMx, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "may" => Ok(InsecureMx::May),
            "encrypt" => Ok(InsecureMx::Encrypt),
            "dane" => Ok(InsecureMx::Dane),
            other => Err(format!("unknown policy: {other}")),
        }
    }
}

/// One smtp or lmtp transport's settings.
#[derive(Debug)]
pub struct Client {
    /// The master.cf service name (the transport: `smtp`, `relay`, ...).
    pub service: String,
    pub lmtp: bool,
    /// The log's program name: the service's syslog_name and `smtp` or
    /// `lmtp` (`postfix/relay/smtp`).
    pub log_tag: String,
    pub helo_name: String,
    pub timeouts: Timeouts,
    pub default_port: u16,
    pub skip_5xx_greeting: bool,
    /// Next hops to try when the real one cannot be reached.
    pub fallback_relay: Vec<String>,
    pub families: Families,
    pub bind_address: Option<IpAddr>,
    pub mx_address_limit: usize,
    pub tls_level: tls::Level,
    /// smtp_dns_support_level = dnssec: DANE can be had.
    pub dnssec: bool,
    /// smtp_tls_dane_insecure_mx_policy.
    pub dane_insecure_mx: InsecureMx,
    pub tls_policy_maps: Maps,
    pub tls: tls::Tls,
    pub sasl_enable: bool,
    pub sasl_password_maps: Maps,
    pub sasl_security: sasl::Security,
    pub sasl_tls_security: sasl::Security,
    pub sasl_mechanism_filter: Vec<String>,
    pub sender_dependent_authentication: bool,
    pub generic_maps: Maps,
    pub cache_on_demand: bool,
    pub cache_destinations: Vec<String>,
    pub cache_time_limit: Duration,
    /// Recipients per transaction (`<service>_destination_recipient_limit`).
    pub recipient_limit: usize,
    /// Connections per next hop (`<service>_destination_concurrency_limit`).
    pub concurrency_limit: usize,
    /// Connections a next hop starts with (initial_destination_concurrency):
    /// each delivery that succeeds allows one more, up to the limit (qmgr's
    /// slow start).
    pub initial_concurrency: usize,
}

impl Client {
    /// The settings of master.cf service `service` (its per-service view
    /// `cf`), for `lmtp` or smtp.
    pub fn from_config(cf: &Config, service: &str, lmtp: bool) -> Result<Client, String> {
        let e = |e: ConfigError| e.to_string();
        let p = if lmtp { "lmtp" } else { "smtp" };
        let name = |n: &str| format!("{p}_{n}");
        let text = |n: &str| cf.string(&name(n)).map_err(e);
        let secs = |n: &str| -> Result<Duration, String> {
            Ok(Duration::from_secs(cf.time(&name(n)).map_err(e)?.max(1)))
        };
        let list = |n: &str| -> Result<Vec<String>, String> {
            Ok(value::split_list(&text(n)?)
                .into_iter()
                .map(str::to_string)
                .collect())
        };
        let open = |n: &str| crate::settings::maps(cf, &name(n));
        let per_transport = |what: &str| -> Result<usize, String> {
            let v =
                crate::settings::transport_int(cf, service, &format!("destination_{what}_limit"))?;
            Ok(usize::try_from(v).unwrap_or(0))
        };
        let protocols = value::split_list(&cf.string("inet_protocols").map_err(e)?)
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>();
        let families = Families {
            ipv4: protocols.iter().any(|p| p == "ipv4" || p == "all"),
            ipv6: protocols.iter().any(|p| p == "ipv6" || p == "all"),
        };
        let mut level = text("tls_security_level")?;
        if level.is_empty() {
            // The legacy switches.
            level = if cf.bool(&name("enforce_tls")).map_err(e)? {
                "encrypt".into()
            } else if cf.bool(&name("use_tls")).map_err(e)? {
                "may".into()
            } else {
                "none".into()
            };
        }
        let (tls_level, note) = tls::Level::parse(&level)
            .map_err(|m| format!("{}: {m}", name("tls_security_level")))?;
        if let Some(note) = note {
            eprintln!("warning: {}: {note}", name("tls_security_level"));
        }
        let opportunistic = tls::protocol_versions(&text("tls_protocols")?)
            .map_err(|m| format!("{}: {m}", name("tls_protocols")))?;
        let mandatory = tls::protocol_versions(&text("tls_mandatory_protocols")?)
            .map_err(|m| format!("{}: {m}", name("tls_mandatory_protocols")))?;
        let roots = tls::anchors(&text("tls_CAfile")?, &text("tls_CApath")?)
            .map_err(|m| format!("{}: {m}", name("tls_CAfile")))?;
        let tls = tls::Tls::new(
            roots,
            &opportunistic,
            &mandatory,
            !text("tls_servername")?.is_empty(),
        )?;
        let bind = text("bind_address")?;
        let bind_address = if bind.is_empty() {
            None
        } else {
            Some(
                bind.parse()
                    .map_err(|_| format!("{}: bad address: {bind}", name("bind_address")))?,
            )
        };
        let port = text("tcp_port")?;
        let default_port = nexthop::service_port(&port)
            .ok_or_else(|| format!("{}: unknown service: {port}", name("tcp_port")))?;
        Ok(Client {
            service: service.to_string(),
            lmtp,
            log_tag: format!("{}/{p}", cf.string("syslog_name").map_err(e)?),
            helo_name: text(if lmtp { "lhlo_name" } else { "helo_name" })?,
            timeouts: Timeouts {
                connect: secs("connect_timeout")?,
                helo: secs(if lmtp { "lhlo_timeout" } else { "helo_timeout" })?,
                starttls: secs("starttls_timeout")?,
                mail: secs("mail_timeout")?,
                rcpt: secs("rcpt_timeout")?,
                data_init: secs("data_init_timeout")?,
                data_xfer: secs("data_xfer_timeout")?,
                data_done: secs("data_done_timeout")?,
                quit: secs("quit_timeout")?,
            },
            default_port,
            skip_5xx_greeting: !lmtp && cf.bool("smtp_skip_5xx_greeting").map_err(e)?,
            fallback_relay: list("fallback_relay")?,
            families,
            bind_address,
            mx_address_limit: usize::try_from(cf.int(&name("mx_address_limit")).map_err(e)?)
                .unwrap_or(0),
            tls_level,
            dnssec: text("dns_support_level")?.eq_ignore_ascii_case("dnssec"),
            dane_insecure_mx: if lmtp {
                InsecureMx::May
            } else {
                InsecureMx::parse(&cf.string("smtp_tls_dane_insecure_mx_policy").map_err(e)?)
                    .map_err(|m| format!("smtp_tls_dane_insecure_mx_policy: {m}"))?
            },
            tls_policy_maps: open("tls_policy_maps")?,
            tls,
            sasl_enable: cf.bool(&name("sasl_auth_enable")).map_err(e)?,
            sasl_password_maps: open("sasl_password_maps")?,
            sasl_security: sasl::Security::parse(&list("sasl_security_options")?),
            sasl_tls_security: sasl::Security::parse(&list("sasl_tls_security_options")?),
            sasl_mechanism_filter: list("sasl_mechanism_filter")?,
            sender_dependent_authentication: cf
                .bool(&name("sender_dependent_authentication"))
                .map_err(e)?,
            generic_maps: open("generic_maps")?,
            cache_on_demand: cf.bool(&name("connection_cache_on_demand")).map_err(e)?,
            cache_destinations: list("connection_cache_destinations")?,
            cache_time_limit: secs("connection_cache_time_limit")?,
            recipient_limit: per_transport("recipient")?,
            concurrency_limit: per_transport("concurrency")?.max(1),
            initial_concurrency: usize::try_from(
                cf.int("initial_destination_concurrency").map_err(e)?,
            )
            .unwrap_or(1)
            .max(1),
        })
    }
}

/// The smtp and lmtp transports, the resolver they share, and the state
/// of each next hop (concurrency, cached connections).
#[derive(Debug)]
pub struct Clients {
    by_service: HashMap<String, Arc<Client>>,
    pub dns: Dns,
    destinations: Mutex<HashMap<(String, String), Arc<Destination>>>,
}

/// A next hop of a transport.
#[derive(Debug)]
struct Destination {
    /// Deliveries at once: from the initial concurrency up to the
    /// destination concurrency limit (`allowed` counts them).
    slots: tokio::sync::Semaphore,
    allowed: AtomicUsize,
    /// Deliveries waiting for a slot: more mail for this next hop.
    waiting: AtomicUsize,
    /// Deliveries holding a slot.
    busy: AtomicUsize,
    /// Open connections, with the time each was last used.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// A task closes the idle connections that time out.
    sweeping: std::sync::atomic::AtomicBool,
}

impl Clients {
    pub fn new(clients: Vec<Client>, dns: Dns) -> Clients {
        Clients {
            by_service: clients
                .into_iter()
                .map(|c| (c.service.clone(), Arc::new(c)))
                .collect(),
            dns,
            destinations: Mutex::default(),
        }
    }

    /// The client of transport `service`, if master.cf runs smtp or lmtp
    /// for it.
    pub fn get(&self, service: &str) -> Option<&Arc<Client>> {
        self.by_service.get(service)
    }

    fn destination(&self, client: &Client, nexthop: &str) -> Arc<Destination> {
        let mut all = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.entry((client.service.clone(), nexthop.to_ascii_lowercase()))
            .or_insert_with(|| {
                let start = client.initial_concurrency.min(client.concurrency_limit);
                Arc::new(Destination {
                    slots: tokio::sync::Semaphore::new(start),
                    allowed: AtomicUsize::new(start),
                    waiting: AtomicUsize::new(0),
                    busy: AtomicUsize::new(0),
                    idle: Mutex::default(),
                    sweeping: Default::default(),
                })
            })
            .clone()
    }
}

/// The message, as the client sends it.
#[derive(Debug)]
pub struct Message<'a> {
    pub id: &'a str,
    pub sender: &'a str,
    /// RET and ENVID (queue file attributes `dsn_ret`, `dsn_envid`).
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// The content, lines ending in `\n`.
    pub body: &'a [u8],
    /// 8-bit content: BODY=8BITMIME was declared, or a MIME header
    /// says 8bit (what Postfix's cleanup records as the encoding).
    pub eight_bit: bool,
}

impl<'a> Message<'a> {
    /// The message as the queue file holds it: its `dsn_ret`, `dsn_envid`
    /// and `encoding` attributes.
    pub fn queued(
        id: &'a str,
        sender: &'a str,
        attrs: &'a [(String, String)],
        body: &'a [u8],
    ) -> Message<'a> {
        let attr = |n| rostfix_queue::file::attr(attrs, n);
        Message {
            id,
            sender,
            ret: attr("dsn_ret"),
            envid: attr("dsn_envid"),
            body,
            eight_bit: eight_bit(attr("encoding") == Some("8bit"), body),
        }
    }
}

/// Whether content is 8-bit MIME as Postfix's cleanup decides it:
/// declared with BODY=8BITMIME (`declared`), or 8-bit bytes under a
/// `Content-Transfer-Encoding: 8bit` (or binary) header. 8-bit bytes
/// without MIME do not count.
pub fn eight_bit(declared: bool, body: &[u8]) -> bool {
    if declared {
        return true;
    }
    // is_ascii looks at a word at a time: this runs over every queued
    // message qmgr reads.
    if body.is_ascii() {
        return false;
    }
    const CTE: &[u8] = b"content-transfer-encoding:";
    body.split(|&b| b == b'\n').any(|line| {
        line.len() > CTE.len() && line[..CTE.len()].eq_ignore_ascii_case(CTE) && {
            let v = String::from_utf8_lossy(&line[CTE.len()..])
                .trim()
                .to_ascii_lowercase();
            v == "8bit" || v == "binary"
        }
    })
}

/// A recipient handed to the client.
#[derive(Debug, Clone, Copy)]
pub struct Rcpt<'a> {
    pub address: &'a str,
    pub dsn: &'a Dsn,
}

/// What became of one recipient.
#[derive(Debug)]
pub struct Outcome {
    /// The log's relay field: `host[addr]:port`, or `none`.
    pub relay: String,
    /// The server's reply that took it (`250 2.0.0 Ok: queued as ...`).
    pub result: Result<String, Failure>,
    /// Seconds to set up the connection (the log's third delay).
    pub setup: f64,
    /// The server took the message and speaks DSN: notifications the
    /// sender asked for are its business now.
    pub dsn_passed: bool,
}

/// Delivers `message` to `recipients` through `client` to `nexthop`:
/// one outcome per recipient, in order. Runs on a blocking thread of the
/// engine's runtime.
pub fn deliver(
    s: &Settings,
    client: &Client,
    message: &Message<'_>,
    nexthop: &str,
    recipients: &[Rcpt<'_>],
    log: &crate::log::Log,
) -> Vec<Outcome> {
    let handle = tokio::runtime::Handle::current();
    let dest = s.clients.destination(client, nexthop);
    handle.block_on(async {
        dest.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = dest.slots.acquire().await;
        dest.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit;
        let cached = take_idle(&dest, client);
        dest.busy.fetch_add(1, Ordering::SeqCst);
        let (outcomes, conn) =
            session::deliver(s, client, message, nexthop, recipients, cached, log).await;
        // Mail for this next hop waits, or other deliveries to it are
        // under way: a steady flow, where the next message will want
        // this connection (the sweeper closes it if none does).
        let others = dest.busy.fetch_sub(1, Ordering::SeqCst) > 1;
        let demand = others || dest.waiting.load(Ordering::SeqCst) > 0;
        // Slow start: a next hop that took mail may have one more
        // connection, up to its limit.
        if outcomes.iter().any(|o| o.result.is_ok())
            && dest
                .allowed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < client.concurrency_limit).then_some(n + 1)
                })
                .is_ok()
        {
            dest.slots.add_permits(1);
        }
        if let Some(conn) = conn {
            // A session authenticated for one sender is not another's.
            let keep = !client.sender_dependent_authentication && demand && client.cache_on_demand
                || !client.sender_dependent_authentication
                    && client
                        .cache_destinations
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(cache_name(nexthop)));
            if keep {
                put_idle(&dest, client, conn);
            } else {
                session::quit(conn, client).await;
            }
        }
        outcomes
    })
}

/// The name smtp_connection_cache_destinations lists a next hop by: a
/// domain or relay host without `[]` or port, a UNIX socket's path
/// without `unix:` (postconf(5)).
fn cache_name(nexthop: &str) -> &str {
    let hop = nexthop.trim();
    if let Some(path) = hop.strip_prefix("unix:") {
        return path;
    }
    let hop = hop.strip_prefix("inet:").unwrap_or(hop);
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    hop.split(':').next().unwrap_or(hop)
}

/// A cached connection that is not too old, if there is one.
fn take_idle(dest: &Destination, client: &Client) -> Option<Conn> {
    let mut idle = dest.idle.lock().unwrap_or_else(PoisonError::into_inner);
    while let Some((conn, since)) = idle.pop() {
        if since.elapsed() < client.cache_time_limit {
            return Some(conn);
        }
        // Too old: closed as it goes.
        drop(conn);
    }
    None
}

/// Keeps a connection for the next delivery to the same next hop; it
/// is closed (QUIT) when nobody took it within the cache time limit. One
/// task per next hop does the closing, while it has idle connections.
fn put_idle(dest: &Arc<Destination>, client: &Client, conn: Conn) {
    dest.idle
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((conn, Instant::now()));
    if dest.sweeping.swap(true, Ordering::SeqCst) {
        return;
    }
    let dest = dest.clone();
    let limit = client.cache_time_limit;
    let quit = client.timeouts.quit;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(limit / 2).await;
            let (expired, empty) = {
                let mut idle = dest.idle.lock().unwrap_or_else(PoisonError::into_inner);
                let (old, young): (Vec<_>, Vec<_>) =
                    idle.drain(..).partition(|(_, t)| t.elapsed() >= limit);
                *idle = young;
                if idle.is_empty() {
                    // Set under the lock: a put after this starts a new task.
                    dest.sweeping.store(false, Ordering::SeqCst);
                }
                (old, idle.is_empty())
            };
            for (c, _) in expired {
                session::quit_with(c, quit).await;
            }
            if empty {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_destination_names() {
        assert_eq!(cache_name("[127.0.0.1]:2525"), "127.0.0.1");
        assert_eq!(cache_name("[::1]:25"), "::1");
        assert_eq!(cache_name("example.com"), "example.com");
        assert_eq!(cache_name("relay.example.com:587"), "relay.example.com");
        assert_eq!(cache_name("unix:/var/run/lmtp"), "/var/run/lmtp");
        assert_eq!(cache_name("inet:[10.0.0.1]:24"), "10.0.0.1");
    }

    #[test]
    fn client_settings_from_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), "relayhost = [127.0.0.1]:2525\n").unwrap();
        std::fs::write(dir.path().join("master.cf"), "").unwrap();
        let cf = Config::load(Some(dir.path())).unwrap();
        let c = Client::from_config(&cf, "smtp", false).unwrap();
        assert_eq!(c.default_port, 25);
        assert_eq!(c.tls_level, tls::Level::None);
        assert_eq!(c.recipient_limit, 50);
        assert_eq!(c.concurrency_limit, 20);
        assert_eq!(c.timeouts.connect, Duration::from_secs(30));
        assert!(c.skip_5xx_greeting);
        let l = Client::from_config(&cf, "lmtp", true).unwrap();
        assert_eq!(l.default_port, 24);
        assert!(!l.skip_5xx_greeting);
    }
}

//! Name service for the SMTP client: MX and address lookups through
//! hickory-resolver (the system's resolv.conf, or the servers
//! `rostfix_dns_servers` names, so that tests can run a DNS server of
//! their own on loopback), or the system's resolver (getaddrinfo) where
//! `smtp_host_lookup` says `native` or `disable_dns_lookups` is set.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

/// Which address families to use (inet_protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}

/// Why a name did not resolve, in Postfix's words (`Host not found`,
/// `Host not found, try again`): permanent or for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// The name does not exist (NXDOMAIN): a bounce.
    NotFound(String),
    /// The name exists without records of the type asked: not an error
    /// for MX (the A record is used then).
    NoData,
    /// The lookup failed for now (server failure, time-out).
    Temporary(String),
}

impl Failed {
    /// How Postfix reports a failed lookup in a reason or a warning:
    /// `Host or domain name not found.` and the name service's words.
    pub fn explained(&self) -> String {
        match self {
            Failed::NotFound(why) | Failed::Temporary(why) => {
                format!("Host or domain name not found. {why}")
            }
            Failed::NoData => "Host or domain name not found.".into(),
        }
    }
}

/// The resolver, made once per configuration.
pub struct Dns {
    resolver: Option<TokioResolver>,
    /// The servers asked directly for lookups whose security matters.
    validating: Option<Validating>,
}

/// DNSSEC as Postfix has it (smtp_dns_support_level = dnssec): Rostfix
/// does not validate signatures itself; it asks with the DO bit and
/// believes the recursive resolver's AD bit, from servers it trusts to
/// validate: those `rostfix_dns_servers` names, or resolv.conf's when it
/// says `options trust-ad` (glibc's rule: without it, AD is cleared).
#[derive(Debug)]
struct Validating {
    servers: Vec<SocketAddr>,
    trust_ad: bool,
    /// dnssec_probe: the query that tells whether the resolver validates
    /// at all (`ns:.`), as written and parsed; none when empty.
    probe: Option<(String, String, RecordType)>,
    /// PROBE_NOT_DUE, PROBE_DUE or PROBE_DONE (once per process, as
    /// Postfix).
    probe_state: AtomicU8,
}

/// Every answer so far was secure.
const PROBE_NOT_DUE: u8 = 0;
/// One was not: the probe is due.
const PROBE_DUE: u8 = 1;
const PROBE_DONE: u8 = 2;

/// What a DNSSEC-aware lookup found: the records of the type asked, and
/// whether the resolver vouched for them.
#[derive(Debug)]
pub struct Answer {
    pub records: Vec<RData>,
    pub secure: bool,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("dns", &self.resolver.is_some())
            .finish()
    }
}

impl Dns {
    /// `servers`: `ip` or `ip:port` (or `[ip]:port`) entries of
    /// rostfix_dns_servers; empty for resolv.conf. `use_dns`: false for
    /// native lookups only (no MX).
    pub fn new(use_dns: bool, servers: &[String], dnssec_probe: &str) -> Result<Dns, String> {
        if !use_dns {
            return Ok(Dns {
                resolver: None,
                validating: None,
            });
        }
        let mut opts = ResolverOpts::default();
        // Every lookup asks again: a test's DNS server changes its
        // answers, and Postfix keeps no cache either.
        opts.cache_size = 0;
        opts.attempts = 2;
        opts.timeout = std::time::Duration::from_secs(5);
        // The servers asked directly, and whether their AD bit counts:
        // resolv.conf's (read once the resolver is made) with its
        // trust-ad, or those named, trusted as named.
        let (builder, mut direct, trust_ad) = if servers.is_empty() {
            let builder =
                TokioResolver::builder_tokio().map_err(|e| format!("resolv.conf: {e}"))?;
            let trust_ad = std::fs::read_to_string("/etc/resolv.conf")
                .is_ok_and(|text| resolv_conf_trusts_ad(&text));
            (builder, Vec::new(), trust_ad)
        } else {
            let mut group = NameServerConfigGroup::new();
            let mut addrs = Vec::new();
            for s in servers {
                let addr = parse_server(s)
                    .ok_or_else(|| format!("rostfix_dns_servers: bad server address: {s}"))?;
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[addr.ip()],
                    addr.port(),
                    true,
                ));
                addrs.push(addr);
            }
            let builder = TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), group),
                TokioConnectionProvider::default(),
            );
            (builder, addrs, true)
        };
        let resolver = builder.with_options(opts).build();
        if direct.is_empty() {
            for ns in resolver.config().name_servers() {
                if !direct.contains(&ns.socket_addr) {
                    direct.push(ns.socket_addr);
                }
            }
        }
        let spec = dnssec_probe.trim();
        let probe = match spec.split_once(':') {
            Some((kind, name)) => {
                let rtype = kind
                    .to_ascii_uppercase()
                    .parse::<RecordType>()
                    .map_err(|_| format!("dnssec_probe: unknown record type: {kind}"))?;
                Some((spec.to_string(), name.to_string(), rtype))
            }
            None if spec.is_empty() => None,
            None => return Err(format!("dnssec_probe: expected type:name, got {spec}")),
        };
        let validating = Validating {
            servers: direct,
            trust_ad,
            probe,
            probe_state: AtomicU8::new(PROBE_NOT_DUE),
        };
        Ok(Dns {
            resolver: Some(resolver),
            validating: Some(validating),
        })
    }

    /// After the first answer that was not secure, once: the dnssec_probe
    /// query, and why it suggests the resolver does not validate (Postfix
    /// warns with it), or nothing when it came back secure.
    pub async fn dnssec_probe(&self) -> Option<String> {
        let v = self.validating.as_ref()?;
        let (spec, name, rtype) = v.probe.as_ref()?;
        v.probe_state
            .compare_exchange(PROBE_DUE, PROBE_DONE, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        match self.ask(name, *rtype).await {
            Ok(a) if a.secure => None,
            Ok(_) => Some(format!(
                "dnssec_probe '{spec}' received a response that is not DNSSEC validated"
            )),
            Err(failed) => Some(format!(
                "dnssec_probe '{spec}' received no response: {}",
                failed.explained()
            )),
        }
    }

    /// One lookup with the DO bit, asked of the servers directly: the
    /// records of `rtype` (CNAMEs the server followed are left out) and
    /// the AD bit of the answer. NXDOMAIN and NODATA are failures, as in
    /// the other lookups.
    pub async fn ask(&self, name: &str, rtype: RecordType) -> Result<Answer, Failed> {
        let kind = rtype.to_string();
        let temporary = || {
            Failed::Temporary(format!(
                "Name service error for name={name} type={kind}: Host not found, try again"
            ))
        };
        let Some(v) = &self.validating else {
            return Err(temporary());
        };
        let qname = Name::from_ascii(absolute(name)).map_err(|_| {
            Failed::NotFound(format!(
                "Name service error for name={name} type={kind}: Host not found"
            ))
        })?;
        let id = query_id();
        let mut query = Message::new();
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            // RFC 6840 section 5.7: ask for the AD bit explicitly.
            .set_authentic_data(true)
            .add_query(Query::query(qname.clone(), rtype));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true).set_max_payload(1232);
        query.set_edns(edns);
        let wire = query.to_vec().map_err(|_| temporary())?;
        // SERVFAIL and the like from one server: the next one is asked
        // (as glibc does); NXDOMAIN and answers are final.
        for _ in 0..2 {
            for server in &v.servers {
                let Ok(reply) = exchange(*server, &wire, id).await else {
                    continue;
                };
                let asked = reply
                    .queries()
                    .first()
                    .is_some_and(|q| q.name() == &qname && q.query_type() == rtype);
                if !asked {
                    continue;
                }
                let secure = v.trust_ad && reply.authentic_data();
                if !secure {
                    let _ = v.probe_state.compare_exchange(
                        PROBE_NOT_DUE,
                        PROBE_DUE,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                return match reply.response_code() {
                    ResponseCode::NoError => {
                        let records: Vec<RData> = reply
                            .answers()
                            .iter()
                            .filter(|r| r.record_type() == rtype)
                            .map(|r| r.data().clone())
                            .collect();
                        if records.is_empty() {
                            Err(Failed::NoData)
                        } else {
                            Ok(Answer { records, secure })
                        }
                    }
                    ResponseCode::NXDomain => Err(Failed::NotFound(format!(
                        "Name service error for name={name} type={kind}: Host not found"
                    ))),
                    _ => continue,
                };
            }
        }
        Err(temporary())
    }

    /// Whether MX records are looked up at all.
    pub fn has_mx(&self) -> bool {
        self.resolver.is_some()
    }

    /// The MX hosts of `domain`, lowest preference first (equal
    /// preferences in the order the server gave them).
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, Failed> {
        let Some(r) = &self.resolver else {
            return Err(Failed::NoData);
        };
        let name = absolute(domain);
        match r.mx_lookup(name.as_str()).await {
            Ok(found) => Ok(by_preference(
                found
                    .iter()
                    .map(|mx| (mx.preference(), mx.exchange().to_utf8())),
            )),
            Err(e) => Err(failure(&e, domain, "MX")),
        }
    }

    /// The addresses of `host` in the families asked for.
    pub async fn addresses(&self, host: &str, families: Families) -> Result<Vec<IpAddr>, Failed> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let Some(r) = &self.resolver else {
            return native(host, families).await;
        };
        let name = absolute(host);
        let mut out = Vec::new();
        let mut last = Failed::NoData;
        if families.ipv4 {
            match r.ipv4_lookup(name.as_str()).await {
                Ok(a) => out.extend(a.iter().map(|a| IpAddr::V4(a.0))),
                Err(e) => last = failure(&e, host, "A"),
            }
        }
        if families.ipv6 {
            match r.ipv6_lookup(name.as_str()).await {
                Ok(a) => out.extend(a.iter().map(|a| IpAddr::V6(a.0))),
                Err(e) if out.is_empty() => last = failure(&e, host, "AAAA"),
                Err(_) => {}
            }
        }
        if out.is_empty() {
            return Err(no_address(host, last));
        }
        Ok(out)
    }
}

impl Dns {
    /// The text of `name`'s first TXT record (its strings joined).
    pub async fn txt(&self, name: &str) -> Result<Option<String>, Failed> {
        let Some(r) = &self.resolver else {
            return Err(Failed::Temporary("no name service".into()));
        };
        match r.txt_lookup(absolute(name).as_str()).await {
            Ok(found) => Ok(found.iter().next().map(|t| {
                t.txt_data()
                    .iter()
                    .map(|d| String::from_utf8_lossy(d).into_owned())
                    .collect::<String>()
            })),
            Err(e) => Err(failure(&e, name, "TXT")),
        }
    }

    /// The names of `ip` (without the final dot), as the system's
    /// resolver finds them for Postfix: /etc/hosts first, then a PTR
    /// lookup. (hickory's own reverse lookup answers `localhost` for all
    /// of 127.0.0.0/8, where glibc asks the name service.)
    pub async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, Failed> {
        if let Some(name) = hosts_file_name(ip) {
            return Ok(vec![name]);
        }
        let ptr = Name::from(ip).to_ascii();
        let found = self.ask(&ptr, RecordType::PTR).await?;
        Ok(found
            .records
            .iter()
            .filter_map(|r| match r {
                RData::PTR(name) => Some(name.0.to_utf8().trim_end_matches('.').to_string()),
                _ => None,
            })
            .collect())
    }
}

impl Dns {
    /// [`Dns::mx`] with DNSSEC: the hosts, and whether the MX records
    /// were secure.
    pub async fn mx_secure(&self, domain: &str) -> Result<(Vec<(u16, String)>, bool), Failed> {
        let found = self.ask(domain, RecordType::MX).await?;
        let hosts = by_preference(found.records.iter().filter_map(|r| match r {
            RData::MX(mx) => Some((mx.preference(), mx.exchange().to_utf8())),
            _ => None,
        }));
        Ok((hosts, found.secure))
    }

    /// [`Dns::addresses`] with DNSSEC: the addresses, and whether every
    /// record set they came from was secure.
    pub async fn addresses_secure(
        &self,
        host: &str,
        families: Families,
    ) -> Result<(Vec<IpAddr>, bool), Failed> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![ip], false));
        }
        let mut out = Vec::new();
        let mut secure = true;
        let mut last = Failed::NoData;
        for (wanted, rtype) in [
            (families.ipv4, RecordType::A),
            (families.ipv6, RecordType::AAAA),
        ] {
            if !wanted {
                continue;
            }
            match self.ask(host, rtype).await {
                Ok(found) => {
                    secure &= found.secure;
                    out.extend(found.records.iter().filter_map(|r| match r {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    }));
                }
                Err(e) if out.is_empty() => last = e,
                Err(_) => {}
            }
        }
        if out.is_empty() {
            return Err(no_address(host, last));
        }
        Ok((out, secure))
    }
}

/// The first name /etc/hosts gives `ip` (glibc's canonical name for it),
/// read once per process.
fn hosts_file_name(ip: IpAddr) -> Option<String> {
    static HOSTS: std::sync::OnceLock<Vec<(IpAddr, String)>> = std::sync::OnceLock::new();
    let hosts = HOSTS.get_or_init(|| {
        std::fs::read_to_string("/etc/hosts")
            .map(|text| parse_hosts(&text))
            .unwrap_or_default()
    });
    hosts
        .iter()
        .find(|(addr, _)| *addr == ip)
        .map(|(_, name)| name.clone())
}

/// /etc/hosts's lines: each address with its first name.
fn parse_hosts(text: &str) -> Vec<(IpAddr, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let addr = words.next()?.parse().ok()?;
            Some((addr, words.next()?.to_string()))
        })
        .collect()
}

/// Why `host` has no address: the last lookup's failure, where a name
/// that exists without A records is Postfix's "no data record".
fn no_address(host: &str, last: Failed) -> Failed {
    match last {
        Failed::NoData => Failed::NotFound(format!(
            "Name service error for name={host} type=A: Host found but no data record of requested type"
        )),
        other => other,
    }
}

/// MX hosts lowest preference first (a stable sort: equal preferences
/// in the order the server gave them), without the final dot.
fn by_preference(found: impl Iterator<Item = (u16, String)>) -> Vec<(u16, String)> {
    let mut hosts: Vec<(u16, String)> = found
        .map(|(p, host)| (p, host.trim_end_matches('.').to_string()))
        .collect();
    hosts.sort_by_key(|(p, _)| *p);
    hosts
}

/// resolv.conf's `options trust-ad`.
fn resolv_conf_trusts_ad(text: &str) -> bool {
    text.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("options") && words.any(|w| w == "trust-ad")
    })
}

/// A query ID nobody off the path can guess (RandomState is seeded from
/// the OS's random source).
fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h & 0xffff) as u16
}

/// One query to one server: UDP, then TCP when the answer was cut.
async fn exchange(server: SocketAddr, wire: &[u8], id: u16) -> std::io::Result<Message> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = std::time::Duration::from_secs(5);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(wire).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    let reply = loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        // Stray or forged datagrams are skipped, not believed.
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.id() == id
            && m.message_type() == MessageType::Response
        {
            break m;
        }
    };
    if !reply.truncated() {
        return Ok(reply);
    }
    let exchange_tcp = async {
        let mut tcp = tokio::net::TcpStream::connect(server).await?;
        let len = u16::try_from(wire.len()).map_err(|_| bad("query too long"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        tcp.write_all(&framed).await?;
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).await?;
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tcp.read_exact(&mut body).await?;
        let m = Message::from_vec(&body).map_err(|_| bad("unreadable answer"))?;
        if m.id() != id || m.message_type() != MessageType::Response {
            return Err(bad("answer to another query"));
        }
        Ok(m)
    };
    tokio::time::timeout(limit, exchange_tcp)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// getaddrinfo(3), for `smtp_host_lookup = native`.
async fn native(host: &str, families: Families) -> Result<Vec<IpAddr>, Failed> {
    match tokio::net::lookup_host((host, 0)).await {
        Ok(found) => {
            let out: Vec<IpAddr> = found
                .map(|a| a.ip())
                .filter(|ip| families.allows(*ip))
                .collect();
            if out.is_empty() {
                Err(Failed::NotFound(format!(
                    "{host}: No address associated with hostname"
                )))
            } else {
                Ok(out)
            }
        }
        Err(e) => Err(Failed::Temporary(format!("{host}: {e}"))),
    }
}

/// A name looked up as written, never with search domains appended.
fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// What a failed lookup means. hickory reports SERVFAIL and REFUSED as
/// "no records" too, with the response code: only NXDOMAIN is "not
/// found" and only NOERROR "no data"; anything else is for now.
fn failure(e: &hickory_resolver::ResolveError, name: &str, kind: &str) -> Failed {
    use hickory_resolver::proto::ProtoErrorKind;
    let code = e.proto().and_then(|p| match p.kind() {
        ProtoErrorKind::NoRecordsFound { response_code, .. } => Some(*response_code),
        _ => None,
    });
    match code {
        Some(ResponseCode::NXDomain) => Failed::NotFound(format!(
            "Name service error for name={name} type={kind}: Host not found"
        )),
        Some(ResponseCode::NoError) => Failed::NoData,
        _ => Failed::Temporary(format!(
            "Name service error for name={name} type={kind}: Host not found, try again"
        )),
    }
}

/// `ip`, `ip:port` or `[ip]:port` (port 53 when not given).
fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let (host, port) = s.rsplit_once(':')?;
    let ip: IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            parse_server("127.0.0.1"),
            Some("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("dns.example"), None);
    }

    #[test]
    fn hosts_file_names() {
        let hosts = parse_hosts(
            "127.0.0.1 localhost\n127.0.0.1 other\n# 10.0.0.1 commented\n::1 ip6-localhost ip6-loopback\n",
        );
        assert_eq!(
            hosts,
            vec![
                ("127.0.0.1".parse().unwrap(), "localhost".to_string()),
                ("127.0.0.1".parse().unwrap(), "other".to_string()),
                ("::1".parse().unwrap(), "ip6-localhost".to_string()),
            ]
        );
    }

    #[test]
    fn trust_ad() {
        assert!(resolv_conf_trusts_ad(
            "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
        ));
        assert!(!resolv_conf_trusts_ad(
            "nameserver 127.0.0.53\n# options trust-ad\n"
        ));
        assert!(!resolv_conf_trusts_ad("nameserver 127.0.0.53\n"));
    }
}

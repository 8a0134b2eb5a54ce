//! Name service for the SMTP client: MX and address lookups through
//! hickory-resolver (the system's resolv.conf, or the servers
//! `rostfix_dns_servers` names, so that tests can run a DNS server of
//! their own on loopback), or the system's resolver (getaddrinfo) where
//! `smtp_host_lookup` says `native` or `disable_dns_lookups` is set.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;

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

/// The resolver, made once per configuration.
pub struct Dns {
    resolver: Option<TokioResolver>,
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
    pub fn new(use_dns: bool, servers: &[String]) -> Result<Dns, String> {
        if !use_dns {
            return Ok(Dns { resolver: None });
        }
        let mut opts = ResolverOpts::default();
        // Every lookup asks again: a test's DNS server changes its
        // answers, and Postfix keeps no cache either.
        opts.cache_size = 0;
        opts.attempts = 2;
        opts.timeout = std::time::Duration::from_secs(5);
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("resolv.conf: {e}"))?
        } else {
            let mut group = NameServerConfigGroup::new();
            for s in servers {
                let addr = parse_server(s)
                    .ok_or_else(|| format!("rostfix_dns_servers: bad server address: {s}"))?;
                group.merge(NameServerConfigGroup::from_ips_clear(
                    &[addr.ip()],
                    addr.port(),
                    true,
                ));
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), group),
                TokioConnectionProvider::default(),
            )
        };
        Ok(Dns {
            resolver: Some(builder.with_options(opts).build()),
        })
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
            Ok(found) => {
                let mut hosts: Vec<(u16, String)> = found
                    .iter()
                    .map(|mx| {
                        let host = mx.exchange().to_utf8();
                        (mx.preference(), host.trim_end_matches('.').to_string())
                    })
                    .collect();
                hosts.sort_by_key(|(p, _)| *p);
                Ok(hosts)
            }
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
            return Err(match last {
                Failed::NoData => Failed::NotFound(format!(
                    "Name service error for name={host} type=A: Host found but no data record of requested type"
                )),
                other => other,
            });
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

    /// The names a PTR lookup of `ip` gives (without the final dot).
    pub async fn reverse(&self, ip: IpAddr) -> Result<Vec<String>, Failed> {
        let Some(r) = &self.resolver else {
            return Err(Failed::Temporary("no name service".into()));
        };
        match r.reverse_lookup(ip).await {
            Ok(found) => Ok(found
                .iter()
                .map(|n| n.to_utf8().trim_end_matches('.').to_string())
                .collect()),
            Err(e) => Err(failure(&e, &ip.to_string(), "PTR")),
        }
    }
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
    use hickory_resolver::proto::op::ResponseCode;
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
}

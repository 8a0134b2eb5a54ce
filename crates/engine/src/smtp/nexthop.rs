//! Next hops (smtp(8), lmtp(8)): the forms a transport's next hop takes,
//! and the hosts to try for one, in order.
//!
//! SMTP: `domain` (its MX hosts, or its address when it has none),
//! `[host]` (that host's address, no MX lookup), either with `:port`.
//! LMTP: `unix:/path` (relative paths are under the queue directory),
//! `inet:host[:port]`, or `host[:port]` (port 24 by default).

use std::net::IpAddr;
use std::path::PathBuf;

use super::dns::{Dns, Failed, Families};

/// Where a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Inet {
        host: String,
        port: u16,
        /// Look up MX records (a domain without brackets, SMTP only).
        mx: bool,
    },
}

/// A host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The name the log and reasons show (`mx.example` or the address).
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    /// With DNSSEC asked for: whether the MX records that named this host
    /// (true where there were none) and its address records were secure.
    pub secure_mx: bool,
    pub secure_address: bool,
}

/// Parses `nexthop` for smtp (`lmtp` false) or lmtp. Service names as
/// ports: the common ones; anything else must be a number.
pub fn parse(
    nexthop: &str,
    lmtp: bool,
    default_port: u16,
    queue_directory: &std::path::Path,
) -> Result<Target, String> {
    let mut hop = nexthop.trim();
    if lmtp {
        if let Some(path) = hop.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            return Ok(Target::Unix(if path.is_absolute() {
                path
            } else {
                queue_directory.join(path)
            }));
        }
        hop = hop.strip_prefix("inet:").unwrap_or(hop);
    }
    // SMTP's `inet:` is not a thing, but Postfix strips it for lmtp only.
    let (host, port, bracketed) = if let Some(rest) = hop.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("malformed next-hop destination: {nexthop}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("malformed next-hop destination: {nexthop}")),
        };
        // [ipv6:::1] as Postfix writes IPv6 literals.
        let host = host
            .strip_prefix("ipv6:")
            .or_else(|| host.strip_prefix("IPv6:"))
            .unwrap_or(host);
        (host, port, true)
    } else {
        match hop.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p), false),
            _ => (hop, None, false),
        }
    };
    if host.is_empty() {
        return Err(format!("malformed next-hop destination: {nexthop}"));
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => service_port(p).ok_or_else(|| format!("unknown service: {p}/tcp"))?,
    };
    Ok(Target::Inet {
        host: host.to_string(),
        port,
        mx: !bracketed && !lmtp && host.parse::<IpAddr>().is_err(),
    })
}

/// A port number or a well-known mail service name.
pub fn service_port(p: &str) -> Option<u16> {
    if let Ok(n) = p.parse::<u16>() {
        return (n > 0).then_some(n);
    }
    Some(match p {
        "smtp" => 25,
        "submission" => 587,
        "smtps" | "submissions" => 465,
        "lmtp" => 24,
        _ => return None,
    })
}

/// Why no host could be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHost {
    /// 5.4.4 (no such domain) or 4.4.3 (try again).
    pub dsn: &'static str,
    pub why: String,
    /// MX hosts were found, but none has an address (worth a warning).
    pub no_mx_address: bool,
}

/// The hosts to try for an inet target: for a domain, its MX hosts by
/// preference (each with all its addresses), or its own addresses when
/// it has no MX; for a host, its addresses. At most `limit` addresses.
/// `dnssec`: the lookups ask for DNSSEC and the hosts say whether their
/// records were secure (for DANE).
pub async fn hosts(
    dns: &Dns,
    host: &str,
    port: u16,
    mx: bool,
    families: Families,
    limit: usize,
    dnssec: bool,
) -> Result<Vec<Host>, NoHost> {
    // A domain without MX records, or that does not exist, is looked up
    // as a host (the reason then names its A lookup, as Postfix's);
    // an MX lookup that failed for now is not (the A record may not be
    // where the mail belongs).
    let found_mx = if !(mx && dns.has_mx()) {
        Ok((Vec::new(), true))
    } else if dnssec {
        dns.mx_secure(host).await
    } else {
        dns.mx(host).await.map(|found| (found, false))
    };
    let (names, from_mx, secure_mx) = match found_mx {
        Ok((found, secure)) if !found.is_empty() => {
            (found.into_iter().map(|(_, h)| h).collect(), true, secure)
        }
        Ok(_) | Err(Failed::NoData | Failed::NotFound(_)) => (vec![host.to_string()], false, true),
        Err(e) => return Err(no_host(e)),
    };
    let mut out = Vec::new();
    let mut last: Option<Failed> = None;
    for name in &names {
        let found = if dnssec {
            dns.addresses_secure(name, families).await
        } else {
            dns.addresses(name, families).await.map(|a| (a, false))
        };
        match found {
            Ok((addrs, secure_address)) => {
                for addr in addrs.into_iter().filter(|a| families.allows(*a)) {
                    if out.len() < limit.max(1) {
                        out.push(Host {
                            name: name.clone(),
                            addr,
                            port,
                            secure_mx: secure_mx && dnssec,
                            secure_address,
                        });
                    }
                }
            }
            // A failure for now outweighs one for good: the mail waits.
            Err(e) => {
                if !matches!(last, Some(Failed::Temporary(_))) {
                    last = Some(e);
                }
            }
        }
    }
    if out.is_empty() {
        let f = last.unwrap_or(Failed::NotFound(format!(
            "Name service error for name={host} type=A: Host not found"
        )));
        return Err(NoHost {
            no_mx_address: from_mx,
            ..no_host(f)
        });
    }
    Ok(out)
}

fn no_host(f: Failed) -> NoHost {
    let dsn = match f {
        Failed::Temporary(_) => "4.4.3",
        Failed::NotFound(_) | Failed::NoData => "5.4.4",
    };
    NoHost {
        dsn,
        why: f.explained(),
        no_mx_address: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn smtp(hop: &str) -> Result<Target, String> {
        parse(hop, false, 25, Path::new("/q"))
    }

    fn inet(host: &str, port: u16, mx: bool) -> Result<Target, String> {
        Ok(Target::Inet {
            host: host.into(),
            port,
            mx,
        })
    }

    #[test]
    fn smtp_forms() {
        assert_eq!(smtp("example.com"), inet("example.com", 25, true));
        assert_eq!(smtp("[smtp.isp.com]"), inet("smtp.isp.com", 25, false));
        assert_eq!(
            smtp("[smtp.gmail.com]:587"),
            inet("smtp.gmail.com", 587, false)
        );
        assert_eq!(smtp("[127.0.0.1]:2525"), inet("127.0.0.1", 2525, false));
        assert_eq!(
            smtp("example.com:submission"),
            inet("example.com", 587, true)
        );
        assert_eq!(smtp("192.0.2.1"), inet("192.0.2.1", 25, false));
        assert_eq!(smtp("[ipv6:::1]:25"), inet("::1", 25, false));
        assert!(smtp("[x").is_err());
        assert!(smtp("[x]y").is_err());
        assert!(smtp("x:nosuchservice").is_err());
    }

    #[test]
    fn lmtp_forms() {
        let lmtp = |h| parse(h, true, 24, Path::new("/q"));
        assert_eq!(
            lmtp("unix:private/dovecot-lmtp"),
            Ok(Target::Unix("/q/private/dovecot-lmtp".into()))
        );
        assert_eq!(lmtp("unix:/run/lmtp"), Ok(Target::Unix("/run/lmtp".into())));
        assert_eq!(lmtp("inet:localhost:2003"), inet("localhost", 2003, false));
        assert_eq!(lmtp("0.0.0.0:24"), inet("0.0.0.0", 24, false));
        assert_eq!(lmtp("mail.example"), inet("mail.example", 24, false));
    }
}

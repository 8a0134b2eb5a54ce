//! What the restrictions ask the name service, looked up before the
//! (synchronous) check and only for the services whose lists need it: the
//! sender's and recipient's domains (reject_unknown_sender_domain,
//! reject_unknown_recipient_domain), the client's name
//! (reject_unknown_client_hostname, reject_unknown_reverse_client_hostname),
//! the HELO name (reject_unknown_helo_hostname) and the blocklists that
//! list the client's address (reject_rbl_client) or a name
//! (reject_rhsbl_client, _reverse_client, _helo, _sender, _recipient),
//! and the allowlists (permit_dnswl_client, permit_rhswl_client).

use std::net::IpAddr;

use crate::settings::Settings;

/// What the name service says of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// It has an MX, A or AAAA record (or needs none: ours, a literal).
    Exists,
    /// None of them (NXDOMAIN, or no such records).
    NotFound,
    /// The lookups failed for now.
    TryAgain,
}

/// What the name service says of the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDns {
    /// It has a name, a PTR record (reject_unknown_reverse_client_hostname).
    pub reverse: Domain,
    /// That name resolves back to it (reject_unknown_client_hostname).
    pub forward: Domain,
}

/// The domains of a transaction as the name service sees them, asked
/// before the (synchronous) check when a list wants them.
#[derive(Debug, Default, Clone)]
pub struct Domains {
    pub sender: Option<Domain>,
    pub recipient: Option<Domain>,
    pub client: Option<ClientDns>,
    /// The HELO name has an MX or address record (address literals need
    /// none).
    pub helo: Option<Domain>,
    /// What the DNS lists (blocklists and allowlists) list, or could not
    /// tell for now.
    pub listed: Vec<Listed>,
}

/// A DNS list's finding.
#[derive(Debug, Clone)]
pub struct Listed {
    /// reject_rbl_client, reject_rhsbl_sender, ...
    pub restriction: &'static str,
    /// As configured: `domain` or `domain=d.d.d.d`.
    pub list: String,
    /// What it lists: the client's address or name, the HELO name, the
    /// address.
    pub what: String,
    /// Its TXT record.
    pub reason: Option<String>,
    /// The lookup failed for now: listed or not, nobody knows. The
    /// warning to log when the restriction is reached.
    pub failed: Option<String>,
}

/// The restrictions that ask a DNS list (of addresses or of names).
pub const BLOCKLISTS: &[&str] = &[
    "permit_dnswl_client",
    "permit_rhswl_client",
    "reject_rbl_client",
    "reject_rhsbl_client",
    "reject_rhsbl_reverse_client",
    "reject_rhsbl_helo",
    "reject_rhsbl_sender",
    "reject_rhsbl_recipient",
];

/// Who and what the name service is asked about.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub client: IpAddr,
    /// The client's verified name, or `unknown`.
    pub client_name: &'a str,
    /// Its PTR name as found at connect, or `unknown`.
    pub reverse_client_name: &'a str,
    /// What was found at connect (smtpd_peername_lookup).
    pub known_client: Option<ClientDns>,
    pub helo: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub recipient: &'a str,
}

/// Looks up what the lists need: the sender's and recipient's domains
/// (reject_unknown_sender/recipient_domain; not where this host is their
/// final destination), the client's name unless `known_client` says it
/// already (reject_unknown_(reverse_)client_hostname), the HELO name, and
/// the blocklists.
pub async fn domains(s: &Settings, asked: Asked<'_>) -> Domains {
    let Asked {
        client,
        known_client,
        helo,
        sender,
        recipient,
        ..
    } = asked;
    let Some(dns) = &s.access.dns else {
        return Domains::default();
    };
    let mut out = Domains::default();
    if s.access.asks_domains {
        if let Some(a) = sender.filter(|a| !a.is_empty()) {
            out.sender = Some(domain_of(s, dns, a).await);
        }
        out.recipient = Some(domain_of(s, dns, recipient).await);
    }
    for (restriction, list) in &s.access.blocklists {
        let Some(what) = blocklist_subject(&asked, restriction) else {
            continue;
        };
        let key = if matches!(*restriction, "reject_rbl_client" | "permit_dnswl_client") {
            reversed(client)
        } else {
            what.to_ascii_lowercase()
        };
        let key = key.rsplit_once('@').map_or(key.as_str(), |(_, d)| d);
        let (reason, failed) = match blocklisted(dns, key, list).await {
            Found::Listed(reason) => (reason, None),
            Found::NotListed => continue,
            Found::TryAgain(why) => (None, Some(why)),
        };
        out.listed.push(Listed {
            restriction,
            list: list.clone(),
            what,
            reason,
            failed,
        });
    }
    if s.access.asks_client {
        out.client = match known_client {
            Some(known) => Some(known),
            None => Some(client_name(dns, client).await.0),
        };
    }
    if s.access.asks_helo {
        out.helo = match helo {
            None => None,
            Some(h) if h.starts_with('[') => Some(Domain::Exists),
            Some(h) => Some(name_exists(dns, h.strip_suffix('.').unwrap_or(h)).await),
        };
    }
    out
}

/// What a blocklist restriction asks about, as its reply shows it: the
/// client's address, its verified name, its PTR name (unverified), the
/// HELO name, the sender or the recipient (their domains are asked).
/// None: nothing to ask (no name, an address literal, the null sender).
fn blocklist_subject(asked: &Asked<'_>, restriction: &str) -> Option<String> {
    let name = |n: &str| (!n.is_empty() && !n.starts_with('[')).then(|| n.to_string());
    let address = |a: &str| {
        a.rsplit_once('@')
            .filter(|(_, d)| !d.is_empty() && !d.starts_with('['))
            .map(|_| a.to_string())
    };
    match restriction {
        "reject_rbl_client" | "permit_dnswl_client" => Some(asked.client.to_string()),
        "reject_rhsbl_client" | "permit_rhswl_client" => {
            name(asked.client_name).filter(|n| n != "unknown")
        }
        // As found at connect (none without smtpd_peername_lookup).
        "reject_rhsbl_reverse_client" => name(asked.reverse_client_name).filter(|n| n != "unknown"),
        "reject_rhsbl_helo" => asked.helo.and_then(name),
        "reject_rhsbl_sender" => asked.sender.and_then(address),
        "reject_rhsbl_recipient" => address(asked.recipient),
        _ => None,
    }
}

/// What a DNS list says about a key.
enum Found {
    /// With its TXT record's reason, if any.
    Listed(Option<String>),
    NotListed,
    /// The lookup failed for now (the warning to log).
    TryAgain(String),
}

/// Whether DNS list `list` (`domain` or `domain=d.d.d.d`) lists `key`
/// (a reversed address or a domain name): its A records under
/// `key.domain`, and then the TXT record's reason.
async fn blocklisted(dns: &crate::smtp::dns::Dns, key: &str, list: &str) -> Found {
    let (domain, want) = match list.split_once('=') {
        Some((d, w)) => (d, Some(w)),
        None => (list, None),
    };
    let name = format!("{}.{domain}", key.trim_end_matches('.'));
    let v4 = crate::smtp::dns::Families {
        ipv4: true,
        ipv6: false,
    };
    let found = match dns.addresses(&name, v4).await {
        Ok(found) => found,
        Err(failed @ crate::smtp::dns::Failed::Temporary(_)) => {
            return Found::TryAgain(format!("{name}: RBL lookup error: {}", failed.explained()));
        }
        Err(_) => return Found::NotListed,
    };
    let listed = found
        .iter()
        .any(|a| want.is_none_or(|w| rbl_matches(w, *a)));
    if !listed {
        return Found::NotListed;
    }
    // The reason goes into a reply and the log: no control characters
    // from someone else's name server.
    let reason = dns.txt(&name).await.ok().flatten();
    Found::Listed(reason.map(|r| crate::log::printable(&r)))
}

/// An address as DNS blocklists key it: its octets (IPv4) or nibbles
/// (IPv6) in reverse order.
fn reversed(client: IpAddr) -> String {
    match client {
        IpAddr::V4(a) => a
            .octets()
            .iter()
            .rev()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join("."),
        IpAddr::V6(a) => a
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0xf, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// A blocklist answer against `d.d.d.d`, where each `d` is a number or
/// `[n;m..k]` (numbers and ranges).
fn rbl_matches(pattern: &str, answer: IpAddr) -> bool {
    let IpAddr::V4(a) = answer else {
        return false;
    };
    // Dots inside `[...]` belong to ranges, not between numbers.
    let mut parts: Vec<&str> = Vec::new();
    let (mut start, mut depth) = (0, 0);
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                parts.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&pattern[start..]);
    parts.len() == 4
        && parts.iter().zip(a.octets()).all(|(p, octet)| {
            let inner = p
                .strip_prefix('[')
                .and_then(|p| p.strip_suffix(']'))
                .unwrap_or(p);
            inner.split(';').any(|alt| match alt.split_once("..") {
                Some((lo, hi)) => match (lo.parse::<u8>(), hi.parse::<u8>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&octet),
                    _ => false,
                },
                None => alt.parse::<u8>() == Ok(octet),
            })
        })
}

/// Whether the client's address has a name (its first PTR record) whose
/// addresses include it, as reject_unknown_client_hostname and
/// smtpd_peername_lookup want, with that PTR name.
pub async fn client_name(
    dns: &crate::smtp::dns::Dns,
    client: IpAddr,
) -> (ClientDns, Option<String>) {
    use crate::smtp::dns::{Failed, Families};
    let nameless = |why| {
        let found = ClientDns {
            reverse: why,
            forward: why,
        };
        (found, None)
    };
    let name = match dns.reverse(client).await {
        Ok(names) => match names.into_iter().next() {
            Some(n) => n,
            None => return nameless(Domain::NotFound),
        },
        Err(Failed::Temporary(_)) => return nameless(Domain::TryAgain),
        Err(_) => return nameless(Domain::NotFound),
    };
    let family = Families {
        ipv4: client.is_ipv4(),
        ipv6: client.is_ipv6(),
    };
    let forward = match dns.addresses(&name, family).await {
        Ok(found) if found.contains(&client) => Domain::Exists,
        Err(Failed::Temporary(_)) => Domain::TryAgain,
        _ => Domain::NotFound,
    };
    let found = ClientDns {
        reverse: Domain::Exists,
        forward,
    };
    (found, Some(name))
}

/// Whether an address's domain exists: ours (local or virtual), address
/// literals and domain-less addresses need no lookup; otherwise any of
/// MX, A, AAAA records will do, as Postfix asks them.
async fn domain_of(s: &Settings, dns: &crate::smtp::dns::Dns, address: &str) -> Domain {
    use crate::resolve::Class;
    let r = crate::resolve::resolve(s, address);
    let Some((_, domain)) = r.address.rsplit_once('@') else {
        return Domain::Exists;
    };
    if matches!(r.class, Class::Local | Class::Virtual) || domain.starts_with('[') {
        return Domain::Exists;
    }
    name_exists(dns, domain).await
}

/// Whether a name has an MX, A or AAAA record.
async fn name_exists(dns: &crate::smtp::dns::Dns, domain: &str) -> Domain {
    use crate::smtp::dns::Failed;
    let mut outcome = Domain::NotFound;
    match dns.mx(domain).await {
        Ok(hosts) if !hosts.is_empty() => return Domain::Exists,
        Err(Failed::Temporary(_)) => outcome = Domain::TryAgain,
        _ => {}
    }
    for families in [
        crate::smtp::dns::Families {
            ipv4: true,
            ipv6: false,
        },
        crate::smtp::dns::Families {
            ipv4: false,
            ipv6: true,
        },
    ] {
        match dns.addresses(domain, families).await {
            Ok(found) if !found.is_empty() => return Domain::Exists,
            Err(Failed::Temporary(_)) => outcome = Domain::TryAgain,
            _ => {}
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklist_answer_patterns() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(rbl_matches("127.0.0.2", ip("127.0.0.2")));
        assert!(!rbl_matches("127.0.0.2", ip("127.0.0.3")));
        assert!(rbl_matches("127.0.0.[2;4..6]", ip("127.0.0.5")));
        assert!(!rbl_matches("127.0.0.[2;4..6]", ip("127.0.0.3")));
        assert!(!rbl_matches("127.0.2", ip("127.0.0.2")));
    }
}

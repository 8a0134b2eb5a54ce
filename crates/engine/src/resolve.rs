//! trivial-rewrite's resolve step, as far as the receive path needs it: the
//! canonical form of a recipient and its address class (ADDRESS_CLASS_README):
//! local (`mydestination`, or an `[ip]` literal of this host), virtual
//! mailbox, relay, or default. Relay decisions use the address as delivery
//! will see it, so address tricks (`%`, `!`, quoted `@`, IP literals) are
//! resolved here, once, before anything is decided.

use std::net::IpAddr;

use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Local,
    Virtual,
    Relay,
    Default,
}

/// A resolved recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub address: String,
    pub class: Class,
}

fn split(addr: &str) -> (&str, Option<&str>) {
    match addr.rfind('@') {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    }
}

/// The class of a domain (lower case, no trailing dot).
fn domain_class(s: &Settings, domain: &str) -> Class {
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = literal
            .strip_prefix("ipv6:")
            .or_else(|| literal.strip_prefix("IPv6:"))
            .unwrap_or(literal);
        return match ip.parse::<IpAddr>() {
            Ok(ip) if s.inet_interface_addrs.contains(&ip) => Class::Local,
            _ => Class::Default,
        };
    }
    if s.mydestination.iter().any(|d| d == domain) {
        Class::Local
    } else if s.virtual_mailbox_domains.iter().any(|d| d == domain) {
        Class::Virtual
    } else if s
        .relay_domains
        .iter()
        .any(|d| d == domain || (d.starts_with('.') && domain.ends_with(d.as_str())))
    {
        Class::Relay
    } else {
        Class::Default
    }
}

/// Resolves `addr` (internal form). A local address with `%` or `!` in
/// its local part routes onwards (`user%host@local` is `user@host`, as
/// Postfix's allow_percent_hack and swap_bangpath make it), and is
/// classified again.
pub fn resolve(s: &Settings, addr: &str) -> Resolved {
    let mut address = addr.to_string();
    for _ in 0..10 {
        let (local, domain) = split(&address);
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        let class = match &domain {
            None => Class::Local,
            Some(d) => domain_class(s, d),
        };
        if class == Class::Local {
            if let Some(i) = local.rfind('%') {
                address = format!("{}@{}", &local[..i], &local[i + 1..]);
                continue;
            }
            if let Some(i) = local.find('!') {
                address = format!("{}@{}", &local[i + 1..], &local[..i]);
                continue;
            }
        }
        let address = match domain {
            Some(d) => format!("{local}@{d}"),
            None => local.to_string(),
        };
        return Resolved { address, class };
    }
    Resolved {
        address,
        class: Class::Default,
    }
}

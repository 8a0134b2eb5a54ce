//! trivial-rewrite's resolve step: the canonical form of a recipient, its
//! address class (ADDRESS_CLASS_README): local (`mydestination`, or an
//! `[ip]` literal of this host), virtual mailbox, relay, or default; and
//! its route: the class's transport and next hop, or what transport_maps
//! says. Relay decisions use the address as delivery will see it, so
//! address tricks (`%`, `!`, quoted `@`, IP literals) are resolved here,
//! once, before anything is decided.

use std::net::IpAddr;

use rostfix_maps::DictError;
use rostfix_maps::order::{self, Maps, OrderContext};

use crate::settings::Settings;

/// The transport settings (`*_transport`, `relayhost`, `transport_maps`)
/// and master.cf's `unix` services (name, command), which say what a
/// transport name runs.
#[derive(Debug)]
pub struct Routing {
    pub local_transport: String,
    pub virtual_transport: String,
    pub relay_transport: String,
    pub default_transport: String,
    pub relayhost: String,
    pub sender_dependent_relayhost_maps: Maps,
    /// The key the null sender is looked up with there (`<>`).
    pub empty_address_relayhost_key: String,
    pub transport_maps: Maps,
    /// transport(5) lookups (parent_domain_matches_subdomains may list
    /// transport_maps).
    pub transport_order: OrderContext,
    pub services: Vec<Service>,
}

/// A `unix` service of master.cf.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub command: String,
    /// The program name its log lines carry (`postfix/relay/smtp`).
    pub tag: String,
}

impl Routing {
    /// The command master.cf runs for transport `name` (`error` for the
    /// `retry` service), if it defines one.
    pub fn command(&self, name: &str) -> Option<&str> {
        self.service(name).map(|s| s.command.as_str())
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// Where a recipient's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub transport: String,
    pub nexthop: String,
}

/// `transport:nexthop`, `transport`, `:nexthop` (transport(5) syntax):
/// the parts given, empty when left out.
fn split_route(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((t, n)) => (t.trim(), n.trim()),
        None => (spec.trim(), ""),
    }
}

/// A `transport:nexthop` setting (mailbox_transport, fallback_transport)
/// as a route for `address`: without a next hop, the address's domain.
pub fn parse_route(spec: &str, address: &str) -> Route {
    let (transport, nexthop) = split_route(spec);
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
    Route {
        transport: transport.to_string(),
        nexthop: if nexthop.is_empty() { domain } else { nexthop }.to_string(),
    }
}

/// The route of a resolved recipient: its class's transport and next hop
/// (`$myhostname` for local mail, the recipient's domain otherwise, or
/// `relayhost` for relay and default mail), with transport_maps's answer
/// taking the place of the parts it gives.
pub fn route(s: &Settings, r: &Resolved, sender: &str) -> Result<Route, DictError> {
    let rt = &s.routing;
    let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d);
    // sender_dependent_relayhost_maps over relayhost (the null sender is
    // looked up as empty_address_relayhost_maps_lookup_key).
    let mut relayhost = rt.relayhost.clone();
    if !rt.sender_dependent_relayhost_maps.is_empty() {
        let keys = if sender.is_empty() {
            vec![order::Key::exact(&rt.empty_address_relayhost_key)]
        } else {
            order::address_keys(sender, &s.order, false)
        };
        if let Some(found) = rt.sender_dependent_relayhost_maps.find_first(&keys)? {
            relayhost = found.value;
        }
    }
    let remote_hop = || {
        if relayhost.is_empty() {
            domain.to_string()
        } else {
            relayhost.clone()
        }
    };
    let (spec, default_hop) = match r.class {
        Class::Local => (&rt.local_transport, s.myhostname.clone()),
        Class::Virtual => (&rt.virtual_transport, domain.to_string()),
        Class::Relay => (&rt.relay_transport, remote_hop()),
        Class::Default => (&rt.default_transport, remote_hop()),
    };
    let (transport, hop) = split_route(spec);
    let mut route = Route {
        transport: transport.to_string(),
        nexthop: if hop.is_empty() {
            default_hop
        } else {
            hop.to_string()
        },
    };
    if !rt.transport_maps.is_empty() {
        let keys = order::transport_keys(&r.address, &rt.transport_order);
        if let Some(found) = rt.transport_maps.find_first(&keys)? {
            // transport(5): a transport without a next hop resets the
            // next hop to the recipient's domain.
            let (transport, hop) = split_route(&found.value);
            if !transport.is_empty() {
                route.transport = transport.to_string();
                route.nexthop = domain.to_string();
            }
            if !hop.is_empty() {
                route.nexthop = hop.to_string();
            }
        }
    }
    Ok(route)
}

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

/// relocated_maps (relocated(5)): where a recipient that has moved went,
/// for the `User has moved to ...` refusal (5.1.6). Looked up in the
/// order of virtual(5), the bare user only for this host's own domains;
/// for any address class (Postfix refuses a relocated remote address
/// too, recorded in relocated-smtp).
pub fn relocated(s: &Settings, r: &Resolved) -> Result<Option<String>, rostfix_maps::DictError> {
    if s.relocated_maps.is_empty() {
        return Ok(None);
    }
    let address = r.address.to_ascii_lowercase();
    let own = split(&address)
        .1
        .is_none_or(|d| crate::rewrite::domain_is_local(s, d));
    let keys = rostfix_maps::order::address_keys(&address, &s.order, own);
    Ok(s.relocated_maps.find_first(&keys)?.map(|f| f.value))
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

/// An address in canonical form, as trivial-rewrite's `local` context
/// makes it: `site!user` is `user@site` (swap_bangpath) and `user%site`
/// is `user@site` (allow_percent_hack) when there is no `@`; a bare
/// `user` gets `@$myorigin` (append_at_myorigin), a domain without a dot
/// gets `.$mydomain` (append_dot_mydomain). The null address stays null.
pub fn canonical_form(s: &Settings, addr: &str) -> String {
    if addr.is_empty() {
        return String::new();
    }
    let mut a = addr.to_string();
    if !a.contains('@') {
        if let Some(i) = a.find('!').filter(|_| s.swap_bangpath) {
            a = format!("{}@{}", &a[i + 1..], &a[..i]);
        } else if let Some(i) = a.rfind('%').filter(|_| s.allow_percent_hack) {
            a = format!("{}@{}", &a[..i], &a[i + 1..]);
        }
    }
    match a.rfind('@') {
        None if s.append_at_myorigin => format!("{a}@{}", s.myorigin),
        Some(i)
            if s.append_dot_mydomain
                && !a[i + 1..].contains('.')
                && !a[i + 1..].starts_with('[')
                && i + 1 < a.len() =>
        {
            format!("{a}.{}", s.mydomain)
        }
        _ => a,
    }
}

/// Resolves `addr` (internal form), first put in canonical form. A local
/// address with `%` or `!` in its local part routes onwards
/// (`user%host@local` is `user@host`, as allow_percent_hack and
/// swap_bangpath make it), and is classified again.
pub fn resolve(s: &Settings, addr: &str) -> Resolved {
    let mut address = canonical_form(s, addr);
    for _ in 0..10 {
        let (local, domain) = split(&address);
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        let class = match &domain {
            None => Class::Local,
            Some(d) => domain_class(s, d),
        };
        if class == Class::Local {
            if let Some(i) = local.rfind('%').filter(|_| s.allow_percent_hack) {
                address = format!("{}@{}", &local[..i], &local[i + 1..]);
                continue;
            }
            if let Some(i) = local.find('!').filter(|_| s.swap_bangpath) {
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

/// The text of an error or retry route (`error:5.7.1 go away`): its
/// leading `X.Y.Z` status code, if it has one, and the rest.
pub fn split_dsn(text: &str) -> (String, String) {
    if let Some((code, rest)) = text.split_once(' ') {
        let parts: Vec<&str> = code.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return (code.to_string(), rest.trim().to_string());
        }
    }
    (String::new(), text.to_string())
}

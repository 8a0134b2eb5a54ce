//! Defaults that Postfix derives from the running system: `myhostname`,
//! `mydomain`, `mynetworks`, `process_id`, `process_name`.
//!
//! `myhostname` is the host name when it holds a dot, else the host name
//! plus `.localdomain` (no DNS is asked, as in Postfix). `mydomain` is what
//! follows the first dot of `myhostname`, or `localdomain`. `mynetworks`
//! lists the networks of the machine's interfaces (those of
//! `inet_interfaces`, IPv4 first) in the shape `mynetworks_style` asks for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fallback domain, as Postfix's DEF_MYDOMAIN.
pub const DEFAULT_DOMAIN: &str = "localdomain";

pub fn myhostname() -> String {
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|s| s.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    if name.contains('.') {
        name
    } else {
        format!("{name}.{DEFAULT_DOMAIN}")
    }
}

/// `mydomain` for a given `myhostname`.
pub fn mydomain_for(myhostname: &str) -> String {
    match myhostname.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_string(),
        _ => DEFAULT_DOMAIN.to_string(),
    }
}

pub fn process_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "postfix".to_string())
}

/// An interface address and its netmask length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// The machine's interface addresses, IPv4 first, each family in the order
/// the kernel lists them.
pub fn interface_addrs() -> Vec<InterfaceAddr> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return vec![
            InterfaceAddr {
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                prefix: 8,
            },
            InterfaceAddr {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ];
    };
    for ifa in addrs {
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            let prefix = u32::from(m.ip()).count_ones() as u8;
            v4.push(InterfaceAddr {
                addr: IpAddr::V4(a.ip()),
                prefix,
            });
        } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let prefix = u128::from(m.ip()).count_ones() as u8;
            v6.push(InterfaceAddr {
                addr: IpAddr::V6(a.ip()),
                prefix,
            });
        }
    }
    v4.extend(v6);
    v4
}

/// `mynetworks` for `style` (`host`, `subnet` or `class`) over `addrs`.
pub fn mynetworks(style: &str, addrs: &[InterfaceAddr]) -> String {
    let mut out: Vec<String> = Vec::new();
    for ifa in addrs {
        let prefix = match (style, ifa.addr) {
            ("host", IpAddr::V4(_)) => 32,
            ("host", IpAddr::V6(_)) => 128,
            ("class", IpAddr::V4(a)) => match a.octets()[0] {
                0..=127 => 8,
                128..=191 => 16,
                192..=223 => 24,
                _ => 32,
            },
            _ => ifa.prefix,
        };
        let net = match ifa.addr {
            IpAddr::V4(a) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(prefix))
                };
                format!("{}/{prefix}", Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(prefix))
                };
                format!("[{}]/{prefix}", Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        if !out.contains(&net) {
            out.push(net);
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<InterfaceAddr> {
        vec![
            InterfaceAddr {
                addr: "127.0.0.1".parse().unwrap(),
                prefix: 8,
            },
            InterfaceAddr {
                addr: "192.0.2.2".parse().unwrap(),
                prefix: 24,
            },
            InterfaceAddr {
                addr: "10.1.2.3".parse().unwrap(),
                prefix: 16,
            },
            InterfaceAddr {
                addr: "::1".parse().unwrap(),
                prefix: 128,
            },
            InterfaceAddr {
                addr: "fe80::fc:ff:fe00:1".parse().unwrap(),
                prefix: 64,
            },
        ]
    }

    #[test]
    fn styles() {
        assert_eq!(
            mynetworks("subnet", &addrs()),
            "127.0.0.0/8 192.0.2.0/24 10.1.0.0/16 [::1]/128 [fe80::]/64"
        );
        assert_eq!(
            mynetworks("host", &addrs()),
            "127.0.0.1/32 192.0.2.2/32 10.1.2.3/32 [::1]/128 [fe80::fc:ff:fe00:1]/128"
        );
        assert_eq!(
            mynetworks("class", &addrs()),
            "127.0.0.0/8 192.0.2.0/24 10.0.0.0/8 [::1]/128 [fe80::]/64"
        );
    }

    #[test]
    fn domain_follows_first_dot() {
        assert_eq!(mydomain_for("host.com"), "com");
        assert_eq!(mydomain_for("mail.example.com"), "example.com");
        assert_eq!(mydomain_for("x"), "localdomain");
    }
}

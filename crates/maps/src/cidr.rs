//! `cidr:` tables (cidr_table(5)): `network/prefix result`, `address
//! result`, `!pattern result`, and `if`/`endif` blocks; the first match in
//! file order wins. IPv4 and IPv6; host bits beyond the prefix must be zero.

use std::net::IpAddr;

use rostfix_config::lines::logical_lines;

use crate::{Dict, DictError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(text: &str) -> Result<Network, String> {
        let t = text.trim_start_matches('[');
        let (addr_text, prefix_text) = match t.split_once('/') {
            Some((a, p)) => (a.trim_end_matches(']'), Some(p)),
            None => (t.trim_end_matches(']'), None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| match prefix_text {
            Some(_) => format!("bad network value in \"{text}\""),
            None => format!("bad address pattern: \"{text}\""),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad mask length in \"{text}\""))?,
        };
        let net = Network { addr, prefix };
        if net.masked(addr) != addr {
            return Err(format!(
                "non-null host address bits in \"{text}\", perhaps you should use \"{}/{prefix}\" instead",
                net.masked(addr)
            ));
        }
        Ok(net)
    }

    fn masked(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(v) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                IpAddr::V4((u32::from(v) & m).into())
            }
            IpAddr::V6(v) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6((u128::from(v) & m).into())
            }
        }
    }

    /// A rule's test: inside the network, or with `negate` outside it; a
    /// rule never matches an address of the other family.
    fn matches(&self, a: IpAddr, negate: bool) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && self.contains(a) != negate
    }

    fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && self.masked(a) == self.addr
    }
}

#[derive(Debug)]
enum Rule {
    Match {
        net: Network,
        negate: bool,
        result: String,
    },
    If {
        net: Network,
        negate: bool,
        skip_to: usize,
    },
    Endif,
}

/// A `cidr:/path` table.
#[derive(Debug)]
pub struct CidrDict {
    name: String,
    rules: Vec<Rule>,
}

impl CidrDict {
    pub fn open(path: &str) -> Result<CidrDict, DictError> {
        let name = format!("cidr:{path}");
        let text = std::fs::read(path).map_err(|e| {
            DictError::retry(
                &name,
                format!("open {path}: {}", rostfix_config::io_text(&e)),
            )
        })?;
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let warn =
            |line: usize, msg: &str| crate::warn(&format!("cidr map {path}, line {line}: {msg}"));
        let mut rules = Vec::new();
        let mut open_ifs: Vec<(usize, usize)> = Vec::new();
        for l in logical_lines(&lines) {
            let t: &str = &l.text;
            let (first, rest) = match t.find(char::is_whitespace) {
                Some(i) => (&t[..i], t[i..].trim()),
                None => (t, ""),
            };
            if first.eq_ignore_ascii_case("endif") {
                match open_ifs.pop() {
                    Some((idx, _)) => {
                        rules.push(Rule::Endif);
                        let after = rules.len();
                        if let Rule::If { skip_to, .. } = &mut rules[idx] {
                            *skip_to = after;
                        }
                    }
                    None => warn(l.line(), "ENDIF without IF: skipping this rule"),
                }
                continue;
            }
            let is_if = first.eq_ignore_ascii_case("if") && !rest.is_empty();
            let (pattern, result) = if is_if {
                match rest.find(char::is_whitespace) {
                    Some(i) => (&rest[..i], rest[i..].trim()),
                    None => (rest, ""),
                }
            } else {
                (first, rest)
            };
            let (negate, pattern) = match pattern.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, pattern),
            };
            let net = match Network::parse(pattern) {
                Ok(n) => n,
                Err(e) => {
                    warn(l.line(), &format!("{e}: skipping this rule"));
                    continue;
                }
            };
            if is_if {
                if !result.is_empty() {
                    warn(l.line(), "ignoring extra text after IF pattern");
                }
                open_ifs.push((rules.len(), l.line()));
                rules.push(Rule::If {
                    net,
                    negate,
                    skip_to: 0,
                });
            } else if result.is_empty() {
                warn(l.line(), "no lookup result: skipping this rule");
            } else {
                rules.push(Rule::Match {
                    net,
                    negate,
                    result: result.to_string(),
                });
            }
        }
        for (idx, line) in open_ifs.into_iter().rev() {
            warn(line, "IF has no matching ENDIF");
            let end = rules.len();
            if let Rule::If { skip_to, .. } = &mut rules[idx] {
                *skip_to = end;
            }
        }
        Ok(CidrDict { name, rules })
    }
}

impl Dict for CidrDict {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        // The key is a bare address: no brackets, no IPv4-mapped folding
        // (Postfix matches exactly what smtpd passes).
        let Ok(addr) = key.parse::<IpAddr>() else {
            return Ok(None);
        };
        let mut i = 0;
        while i < self.rules.len() {
            match &self.rules[i] {
                Rule::Match {
                    net,
                    negate,
                    result,
                } => {
                    if net.matches(addr, *negate) {
                        return Ok(Some(result.clone()));
                    }
                }
                Rule::If {
                    net,
                    negate,
                    skip_to,
                } => {
                    if !net.matches(addr, *negate) {
                        i = *skip_to;
                        continue;
                    }
                }
                Rule::Endif => {}
            }
            i += 1;
        }
        Ok(None)
    }

    fn is_fixed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_v6_and_host_bits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.cidr");
        std::fs::write(
            &path,
            "192.168.1.1 exact\n192.168.0.0/16 net16\n10.1.2.3/8 bad\n2001:db8::/32 v6net\n!127.0.0.0/8 notlocal\n",
        )
        .unwrap();
        let d = CidrDict::open(path.to_str().unwrap()).unwrap();
        assert_eq!(d.lookup("192.168.1.1").unwrap().as_deref(), Some("exact"));
        assert_eq!(d.lookup("192.168.7.9").unwrap().as_deref(), Some("net16"));
        assert_eq!(d.lookup("2001:db8::1").unwrap().as_deref(), Some("v6net"));
        assert_eq!(
            d.lookup("10.1.2.3").unwrap().as_deref(),
            Some("notlocal"),
            "the bad rule was skipped"
        );
        assert_eq!(d.lookup("127.0.0.1").unwrap(), None);
        assert_eq!(d.lookup("not-an-ip").unwrap(), None);
        // Keys are matched as given: no IPv4-mapped folding, no brackets,
        // and a negated IPv4 rule says nothing about IPv6 (as Postfix).
        assert_eq!(d.lookup("::ffff:192.168.1.1").unwrap(), None);
        assert_eq!(d.lookup("[192.168.1.1]").unwrap(), None);
        assert_eq!(d.lookup("::1").unwrap(), None);
    }
}

//! The lookup orders the manuals define per use, in one place: access(5),
//! aliases(5), virtual(5), canonical(5), generic(5), relocated(5) and
//! transport(5). Every caller (smtpd restrictions, cleanup, trivial-rewrite,
//! local) asks here instead of building keys itself.
//!
//! Rules shared by all orders:
//! * keys are tried in the order listed; for each key every table of the
//!   parameter is tried in turn (Postfix's maps_find), and the first hit
//!   wins;
//! * a temporary failure of any table stops the search with that failure;
//! * pattern tables (regexp, pcre, cidr) are asked only the "full" keys
//!   (the whole address, the whole domain, the whole client address); the
//!   partial forms are for exact-match tables;
//! * exact-match tables fold keys to lower case (see `crate::open`);
//! * with `recipient_delimiter`, `user+ext` is tried before `user`.

use crate::{Dict, DictError, OpenOptions};

/// The tables of one parameter (`virtual_alias_maps = hash:/a, regexp:/b`).
#[derive(Debug)]
pub struct Maps {
    pub param: String,
    tables: Vec<Box<dyn Dict>>,
}

impl Maps {
    /// Opens every `type:name` of a parameter value (split on commas and
    /// white space, `{...}` groups kept whole).
    pub fn open(param: &str, value: &str, opts: &OpenOptions) -> Result<Maps, DictError> {
        let tables = rostfix_config::value::split_list(value)
            .into_iter()
            .map(|spec| crate::open(spec, opts))
            .collect::<Result<_, _>>()?;
        Ok(Maps {
            param: param.to_string(),
            tables,
        })
    }

    pub fn from_tables(param: &str, tables: Vec<Box<dyn Dict>>) -> Maps {
        Maps {
            param: param.to_string(),
            tables,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// One key through every table; `full` says whether pattern tables see it.
    pub fn find(&self, key: &str, full: bool) -> Result<Option<String>, DictError> {
        for t in &self.tables {
            if !full && !t.is_fixed() {
                continue;
            }
            if let Some(v) = t.lookup(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Tries `keys` in order.
    pub fn find_first(&self, keys: &[Key]) -> Result<Option<Found>, DictError> {
        for k in keys {
            if let Some(value) = self.find(&k.text, k.full)? {
                return Ok(Some(Found {
                    value,
                    key: k.text.clone(),
                    form: k.form,
                }));
            }
        }
        Ok(None)
    }
}

/// Which part of an address a key was made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `user+ext@domain` or `user@domain` when there is no extension.
    Address,
    /// `user@domain` after dropping the extension.
    AddressWithoutExtension,
    /// `user+ext` or `user`.
    LocalPart,
    LocalPartWithoutExtension,
    /// The domain, a parent domain, or `.domain`.
    Domain,
    /// `@domain` (catch-all).
    AtDomain,
    /// `user@` (access(5)).
    LocalPartAt,
    /// A client host name, address, or a prefix of the address.
    Client,
    /// `*` (transport(5)).
    Wildcard,
}

/// One key to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub text: String,
    pub form: Form,
    /// Pattern tables see only full keys.
    pub full: bool,
}

impl Key {
    /// A key looked up as it is, in every table (`<>` for the null
    /// sender).
    pub fn exact(text: &str) -> Key {
        key(text, Form::Address, true)
    }
}

fn key(text: impl Into<String>, form: Form, full: bool) -> Key {
    Key {
        text: text.into(),
        form,
        full,
    }
}

/// The result of a successful lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub key: String,
    pub form: Form,
}

/// What the orders need to know about the configuration.
#[derive(Debug, Clone, Default)]
pub struct OrderContext {
    /// `recipient_delimiter`: each character is a delimiter.
    pub recipient_delimiter: String,
    /// Whether `parent_domain_matches_subdomains` lists this use's
    /// parameter (then `example.com` matches `sub.example.com`; otherwise
    /// only `.example.com` does).
    pub parent_matches_subdomains: bool,
}

/// An address split for lookups: local part, optional extension, domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    pub local: &'a str,
    /// The local part without the extension, when there is an extension.
    pub base: Option<&'a str>,
    pub domain: Option<&'a str>,
}

/// Splits `user+ext@domain` (the last `@` separates the domain).
pub fn split_address<'a>(addr: &'a str, delimiters: &str) -> Split<'a> {
    let (local, domain) = match addr.rfind('@') {
        Some(i) => (&addr[..i], Some(&addr[i + 1..])),
        None => (addr, None),
    };
    Split {
        local,
        base: strip_extension(local, delimiters),
        domain,
    }
}

/// `user` for `user+ext`, as Postfix's split_addr decides: never for
/// postmaster or MAILER-DAEMON, and never at the first character.
pub fn strip_extension<'a>(local: &'a str, delimiters: &str) -> Option<&'a str> {
    if delimiters.is_empty()
        || local.eq_ignore_ascii_case("postmaster")
        || local.eq_ignore_ascii_case("mailer-daemon")
    {
        return None;
    }
    let pos = local
        .char_indices()
        .skip(1)
        .find(|(_, c)| delimiters.contains(*c))
        .map(|(i, _)| i)?;
    Some(&local[..pos])
}

/// Keys for `user@domain` tables: virtual(5), canonical(5), generic(5) and
/// relocated(5): the address (with, then without extension), then the
/// local part alone when the domain is one of this host's own (myorigin,
/// mydestination, inet_interfaces, proxy_interfaces), then `@domain`.
pub fn address_keys(addr: &str, ctx: &OrderContext, domain_is_local: bool) -> Vec<Key> {
    let s = split_address(addr, &ctx.recipient_delimiter);
    let mut keys = vec![key(addr, Form::Address, true)];
    let Some(domain) = s.domain else {
        // A bare local part: only the local part forms apply.
        if let Some(base) = s.base {
            keys.push(key(base, Form::LocalPartWithoutExtension, false));
        }
        return keys;
    };
    if let Some(base) = s.base {
        keys.push(key(
            format!("{base}@{domain}"),
            Form::AddressWithoutExtension,
            false,
        ));
    }
    if domain_is_local {
        keys.push(key(s.local, Form::LocalPart, false));
        if let Some(base) = s.base {
            keys.push(key(base, Form::LocalPartWithoutExtension, false));
        }
    }
    keys.push(key(format!("@{domain}"), Form::AtDomain, false));
    keys
}

/// aliases(5) keys: the local part with, then without its extension.
pub fn alias_keys(local: &str, ctx: &OrderContext) -> Vec<Key> {
    let mut keys = vec![key(local, Form::LocalPart, true)];
    if let Some(base) = strip_extension(local, &ctx.recipient_delimiter) {
        keys.push(key(base, Form::LocalPartWithoutExtension, true));
    }
    keys
}

/// The domain and its parents: `sub.example.com`, then `example.com`,
/// `com` when parent domains match subdomains, else `.example.com`, `.com`.
/// Only the domain itself is a full key.
pub fn domain_keys(domain: &str, parent_matches_subdomains: bool) -> Vec<Key> {
    let mut keys = vec![key(domain, Form::Domain, true)];
    let mut rest = domain;
    while let Some(i) = rest[1..].find('.').map(|i| i + 1) {
        rest = &rest[i..];
        if parent_matches_subdomains {
            keys.push(key(&rest[1..], Form::Domain, false));
        } else {
            keys.push(key(rest, Form::Domain, false));
        }
    }
    keys
}

/// transport(5) keys: `user+ext@domain`, `user@domain`, the domain and its
/// parents, then `*`. Pattern tables see only the full address.
pub fn transport_keys(addr: &str, ctx: &OrderContext) -> Vec<Key> {
    let s = split_address(addr, &ctx.recipient_delimiter);
    let mut keys = vec![key(addr, Form::Address, true)];
    if let (Some(base), Some(domain)) = (s.base, s.domain) {
        keys.push(key(
            format!("{base}@{domain}"),
            Form::AddressWithoutExtension,
            false,
        ));
    }
    if let Some(domain) = s.domain {
        for mut k in domain_keys(domain, ctx.parent_matches_subdomains) {
            k.full = false;
            keys.push(k);
        }
    }
    keys.push(key("*", Form::Wildcard, false));
    keys
}

/// access(5) keys for an e-mail address (check_sender_access,
/// check_recipient_access): the address (with, then without extension),
/// the domain and its parents, then `user@` (with, then without
/// extension). The null address is looked up as `null_key`
/// (`smtpd_null_access_lookup_key`, `<>` by default).
pub fn access_address_keys(addr: &str, ctx: &OrderContext, null_key: &str) -> Vec<Key> {
    if addr.is_empty() {
        return vec![key(null_key, Form::Address, true)];
    }
    let s = split_address(addr, &ctx.recipient_delimiter);
    let mut keys = vec![key(addr, Form::Address, true)];
    if let (Some(base), Some(domain)) = (s.base, s.domain) {
        keys.push(key(
            format!("{base}@{domain}"),
            Form::AddressWithoutExtension,
            false,
        ));
    }
    if let Some(domain) = s.domain {
        keys.extend(domain_keys(domain, ctx.parent_matches_subdomains));
        keys.push(key(format!("{}@", s.local), Form::LocalPartAt, false));
        if let Some(base) = s.base {
            keys.push(key(format!("{base}@"), Form::LocalPartAt, false));
        }
    }
    keys
}

/// access(5) keys for a client (check_client_access): the host name and its
/// parents (when known), then the address and its prefixes: `1.2.3.4`,
/// `1.2.3`, `1.2`, `1` for IPv4; for IPv6 the address, then the prefixes
/// ending at each `:` (`1:2:3:4:5:6:7`, ..., `1`), in the compressed form
/// Postfix prints.
pub fn access_client_keys(
    hostname: Option<&str>,
    addr: &str,
    parent_matches_subdomains: bool,
) -> Vec<Key> {
    let mut keys = Vec::new();
    if let Some(h) = hostname.filter(|h| !h.is_empty() && *h != "unknown") {
        for mut k in domain_keys(h, parent_matches_subdomains) {
            k.form = Form::Client;
            keys.push(k);
        }
    }
    keys.push(key(addr, Form::Client, true));
    let sep = if addr.contains(':') { ':' } else { '.' };
    let mut rest = addr;
    while let Some(i) = rest.rfind(sep) {
        rest = &rest[..i];
        if rest.is_empty() {
            break;
        }
        keys.push(key(rest, Form::Client, false));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(keys: &[Key]) -> Vec<String> {
        keys.iter()
            .map(|k| {
                if k.full {
                    format!("{}!", k.text)
                } else {
                    k.text.clone()
                }
            })
            .collect()
    }

    fn ctx(delim: &str, parent: bool) -> OrderContext {
        OrderContext {
            recipient_delimiter: delim.to_string(),
            parent_matches_subdomains: parent,
        }
    }

    #[test]
    fn virtual_canonical_generic_relocated_order() {
        // virtual(5): user@domain, user (local domains only), @domain.
        assert_eq!(
            texts(&address_keys(
                "user+foo@example.com",
                &ctx("+", false),
                true
            )),
            [
                "user+foo@example.com!",
                "user@example.com",
                "user+foo",
                "user",
                "@example.com"
            ]
        );
        assert_eq!(
            texts(&address_keys("user@example.com", &ctx("+", false), false)),
            ["user@example.com!", "@example.com"]
        );
        assert_eq!(
            texts(&address_keys("MAILER-DAEMON@a.b", &ctx("-", false), false)),
            ["MAILER-DAEMON@a.b!", "@a.b"]
        );
    }

    #[test]
    fn alias_order() {
        assert_eq!(
            texts(&alias_keys("user-foo", &ctx("-+", false))),
            ["user-foo!", "user!"]
        );
        assert_eq!(
            texts(&alias_keys("owner-list", &ctx("", false))),
            ["owner-list!"]
        );
        assert_eq!(texts(&alias_keys("+x", &ctx("+", false))), ["+x!"]);
    }

    #[test]
    fn transport_order() {
        assert_eq!(
            texts(&transport_keys(
                "user+ext@sub.example.com",
                &ctx("+", false)
            )),
            [
                "user+ext@sub.example.com!",
                "user@sub.example.com",
                "sub.example.com",
                ".example.com",
                ".com",
                "*"
            ]
        );
        assert_eq!(
            texts(&transport_keys("u@sub.example.com", &ctx("", true))),
            [
                "u@sub.example.com!",
                "sub.example.com",
                "example.com",
                "com",
                "*"
            ]
        );
    }

    #[test]
    fn access_orders() {
        assert_eq!(
            texts(&access_address_keys(
                "user+x@mail.example.com",
                &ctx("+", true),
                "<>"
            )),
            [
                "user+x@mail.example.com!",
                "user@mail.example.com",
                "mail.example.com!",
                "example.com",
                "com",
                "user+x@",
                "user@"
            ]
        );
        assert_eq!(
            texts(&access_address_keys("", &ctx("+", true), "<>")),
            ["<>!"]
        );
        assert_eq!(
            texts(&access_client_keys(
                Some("host.example.com"),
                "192.0.2.7",
                true
            )),
            [
                "host.example.com!",
                "example.com",
                "com",
                "192.0.2.7!",
                "192.0.2",
                "192.0",
                "192"
            ]
        );
        assert_eq!(
            texts(&access_client_keys(None, "2001:db8::1", true)),
            ["2001:db8::1!", "2001:db8:", "2001:db8", "2001"]
        );
    }

    #[test]
    fn maps_try_each_key_through_every_table() {
        let o = OpenOptions::default();
        let m = Maps::open(
            "virtual_alias_maps",
            "inline:{@example.com=catchall}, inline:{User@Example.com=exact}",
            &o,
        )
        .unwrap();
        let found = m
            .find_first(&address_keys("user@example.com", &ctx("+", false), false))
            .unwrap()
            .unwrap();
        assert_eq!((found.value.as_str(), found.form), ("exact", Form::Address));
        let found = m
            .find_first(&address_keys("other@example.com", &ctx("+", false), false))
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.value.as_str(), found.form),
            ("catchall", Form::AtDomain)
        );
        let failing = Maps::open("x", "fail:t, inline:{a=b}", &o).unwrap();
        assert!(
            failing.find("a", true).is_err(),
            "a failing table is a temporary failure, not a miss"
        );
    }
}

//! Address rewriting in cleanup: canonical(5) mapping (sender, recipient
//! and both), address masquerading, virtual(5) alias expansion, and the
//! addresses inside From:/To:-style headers. One lookup rule for every
//! table here ([`map_address`]): keys in canonical(5) order, an `@domain`
//! result keeps the user, an unmatched extension is carried over.

use rostfix_maps::DictError;
use rostfix_maps::order::{self, Form, Maps};

use crate::settings::Settings;

/// Where an address sits; `*_classes` parameters name these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    EnvelopeSender,
    EnvelopeRecipient,
    HeaderSender,
    HeaderRecipient,
}

impl AddressClass {
    pub fn parse(word: &str) -> Option<AddressClass> {
        Some(match word {
            "envelope_sender" => AddressClass::EnvelopeSender,
            "envelope_recipient" => AddressClass::EnvelopeRecipient,
            "header_sender" => AddressClass::HeaderSender,
            "header_recipient" => AddressClass::HeaderRecipient,
            _ => return None,
        })
    }

    fn is_sender(self) -> bool {
        matches!(
            self,
            AddressClass::EnvelopeSender | AddressClass::HeaderSender
        )
    }
}

/// A set of address classes (`canonical_classes = envelope_sender, ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classes(Vec<AddressClass>);

impl Classes {
    pub fn parse(name: &str, words: &[String]) -> Result<Classes, String> {
        words
            .iter()
            .map(|w| {
                AddressClass::parse(w).ok_or_else(|| format!("{name}: unknown address class: {w}"))
            })
            .collect::<Result<_, _>>()
            .map(Classes)
    }

    pub fn has(&self, c: AddressClass) -> bool {
        self.0.contains(&c)
    }
}

/// What rewriting needs from the configuration.
#[derive(Debug)]
pub struct Rewriting {
    pub canonical_maps: Maps,
    pub canonical_classes: Classes,
    pub sender_canonical_maps: Maps,
    pub sender_canonical_classes: Classes,
    pub recipient_canonical_maps: Maps,
    pub recipient_canonical_classes: Classes,
    /// `masquerade_domains`: (domain, `!` = never masquerade it), in order.
    pub masquerade_domains: Vec<(String, bool)>,
    pub masquerade_classes: Classes,
    /// Local parts never masqueraded, lower case.
    pub masquerade_exceptions: Vec<String>,
    /// propagate_unmatched_extensions lists canonical / virtual.
    pub propagate_canonical: bool,
    pub propagate_virtual: bool,
}

/// Whether `domain` names this host for table lookups (myorigin,
/// mydestination, an address of inet_interfaces): then a bare `user`
/// key applies.
pub(crate) fn domain_is_local(s: &Settings, domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if d == s.myorigin || s.mydestination.contains(&d) {
        return true;
    }
    d.strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .and_then(|ip| ip.parse().ok())
        .is_some_and(|ip| s.inet_interface_addrs.contains(&ip))
}

/// One lookup of `addr` in `maps`: the results (a comma-separated list),
/// each with an `@domain` result completed with the user, and the
/// address's extension carried over when the key matched without it.
pub fn map_address(
    s: &Settings,
    maps: &Maps,
    addr: &str,
    propagate: bool,
) -> Result<Option<Vec<String>>, DictError> {
    if maps.is_empty() {
        return Ok(None);
    }
    let split = order::split_address(addr, &s.order.recipient_delimiter);
    let local_domain = split.domain.is_some_and(|d| domain_is_local(s, d));
    let keys = order::address_keys(addr, &s.order, local_domain);
    let Some(found) = maps.find_first(&keys)? else {
        return Ok(None);
    };
    // The extension (with its delimiter) the key did not include.
    let extension = match (found.form, split.base) {
        (Form::AddressWithoutExtension | Form::LocalPartWithoutExtension, Some(base))
            if propagate =>
        {
            &split.local[base.len()..]
        }
        _ => "",
    };
    // Results are put in canonical form, as any address is.
    let results = rostfix_config::value::split_list(&found.value)
        .into_iter()
        .map(|r| {
            let result = if let Some(domain) = r.strip_prefix('@') {
                // `@domain` result: the user moves to the new domain.
                format!("{}@{domain}", split.local)
            } else if extension.is_empty() {
                r.to_string()
            } else {
                match r.rsplit_once('@') {
                    Some((l, d)) => format!("{l}{extension}@{d}"),
                    None => format!("{r}{extension}"),
                }
            };
            crate::resolve::canonical_form(s, &result)
        })
        .collect();
    Ok(Some(results))
}

/// Why an address could not be rewritten: the message waits (451).
#[derive(Debug)]
pub enum RewriteError {
    Lookup(DictError),
    /// Tables that nest too deep or expand too far.
    Unreasonable(String),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Lookup(e) => write!(f, "table lookup problem: {e}"),
            RewriteError::Unreasonable(what) => f.write_str(what),
        }
    }
}

impl From<DictError> for RewriteError {
    fn from(e: DictError) -> RewriteError {
        RewriteError::Lookup(e)
    }
}

/// A table whose results still change after this many rounds loops.
const MAX_ROUNDS: usize = 10;

/// canonical(5) for an address in `class`: sender_ or
/// recipient_canonical_maps first, then canonical_maps, each applied
/// again to its own result until it stops changing.
pub fn canonical(s: &Settings, addr: &str, class: AddressClass) -> Result<String, RewriteError> {
    let r = &s.rewriting;
    let mut out = addr.to_string();
    let specific = if class.is_sender() {
        (&r.sender_canonical_maps, &r.sender_canonical_classes)
    } else {
        (&r.recipient_canonical_maps, &r.recipient_canonical_classes)
    };
    for (maps, classes) in [specific, (&r.canonical_maps, &r.canonical_classes)] {
        if !classes.has(class) {
            continue;
        }
        let mut settled = false;
        for _ in 0..MAX_ROUNDS {
            match map_address(s, maps, &out, r.propagate_canonical)? {
                Some(mut v) if !v.is_empty() && !v[0].eq_ignore_ascii_case(&out) => {
                    out = v.swap_remove(0)
                }
                _ => {
                    settled = true;
                    break;
                }
            }
        }
        if !settled {
            return Err(RewriteError::Unreasonable(format!(
                "unreasonable {} map nesting for {addr}",
                maps.param
            )));
        }
    }
    Ok(out)
}

/// Address masquerading: `user@host.sub.example.com` becomes
/// `user@example.com` when masquerade_domains lists `example.com` (the
/// first listed domain that matches wins; `!domain` stops there), unless
/// the user is in masquerade_exceptions.
pub fn masquerade(s: &Settings, addr: &str, class: AddressClass) -> String {
    let r = &s.rewriting;
    if r.masquerade_domains.is_empty() || !r.masquerade_classes.has(class) {
        return addr.to_string();
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return addr.to_string();
    };
    if r.masquerade_exceptions
        .contains(&local.to_ascii_lowercase())
    {
        return addr.to_string();
    }
    let lower = domain.to_ascii_lowercase();
    for (masq, never) in &r.masquerade_domains {
        // A listed domain itself is never stripped, and ends the search
        // (`foo.example.com example.com` keeps `user@foo.example.com`).
        if lower == *masq {
            break;
        }
        let is_sub = lower.len() > masq.len()
            && lower.ends_with(masq.as_str())
            && lower.as_bytes()[lower.len() - masq.len() - 1] == b'.';
        if is_sub {
            if *never {
                break;
            }
            return format!("{local}@{masq}");
        }
    }
    addr.to_string()
}

/// virtual_alias_maps expansion (virtual(5)): recursive, one-to-many, an
/// address that maps to itself is kept. Past
/// virtual_alias_recursion_limit levels or virtual_alias_expansion_limit
/// results, or when a lookup fails, the message waits.
pub fn expand_aliases(s: &Settings, addr: &str) -> Result<Vec<String>, RewriteError> {
    fn walk(
        s: &Settings,
        addr: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<(), RewriteError> {
        if depth > s.virtual_alias_recursion_limit {
            return Err(RewriteError::Unreasonable(format!(
                "unreasonable virtual_alias_maps map nesting for {addr}"
            )));
        }
        if out.len() >= s.virtual_alias_expansion_limit {
            return Err(RewriteError::Unreasonable(format!(
                "unreasonable virtual_alias_maps map expansion size for {addr}"
            )));
        }
        let propagate = s.rewriting.propagate_virtual;
        match map_address(s, &s.virtual_alias_maps, addr, propagate)? {
            Some(targets) => {
                for target in targets {
                    if target.eq_ignore_ascii_case(addr) {
                        out.push(target);
                    } else {
                        walk(s, &target, depth + 1, out)?;
                    }
                }
            }
            None => out.push(addr.to_string()),
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(s, addr, 0, &mut out)?;
    Ok(out)
}

/// Calls `f` on every address in an address-list header value (RFC 5322
/// `mailbox-list`/`address-list`, groups included) and puts its answer in
/// place of the address; display names, comments and spacing stay as
/// they were. Returns `None` when nothing changed.
pub fn rewrite_address_list(
    value: &str,
    mut f: impl FnMut(&str) -> Option<String>,
) -> Option<String> {
    let spans = address_spans(value);
    let mut out = String::with_capacity(value.len() + 16);
    let mut last = 0;
    let mut changed = false;
    for (start, end) in spans {
        if let Some(new) = f(&value[start..end])
            && new != value[start..end]
        {
            out.push_str(&value[last..start]);
            out.push_str(&new);
            last = end;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&value[last..]);
    Some(out)
}

/// A rewritten address-list value laid out as Postfix's cleanup writes
/// one (`name` is the header's name): a space after the colon, then the
/// mailboxes in order, joined on a line while the line stays under 70
/// characters, else each on a line of its own (recorded in
/// tests/delivery/cases/sendmail-verify and Postfix's `-t` facts). A
/// list with a group is left as it is.
pub fn refold(name: &str, value: &str) -> String {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut angle) = (0usize, false, false);
    let mut cur = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ':' | ';' if !quoted && depth == 0 && !angle => return value.to_string(),
            ',' if !quoted && depth == 0 && !angle => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    let mailboxes: Vec<String> = parts
        .iter()
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = String::from(" ");
    // The length of the line so far, from its start ("To: ..." for the
    // first line).
    let mut line = name.len() + 1;
    for (i, m) in mailboxes.iter().enumerate() {
        let piece = if i + 1 < mailboxes.len() {
            format!("{m},")
        } else {
            m.clone()
        };
        if i == 0 {
            line += 1 + piece.len();
        } else if line + 1 + piece.len() < 70 {
            out.push(' ');
            line += 1 + piece.len();
        } else {
            out.push_str("\n\t");
            line = piece.len();
        }
        out.push_str(&piece);
    }
    out
}

/// The byte ranges of the addr-specs in an address list: the part inside
/// `<...>` (after a source route) when there is one, else the mailbox
/// without surrounding white space and comments.
fn address_spans(v: &str) -> Vec<(usize, usize)> {
    let b = v.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    // The current mailbox: its first and last significant byte, and the
    // span of an angle-bracketed address in it.
    let mut first: Option<usize> = None;
    let mut end = 0;
    let mut angle: Option<(usize, usize)> = None;
    let finish = |first: &mut Option<usize>,
                  end: usize,
                  angle: &mut Option<(usize, usize)>,
                  spans: &mut Vec<(usize, usize)>| {
        if let Some(a) = angle.take() {
            spans.push(a);
        } else if let Some(f) = first {
            spans.push((*f, end));
        }
        *first = None;
    };
    while i < b.len() {
        match b[i] {
            b'"' => {
                first.get_or_insert(i);
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                end = i.min(b.len());
                continue;
            }
            b'(' => {
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'[' => {
                // A domain literal may hold colons (`[IPv6:...]`).
                first.get_or_insert(i);
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
                end = (i + 1).min(b.len());
            }
            b'<' => {
                let open = i + 1;
                while i < b.len() && b[i] != b'>' {
                    i += 1;
                }
                let inner = &v[open..i.min(b.len())];
                // A source route (`@a,@b:user@c`) stays as it is.
                let skip = if inner.starts_with('@') {
                    inner.find(':').map_or(0, |c| c + 1)
                } else {
                    0
                };
                angle = Some((open + skip, i.min(b.len())));
            }
            b',' | b';' => finish(&mut first, end, &mut angle, &mut spans),
            b':' if angle.is_none() => {
                // A group's display name ends here.
                first = None;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => {
                first.get_or_insert(i);
                end = i + 1;
            }
        }
        i += 1;
    }
    finish(&mut first, end, &mut angle, &mut spans);
    spans.retain(|(s, e)| s < e);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(v: &str) -> Option<String> {
        rewrite_address_list(v, |a| Some(a.to_ascii_uppercase()))
    }

    #[test]
    fn rewritten_lists_are_refolded_one_mailbox_per_line() {
        assert_eq!(refold("To", "\n\tnobody@localhost"), " nobody@localhost");
        assert_eq!(
            refold("To", " alice@example.test,\n\tbob@example.test"),
            " alice@example.test, bob@example.test"
        );
        assert_eq!(
            refold(
                "To",
                " Nobody Person <nobody@mail.example.test>, \"Quoted, Name\" <list@localhost>"
            ),
            " Nobody Person <nobody@mail.example.test>,\n\t\"Quoted, Name\" <list@localhost>"
        );
        assert_eq!(refold("To", " team: a@x, b@y;"), " team: a@x, b@y;");
    }

    #[test]
    fn addresses_in_headers_are_found_and_replaced_in_place() {
        assert_eq!(upper(" a@b").as_deref(), Some(" A@B"));
        assert_eq!(
            upper(" \"Doe, J\" <j@x>, k@y (K, Y)").as_deref(),
            Some(" \"Doe, J\" <J@X>, K@Y (K, Y)")
        );
        assert_eq!(
            upper(" team: a@x, B <b@y>;, c@z").as_deref(),
            Some(" team: A@X, B <B@Y>;, C@Z")
        );
        assert_eq!(upper(" <@r1,@r2:u@d>").as_deref(), Some(" <@r1,@r2:U@D>"));
        assert_eq!(upper(" undisclosed-recipients:;"), None);
        assert_eq!(upper(" \"a b\"@c").as_deref(), Some(" \"A B\"@C"));
        assert_eq!(upper(" A@B"), None);
    }
}

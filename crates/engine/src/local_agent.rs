//! local(8), first part: mail for a user of this host (a domain in
//! mydestination) goes to the Unix account's mailbox: `$home/$home_mailbox`
//! when home_mailbox is set, else `$mail_spool_directory/user` (a Maildir
//! when either ends in `/`, else an mbox file under mailbox_delivery_lock,
//! at most mailbox_size_limit), written as the user. A message that
//! already carries `Delivered-To:` for the recipient is a forwarding loop
//! and bounces. The address extension (`user+ext`) is ignored for the
//! mailbox.
//!
//! Aliases (alias_maps, aliases(5)) that expand to addresses: the
//! expansion follows local aliases recursively, and the addresses it ends
//! in get the message forwarded, as one new queue file with
//! `Delivered-To: RECIPIENT` on top (so a loop comes back as one).
//!
//! Not yet (issue 4): .forward, mailbox_command, `/file`, `|command` and
//! `:include:` alias targets (a recipient with one waits, deferred), and
//! owner- aliases.

/// How deep local aliases may nest, and how many addresses one may reach.
const ALIAS_DEPTH: usize = 100;
const ALIAS_FANOUT: usize = 1000;

use std::path::PathBuf;

use rostfix_maps::order;
use rostfix_queue::Syncer;

use crate::settings::Settings;
use crate::virtual_agent::{self, Failure, FsIdentity, Mailbox, Message, Written};

/// Whether the message's headers already say `Delivered-To: recipient`
/// (compared without regard to case).
fn looped(body: &[u8], recipient: &str) -> bool {
    for line in body.split(|&b| b == b'\n') {
        if line.is_empty() {
            return false;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if name.eq_ignore_ascii_case(b"Delivered-To")
            && value[1..]
                .trim_ascii()
                .eq_ignore_ascii_case(recipient.as_bytes())
        {
            return true;
        }
    }
    false
}

/// What local(8) did with a recipient.
#[derive(Debug)]
pub enum Delivered {
    /// Written to the user's mailbox (to be made durable and published).
    Stored(Written),
    /// Forwarded through an alias: the new message's queue ID (durable).
    Forwarded(rostfix_queue::QueueId),
    /// Both: an alias kept a copy in the recipient's own mailbox.
    Both(Written, rostfix_queue::QueueId),
}

/// The user part of a local address: lower case, without extension.
fn user_of(s: &Settings, address: &str) -> (String, String) {
    let local = address
        .rsplit_once('@')
        .map_or(address, |(l, _)| l)
        .to_ascii_lowercase();
    let user = order::strip_extension(&local, &s.order.recipient_delimiter)
        .unwrap_or(&local)
        .to_string();
    (local, user)
}

/// Where an alias sends a recipient's mail.
#[derive(Debug, Default)]
struct Expansion {
    /// Addresses to forward to.
    forward: Vec<String>,
    /// The recipient's own mailbox too (`user: \user, ...`, or an alias
    /// that names the recipient itself).
    own_mailbox: bool,
}

/// Expands `address` through alias_maps, following aliases of local
/// addresses; `None` when it has no alias.
fn expand(s: &Settings, address: &str) -> Result<Option<Expansion>, Failure> {
    fn walk(
        s: &Settings,
        address: &str,
        top: &str,
        depth: usize,
        seen: &mut Vec<String>,
        out: &mut Expansion,
    ) -> Result<bool, Failure> {
        let (local, _) = user_of(s, address);
        let value = match s
            .local
            .alias_maps
            .find_first(&order::alias_keys(&local, &s.order))
        {
            Ok(Some(found)) => found.value,
            Ok(None) => return Ok(false),
            Err(e) => {
                return Err(Failure::Defer(
                    "4.3.0".into(),
                    format!("alias database unavailable: {e}"),
                ));
            }
        };
        if depth >= ALIAS_DEPTH || out.forward.len() >= ALIAS_FANOUT {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("unreasonable alias expansion for {address}"),
            ));
        }
        for target in rostfix_config::value::split_list(&value) {
            let unsupported = || {
                Failure::Defer(
                    "4.3.0".into(),
                    format!("alias target {target} of {local} is not supported yet"),
                )
            };
            if target.starts_with(['/', '|']) || target.starts_with(":include:") {
                return Err(unsupported());
            }
            // `\user` stops expansion: the recipient's own mailbox (another
            // user's is not supported yet).
            if let Some(user) = target.strip_prefix('\\') {
                let own = crate::resolve::canonical_form(s, user);
                if user_of(s, &own).1 != user_of(s, top).1 {
                    return Err(unsupported());
                }
                out.own_mailbox = true;
                continue;
            }
            let next = crate::resolve::canonical_form(s, target);
            let lower = next.to_ascii_lowercase();
            if lower == top.to_ascii_lowercase() {
                out.own_mailbox = true;
                continue;
            }
            if seen.contains(&lower) {
                continue;
            }
            seen.push(lower);
            let local_target =
                crate::resolve::resolve(s, &next).class == crate::resolve::Class::Local;
            if !(local_target && walk(s, &next, top, depth + 1, seen, out)?) {
                out.forward.push(next);
            }
        }
        Ok(true)
    }
    let mut seen = vec![address.to_ascii_lowercase()];
    let mut out = Expansion::default();
    Ok(walk(s, address, address, 0, &mut seen, &mut out)?.then_some(out))
}

/// Delivers one message to the local recipient `recipient` (canonical,
/// `user@domain`).
pub fn deliver(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
) -> Result<Delivered, Failure> {
    if looped(m.body, recipient) {
        return Err(Failure::Bounce(
            "5.4.6".into(),
            format!("mail forwarding loop for {recipient}"),
        ));
    }
    let expansion = expand(s, recipient)?;
    let forwarded = match &expansion {
        Some(e) if !e.forward.is_empty() => {
            Some(forward(s, syncer, m, recipient, original, &e.forward)?)
        }
        _ => None,
    };
    if let (Some(e), Some(id)) = (&expansion, &forwarded)
        && !e.own_mailbox
    {
        return Ok(Delivered::Forwarded(id.clone()));
    }
    let (_, user) = user_of(s, recipient);
    let account = match nix::unistd::User::from_name(&user) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(Failure::Bounce(
                "5.1.1".into(),
                format!("unknown user: \"{user}\""),
            ));
        }
        Err(e) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("user lookup for {user}: {e}"),
            ));
        }
    };
    let path = if s.local.home_mailbox.is_empty() {
        let spool = &s.local.mail_spool_directory;
        let maildir = if spool.ends_with('/') { "/" } else { "" };
        PathBuf::from(format!("{}/{user}{maildir}", spool.trim_end_matches('/')))
    } else {
        let mut p = account.dir.into_os_string();
        p.push("/");
        p.push(&s.local.home_mailbox);
        PathBuf::from(p)
    };
    // Written as the user; an unprivileged process writes as itself.
    let owner = s
        .privileged
        .then(|| (account.uid.as_raw(), account.gid.as_raw()));
    let _identity = match owner {
        Some((uid, gid)) => Some(FsIdentity::switch(uid, gid)?),
        None => None,
    };
    let prefix = virtual_agent::prepended(m.sender, original, recipient);
    let mailbox = Mailbox {
        path: &path,
        owner,
        limit: s.local.mailbox_size_limit,
        lock: &s.local.mailbox_delivery_lock,
    };
    let written = virtual_agent::store(s, syncer, &mailbox, m, &prefix)?;
    Ok(match forwarded {
        Some(id) => Delivered::Both(written, id),
        None => Delivered::Stored(written),
    })
}

/// Queues the message again for `targets` (with `Delivered-To:
/// recipient` and a Received header on top), durably.
fn forward(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
    targets: &[String],
) -> Result<rostfix_queue::QueueId, Failure> {
    let orig = if original.is_empty() {
        recipient
    } else {
        original
    };
    let recipients: Vec<(String, String)> = targets
        .iter()
        .map(|t| (t.clone(), orig.to_string()))
        .collect();
    crate::cleanup::queue_local(s, syncer, m.sender, &recipients, |id| {
        let stamp = rostfix_message::date::rfc5322(&rostfix_message::date::local(
            rostfix_message::date::now(),
        ));
        let mut text = format!(
            "Received: by {} ({})\n\tid {id}; {stamp}\nDelivered-To: {recipient}\n",
            s.myhostname, s.mail_name
        )
        .into_bytes();
        text.extend_from_slice(m.body.strip_suffix(b"\n").unwrap_or(m.body));
        text
    })
    .map_err(|e| Failure::Defer("4.3.0".into(), format!("cannot forward: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_to_for_the_recipient_is_a_loop() {
        let body = b"DELIVERED-TO: NOBODY@LocalHost\nSubject: x\n\nDelivered-To: other\n";
        assert!(looped(body, "nobody@localhost"));
        assert!(!looped(body, "other"));
        assert!(!looped(
            b"Delivered-To: someone@localhost\n\n",
            "nobody@localhost"
        ));
    }
}

//! local(8), first part: mail for a user of this host (a domain in
//! mydestination) goes to the Unix account's mailbox: `$home/$home_mailbox`
//! when home_mailbox is set, else `$mail_spool_directory/user` (a Maildir
//! when either ends in `/`, else an mbox file under mailbox_delivery_lock,
//! at most mailbox_size_limit), written as the user. A message that
//! already carries `Delivered-To:` for the recipient is a forwarding loop
//! and bounces. The address extension (`user+ext`) is ignored for the
//! mailbox.
//!
//! Not yet (issue 4): aliases, .forward, mailbox_command, files and
//! commands. Until alias expansion is there, a recipient that alias_maps
//! lists is deferred rather than delivered past its alias.

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

/// Delivers one message to the local recipient `recipient` (canonical,
/// `user@domain`).
pub fn deliver(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
) -> Result<Written, Failure> {
    if looped(m.body, recipient) {
        return Err(Failure::Bounce(
            "5.4.6".into(),
            format!("mail forwarding loop for {recipient}"),
        ));
    }
    let local = recipient
        .rsplit_once('@')
        .map_or(recipient, |(l, _)| l)
        .to_ascii_lowercase();
    let user = order::strip_extension(&local, &s.order.recipient_delimiter)
        .unwrap_or(&local)
        .to_string();
    match s
        .local
        .alias_maps
        .find_first(&order::alias_keys(&local, &s.order))
    {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("alias expansion for {user} is not available yet"),
            ));
        }
        Err(e) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("alias database unavailable: {e}"),
            ));
        }
    }
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
    virtual_agent::store(s, syncer, &mailbox, m, &prefix)
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

//! local(8): mail for a user of this host (a domain in mydestination).
//!
//! The recipient's user part (lower case, without its extension) is
//! looked up in alias_maps (aliases(5)); an alias lists destinations,
//! followed recursively through other local aliases. A user without an
//! alias may have a .forward file (the first of forward_path that exists,
//! read as the user) listing destinations the same way. A destination is
//! an address (forwarded: the message is queued again, with
//! `Delivered-To: RECIPIENT` on top, so a loop comes back as one), the
//! recipient itself or `\user` (its own mailbox), `|command` (run by
//! [`crate::local_command`]) or `/file` (appended in mbox form), the last
//! two only where allow_mail_to_commands / allow_mail_to_files allow
//! (`alias`, `forward`). Alias commands and files run as default_privs;
//! .forward ones as the user.
//!
//! The mailbox is `$home/$home_mailbox` when home_mailbox is set, else
//! `$mail_spool_directory/user` (a Maildir when either ends in `/`, else
//! an mbox file under mailbox_delivery_lock, at most
//! mailbox_size_limit), written as the user. A message that already
//! carries `Delivered-To:` for the recipient is a forwarding loop and
//! bounces.
//!
//! mailbox_transport hands the mailbox delivery to another transport
//! (qmgr passes the recipient on); fallback_transport does so for users
//! this host does not know, before luser_relay.
//!
//! mailbox_command_maps (by user) or mailbox_command, when set, delivers
//! to the mailbox instead: a command run as the user (as default_privs
//! for root).
//!
//! `:include:/file` reads more destinations from a file (its commands
//! and files run as the file's owner, default_privs if root owns it;
//! allowed where allow_mail_to_* say `include`).
//!
//! An alias with an `owner-NAME` alias forwards from
//! `owner-NAME@$myorigin`, so that failures go to the list's owner.
//!
//! Not yet: `\otheruser`, mailbox_transport_maps and
//! fallback_transport_maps, alias commands
//! run as the alias database's owner, aliases followed from inside a
//! `:include:` file.

/// How deep local aliases may nest, and how many addresses one may reach.
const ALIAS_DEPTH: usize = 100;
const ALIAS_FANOUT: usize = 1000;

use std::path::PathBuf;

use rostfix_maps::order;
use rostfix_queue::Syncer;
use rostfix_queue::file::Dsn;

use crate::local_command::Privileges;
use crate::log::Log;
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

/// What local(8) did with a recipient: what it wrote to the user's
/// mailbox (to be made durable and published), and the deliveries done
/// already (`forwarded as ID`, `delivered to command: ...`), each a log
/// line of its own. Forwarded messages are durable and to be announced.
#[derive(Debug, Default)]
pub struct Delivered {
    pub stored: Option<Written>,
    pub done: Vec<String>,
    pub forwarded: Option<rostfix_queue::QueueId>,
    /// A destination failed while others were delivered: the recipient
    /// is deferred or bounced all the same (`stored` is then none).
    pub failed: Option<Failure>,
    /// mailbox_transport or fallback_transport: the mailbox delivery is
    /// this transport's (`transport:nexthop`), which qmgr hands it to.
    pub pass: Option<String>,
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

/// A local recipient's parts, by the names local(8)'s expansions give
/// them (forward_path, luser_relay): `local` (lower case, with any
/// extension), `user` (without it), `extension`, the
/// `recipient_delimiter` that set it off, `domain`, `recipient`.
struct LocalParts<'a> {
    recipient: &'a str,
    local: String,
    user: String,
    extension: String,
    delimiter: String,
    domain: &'a str,
}

impl<'a> LocalParts<'a> {
    fn of(s: &Settings, recipient: &'a str) -> LocalParts<'a> {
        let (local, user) = user_of(s, recipient);
        let extension = local
            .strip_prefix(&user)
            .and_then(|rest| rest.get(1..))
            .unwrap_or("")
            .to_string();
        let delimiter = if extension.is_empty() {
            String::new()
        } else {
            local
                .get(user.len()..user.len() + 1)
                .unwrap_or("")
                .to_string()
        };
        LocalParts {
            recipient,
            domain: recipient.rsplit_once('@').map_or("", |(_, d)| d),
            local,
            user,
            extension,
            delimiter,
        }
    }

    fn attr(&self, name: &str) -> Option<&str> {
        Some(match name {
            "user" => &self.user,
            "local" => &self.local,
            "extension" => &self.extension,
            "recipient_delimiter" => &self.delimiter,
            "domain" => self.domain,
            "recipient" => self.recipient,
            _ => return None,
        })
    }
}

/// Where a destination list came from: it decides what it may do and
/// whose privileges it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Alias,
    Forward,
    /// A `:include:` file, owned by this user ID.
    Include {
        owner: u32,
        depth: usize,
    },
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Alias => "alias",
            Source::Forward => "forward",
            Source::Include { .. } => "include",
        }
    }
}

/// How deep `:include:` files may nest.
const INCLUDE_DEPTH: usize = 10;

/// Where an alias or .forward sends a recipient's mail.
#[derive(Debug, Default)]
struct Expansion {
    /// Addresses to forward to.
    forward: Vec<String>,
    /// The recipient's own mailbox too (`user: \user, ...`, or a list
    /// that names the recipient itself).
    own_mailbox: bool,
    /// `|command` and `/file` destinations, in order, with their source.
    commands: Vec<(String, Source)>,
    files: Vec<(String, Source)>,
    /// The alias has an `owner-` alias: the forwarded copy goes out
    /// from `owner-NAME@$myorigin` (so failures reach the list's owner)
    /// and its recipients are original recipients themselves.
    owner: Option<String>,
}

/// The items of an aliases(5) value or .forward file: separated by
/// commas (and line ends) outside double quotes, trimmed, a quoted item
/// unquoted.
fn items(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | '\n' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty() && !i.starts_with('#'))
        .map(
            |i| match i.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                // `"|cmd arg"`, `"/a file"`: the whole item was quoted.
                Some(inner) if inner.starts_with(['|', '/']) => inner.replace("\\\"", "\""),
                _ => i,
            },
        )
        .collect()
}

/// Sorts one destination into `out`. `top` is the recipient being
/// delivered; a local address is returned for the caller to follow.
fn destination(
    s: &Settings,
    item: &str,
    source: Source,
    top: &str,
    out: &mut Expansion,
) -> Result<Option<String>, Failure> {
    let restricted =
        |what: &str| Failure::Bounce("5.7.1".into(), format!("mail to {what} is restricted"));
    let allowed = |list: &[String]| list.iter().any(|a| a == source.name());
    if let Some(cmd) = item.strip_prefix('|') {
        if !allowed(&s.local.allow_mail_to_commands) {
            return Err(restricted("command"));
        }
        out.commands.push((cmd.to_string(), source));
        return Ok(None);
    }
    if item.starts_with('/') {
        if !allowed(&s.local.allow_mail_to_files) {
            return Err(restricted("file"));
        }
        out.files.push((item.to_string(), source));
        return Ok(None);
    }
    if let Some(path) = item.strip_prefix(":include:") {
        include(s, path.trim(), source, top, out)?;
        return Ok(None);
    }
    // `\user` stops expansion: the recipient's own mailbox (another
    // user's is not supported yet).
    if let Some(user) = item.strip_prefix('\\') {
        let own = crate::resolve::canonical_form(s, user);
        if user_of(s, &own).1 != user_of(s, top).1 {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("destination {item} is not supported yet"),
            ));
        }
        out.own_mailbox = true;
        return Ok(None);
    }
    let next = crate::resolve::canonical_form(s, item);
    if next.eq_ignore_ascii_case(top) {
        out.own_mailbox = true;
        return Ok(None);
    }
    Ok(Some(next))
}

/// The destinations of a `:include:` file, read with the privileges of
/// the list that names it, into `out` (addresses are forwarded as they
/// are). Its commands and files run as the file's owner, or as
/// default_privs when root owns it.
fn include(
    s: &Settings,
    path: &str,
    source: Source,
    top: &str,
    out: &mut Expansion,
) -> Result<(), Failure> {
    let depth = match source {
        Source::Include { depth, .. } => depth + 1,
        _ => 0,
    };
    if depth >= INCLUDE_DEPTH {
        return Err(Failure::Defer(
            "4.3.0".into(),
            format!(":include:{path}: too deeply nested"),
        ));
    }
    let who = privileges(s, &source, &user_of(s, top).1)?;
    let read = {
        let _identity = FsIdentity::maybe(s.privileged.then_some((who.uid, who.gid)))?;
        read_list(std::path::Path::new(path))
    };
    let (owner, text) = read.map_err(|e| {
        Failure::Defer(
            "4.3.0".into(),
            format!("cannot open include file {path}: {e}"),
        )
    })?;
    let nested = Source::Include { owner, depth };
    for item in items(&text) {
        if let Some(next) = destination(s, &item, nested, top, out)? {
            out.forward.push(next);
        }
    }
    Ok(())
}

/// `text` with only the characters `allowed` keeps (others become `_`),
/// and no `/` or `..`: safe inside a file name.
fn path_safe(allowed: &str, text: &str) -> String {
    let t: String = text
        .chars()
        .map(|c| if allowed.contains(c) { c } else { '_' })
        .collect();
    t.replace('/', "_").replace("..", "__")
}

/// luser_relay with local(8)'s `$user`, `$local`, `$extension`,
/// `$domain`, `$recipient`, `$recipient_delimiter` filled in, in canonical
/// form.
fn luser_relay(s: &Settings, recipient: &str) -> Result<String, Failure> {
    let p = LocalParts::of(s, recipient);
    let attr = |name: &str| p.attr(name).map(str::to_string);
    let relay = rostfix_config::expand::expand(&s.local.luser_relay, &attr, &mut |_| {})
        .map_err(|e| Failure::Defer("4.3.0".into(), format!("luser_relay: {e}")))?;
    Ok(crate::resolve::canonical_form(s, &relay))
}

/// The most a .forward or :include: file may hold.
const LIST_FILE_LIMIT: u64 = 1 << 20;

/// A .forward or :include: file's owner and text: opened without
/// following links or blocking (a FIFO, /dev/zero), a plain file no one
/// else may write, of reasonable size; else InvalidInput.
fn read_list(path: &std::path::Path) -> std::io::Result<(u32, String)> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    let refuse = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        )
    };
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(refuse("writable by everybody"));
    }
    let mut text = String::new();
    f.take(LIST_FILE_LIMIT).read_to_string(&mut text)?;
    Ok((meta.uid(), text))
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
        for item in items(&value) {
            let Some(next) = destination(s, &item, Source::Alias, top, out)? else {
                continue;
            };
            let lower = next.to_ascii_lowercase();
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
    if !walk(s, address, address, 0, &mut seen, &mut out)? {
        return Ok(None);
    }
    let (local, _) = user_of(s, address);
    let owner = format!("owner-{local}");
    match s
        .local
        .alias_maps
        .find_first(&order::alias_keys(&owner, &s.order))
    {
        Ok(Some(_)) => out.owner = Some(crate::resolve::canonical_form(s, &owner)),
        Ok(None) => {}
        Err(e) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("alias database unavailable: {e}"),
            ));
        }
    }
    Ok(Some(out))
}

/// The user's .forward: the first file of forward_path that exists, read
/// as the user; `None` when there is none (or it lists nothing).
fn dot_forward(
    s: &Settings,
    account: &nix::unistd::User,
    recipient: &str,
) -> Result<Option<Expansion>, Failure> {
    let p = LocalParts::of(s, recipient);
    let home = account.dir.to_string_lossy();
    let shell = account.shell.to_string_lossy();
    // forward_expansion_filter: what a sender controls (the recipient's
    // local part and extension) keeps only the characters allowed, and
    // no path climbing (`+../../etc/x` would read a file of root's as
    // the .forward, and mail its lines back in bounces).
    let attr = |name: &str| -> Option<String> {
        match name {
            "home" => Some(home.to_string()),
            "shell" => Some(shell.to_string()),
            _ => p
                .attr(name)
                .map(|v| path_safe(&s.local.forward_expansion_filter, v)),
        }
    };
    let paths = rostfix_config::expand::expand(&s.local.forward_path, &attr, &mut |_| {})
        .map_err(|e| Failure::Defer("4.3.0".into(), format!("forward_path: {e}")))?;
    let _identity = FsIdentity::maybe(
        s.privileged
            .then(|| (account.uid.as_raw(), account.gid.as_raw())),
    )?;
    for path in rostfix_config::value::split_list(&paths) {
        let text = match read_list(std::path::Path::new(path)) {
            // Owned by the user or root, as Postfix requires; any other
            // is not the user's word (the first that exists decides).
            Ok((owner, t)) if owner == 0 || owner == account.uid.as_raw() => t,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => continue,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(None),
            Err(e) => {
                return Err(Failure::Defer(
                    "4.3.0".into(),
                    format!("cannot read {path}: {e}"),
                ));
            }
        };
        let mut out = Expansion::default();
        for item in items(&text) {
            if let Some(next) = destination(s, &item, Source::Forward, recipient, &mut out)? {
                out.forward.push(next);
            }
        }
        let empty = out.forward.is_empty()
            && out.commands.is_empty()
            && out.files.is_empty()
            && !out.own_mailbox;
        return Ok((!empty).then_some(out));
    }
    Ok(None)
}

/// Delivers one message to the local recipient `recipient` (canonical,
/// `user@domain`).
pub fn deliver(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
    dsn: &Dsn,
) -> Result<Delivered, Failure> {
    if looped(m.body, recipient) {
        return Err(Failure::Bounce(
            "5.4.6".into(),
            format!("mail forwarding loop for {recipient}"),
        ));
    }
    let aliased = expand(s, recipient)?;
    let (_, user) = user_of(s, recipient);
    let account = || match nix::unistd::User::from_name(&user) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(Failure::Bounce(
            "5.1.1".into(),
            format!("unknown user: \"{user}\""),
        )),
        Err(e) => Err(Failure::Defer(
            "4.3.0".into(),
            format!("user lookup for {user}: {e}"),
        )),
    };
    let expansion = match aliased {
        Some(e) => e,
        None => match account() {
            Ok(account) => match dot_forward(s, &account, recipient)? {
                Some(e) => e,
                None => Expansion {
                    own_mailbox: true,
                    ..Expansion::default()
                },
            },
            // Mail for a user this host does not know: mailbox_transport
            // takes it as any other (it knows its own users, as recorded
            // in mailbox-transport), else fallback_transport, else
            // luser_relay.
            Err(Failure::Bounce(..))
                if !s.local.mailbox_transport.is_empty()
                    || !s.local.fallback_transport.is_empty() =>
            {
                let t = if s.local.mailbox_transport.is_empty() {
                    &s.local.fallback_transport
                } else {
                    &s.local.mailbox_transport
                };
                return Ok(Delivered {
                    pass: Some(t.clone()),
                    ..Delivered::default()
                });
            }
            Err(Failure::Bounce(..)) if !s.local.luser_relay.is_empty() => Expansion {
                forward: vec![luser_relay(s, recipient)?],
                ..Expansion::default()
            },
            Err(f) => return Err(f),
        },
    };
    let mut delivered = Delivered::default();
    let prefix = virtual_agent::prepended(m.sender, original, recipient);
    // Each destination on its own: one that fails does not keep mail
    // from the others (the failure is reported with what was done).
    let mut failed: Option<Failure> = None;
    fn note(failed: &mut Option<Failure>, result: Result<String, Failure>, done: &mut Vec<String>) {
        match result {
            Ok(text) => done.push(text),
            // A deferral wins over a bounce: the recipient is tried again.
            Err(f) => {
                if failed.is_none() || matches!(f, Failure::Defer(..)) {
                    *failed = Some(f);
                }
            }
        }
    }
    for (path, source) in &expansion.files {
        let result = privileges(s, source, &user)
            .and_then(|who| to_file(s, syncer, m, &prefix, path, &who))
            .map(|()| format!("delivered to file: {path}"));
        note(&mut failed, result, &mut delivered.done);
    }
    for (command, source) in &expansion.commands {
        let result = privileges(s, source, &user)
            .and_then(|who| to_command(s, m, &prefix, recipient, original, command, &who))
            .map(|()| format!("delivered to command: {command}"));
        note(&mut failed, result, &mut delivered.done);
    }
    if !expansion.forward.is_empty() {
        match forward(s, log, syncer, m, recipient, original, dsn, &expansion) {
            Ok(id) => {
                delivered.done.push(format!("forwarded as {id}"));
                delivered.forwarded = Some(id);
            }
            Err(f) => note(&mut failed, Err(f), &mut delivered.done),
        }
    }
    // The mailbox last, and only when all else went well: a mailbox
    // write waits for its group commit, which a failed recipient does
    // not get.
    if expansion.own_mailbox && failed.is_none() && !s.local.mailbox_transport.is_empty() {
        // mailbox_transport delivers the mailbox (after aliases and
        // .forward), as Postfix's deliver_pass.
        delivered.pass = Some(s.local.mailbox_transport.clone());
    } else if expansion.own_mailbox && failed.is_none() {
        match mailbox_command(s, &user)? {
            Some(command) => {
                let result = privileges(s, &Source::Forward, &user)
                    .and_then(|who| to_command(s, m, &prefix, recipient, original, &command, &who))
                    .map(|()| format!("delivered to command: {command}"));
                note(&mut failed, result, &mut delivered.done);
            }
            None => match account().and_then(|a| to_mailbox(s, syncer, m, &prefix, &user, a)) {
                Ok(w) => delivered.stored = Some(w),
                Err(f) => note(&mut failed, Err(f), &mut delivered.done),
            },
        }
    }
    match failed {
        None => Ok(delivered),
        Some(f) if delivered.done.is_empty() && delivered.forwarded.is_none() => Err(f),
        Some(f) => {
            delivered.failed = Some(f);
            Ok(delivered)
        }
    }
}

/// The command that delivers to `user`'s mailbox, if any:
/// mailbox_command_maps (by user name), else mailbox_command. Its text is
/// not `$name`-expanded: `$SENDER` and the like are for its shell.
fn mailbox_command(s: &Settings, user: &str) -> Result<Option<String>, Failure> {
    match s.local.mailbox_command_maps.find(user, true) {
        Ok(Some(command)) => return Ok(Some(command)),
        Ok(None) => {}
        Err(e) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("mailbox_command_maps lookup failure: {e}"),
            ));
        }
    }
    Ok(Some(s.local.mailbox_command.clone()).filter(|c| !c.is_empty()))
}

/// What delivery to `recipient` would do (sendmail -bv), without doing
/// it: an alias is expanded, a user has a mailbox (or a mailbox
/// command), an unknown user bounces.
pub fn would_deliver(s: &Settings, recipient: &str) -> Result<String, Failure> {
    if expand(s, recipient)?.is_some() {
        return Ok("alias expanded".into());
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
    if let Some(command) = mailbox_command(s, &user)? {
        return Ok(format!("delivers to command: {command}"));
    }
    let path = if s.local.home_mailbox.is_empty() {
        s.local.mail_spool_directory.clone()
    } else {
        format!("{}/{}", account.dir.display(), s.local.home_mailbox)
    };
    Ok(virtual_agent::mailbox_kind(std::path::Path::new(&path)).to_string())
}

/// Whose privileges a command or file of `source` has: the user's for
/// a .forward or the mailbox, default_privs for an alias, and for root.
fn privileges(s: &Settings, source: &Source, user: &str) -> Result<Privileges, Failure> {
    let owner_name;
    let name = match source {
        Source::Forward => user,
        Source::Alias => &s.local.default_privs,
        Source::Include { owner: 0, .. } => &s.local.default_privs,
        Source::Include { owner, .. } => {
            owner_name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*owner))
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| s.local.default_privs.clone());
            &owner_name
        }
    };
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) if u.uid.is_root() && *source == Source::Forward => {
            privileges(s, &Source::Alias, user)
        }
        Ok(Some(u)) => Ok(Privileges {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            user: u.name,
            home: u.dir.to_string_lossy().into_owned(),
            shell: u.shell.to_string_lossy().into_owned(),
        }),
        _ => Err(Failure::Defer(
            "4.3.0".into(),
            format!("unknown user for privileges: {name}"),
        )),
    }
}

/// The user's own mailbox.
fn to_mailbox(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    prefix: &[u8],
    user: &str,
    account: nix::unistd::User,
) -> Result<Written, Failure> {
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
    let _identity = FsIdentity::maybe(owner)?;
    let mailbox = Mailbox {
        path: &path,
        user: Some(user),
        owner,
        limit: s.local.mailbox_size_limit,
        lock: &s.local.mailbox_delivery_lock,
    };
    virtual_agent::store(s, syncer, &mailbox, m, prefix)
}

/// Appends the message to a file in mbox form, or stores it in a Maildir
/// (a path ending in `/`), with `who`'s privileges; durable, and named,
/// before it returns.
fn to_file(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    prefix: &[u8],
    path: &str,
    who: &Privileges,
) -> Result<(), Failure> {
    let owner = s.privileged.then_some((who.uid, who.gid));
    let mailbox = Mailbox {
        path: std::path::Path::new(path),
        user: Some(&who.user),
        owner,
        limit: s.local.mailbox_size_limit,
        lock: &s.local.mailbox_delivery_lock,
    };
    let since = std::time::Instant::now();
    // Written as `who`; publish switches to `owner` itself.
    let written = {
        let _identity = FsIdentity::maybe(owner)?;
        virtual_agent::store(s, syncer, &mailbox, m, prefix)?
    };
    let commit = |file: &std::fs::File| {
        syncer
            .wait(file, since)
            .map_err(|e| Failure::Defer("4.3.0".into(), format!("group commit: {e}")))
    };
    if written.unpublished() {
        commit(&written.file)?;
        if written.publish()? {
            commit(&written.file)?;
        }
    }
    Ok(())
}

/// Runs `command` with the message on its input, as `who`.
fn to_command(
    s: &Settings,
    m: &Message,
    prefix: &[u8],
    recipient: &str,
    original: &str,
    command: &str,
    who: &Privileges,
) -> Result<(), Failure> {
    let p = LocalParts::of(s, recipient);
    let (rcpt_local, domain) = (
        recipient.rsplit_once('@').map_or(recipient, |(l, _)| l),
        p.domain,
    );
    let extension = Some(p.extension.as_str()).filter(|e| !e.is_empty());
    let attr = |name: &str| rostfix_queue::file::attr(m.attrs, name).map(str::to_string);
    let mut env: Vec<(&'static str, String)> = Vec::new();
    for (var, attr_name) in [
        ("CLIENT_ADDRESS", "client_address"),
        ("CLIENT_HELO", "helo_name"),
        ("CLIENT_HOSTNAME", "client_name"),
        ("CLIENT_PROTOCOL", "protocol_name"),
    ] {
        if let Some(v) = attr(attr_name) {
            env.push((var, v));
        }
    }
    env.push(("DOMAIN", domain.to_string()));
    if let Some(ext) = extension {
        env.push(("EXTENSION", ext.to_string()));
    }
    env.push(("HOME", who.home.clone()));
    env.push(("LOCAL", rcpt_local.to_string()));
    env.push(("LOGNAME", who.user.clone()));
    env.push((
        "ORIGINAL_RECIPIENT",
        if original.is_empty() {
            recipient
        } else {
            original
        }
        .to_string(),
    ));
    env.push(("PATH", "/usr/bin:/bin".into()));
    env.push(("RECIPIENT", recipient.to_string()));
    env.push(("SENDER", m.sender.to_string()));
    env.push(("SHELL", who.shell.clone()));
    env.push(("USER", who.user.clone()));
    for name in &s.local.export_environment {
        let value = match name.as_str() {
            "MAIL_CONFIG" => Some(s.local.config_directory.to_string_lossy().into_owned()),
            // As Postfix: commands get the C locale's messages.
            "LANG" => Some("C".to_string()),
            other => std::env::var(other).ok(),
        };
        if let (Some(v), Some(k)) = (value, EXPORTABLE.iter().find(|k| **k == name.as_str())) {
            env.push((k, v));
        }
    }
    let from = if m.sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        m.sender
    };
    let stamp =
        rostfix_message::date::asctime(&rostfix_message::date::local(rostfix_message::date::now()));
    let mut input = format!("From {from}  {stamp}\n").into_bytes();
    input.extend_from_slice(prefix);
    input.extend_from_slice(m.body);
    crate::local_command::run(crate::local_command::Job {
        command,
        argv: None,
        program: "local",
        privileges: who,
        switch: s.privileged,
        env,
        queue_directory: &s.queue_directory,
        time_limit: s.local.command_time_limit,
        input,
    })
}

/// The export_environment names a command may be given (the environment
/// is built from static names).
const EXPORTABLE: &[&str] = &["TZ", "MAIL_CONFIG", "LANG", "LC_ALL", "LC_CTYPE", "TERM"];

/// The static name of an export_environment variable a command may get.
pub(crate) fn exportable(name: &str) -> Option<&'static str> {
    EXPORTABLE.iter().find(|k| **k == name).copied()
}

/// Queues the message again for `targets` (with `Delivered-To:
/// recipient` and a Received header on top), durably.
#[allow(clippy::too_many_arguments)]
fn forward(
    s: &Settings,
    log: &Log,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
    dsn: &Dsn,
    expansion: &Expansion,
) -> Result<rostfix_queue::QueueId, Failure> {
    let orig = if original.is_empty() {
        recipient
    } else {
        original
    };
    let recipients: Vec<(String, String)> = expansion
        .forward
        .iter()
        .map(|t| match expansion.owner {
            Some(_) => (t.clone(), t.clone()),
            None => (t.clone(), orig.to_string()),
        })
        .collect();
    let sender = expansion.owner.as_deref().unwrap_or(m.sender);
    // The header names the recipient as the alias lookup saw it.
    let delivered_to = recipient.to_ascii_lowercase();
    let attr = |name: &str| rostfix_queue::file::attr(m.attrs, name).unwrap_or("");
    // Success was reported as "expanded" here (RFC 3461 6.2.7.1): the
    // members are not reported on again.
    let notify = if dsn.notify.is_empty() {
        String::new()
    } else {
        let rest: Vec<&str> = dsn.notify.split(',').filter(|n| *n != "success").collect();
        if rest.is_empty() {
            "never".to_string()
        } else {
            rest.join(",")
        }
    };
    let carried = crate::cleanup::Carried {
        dsn: Dsn {
            notify,
            // A list with an owner starts afresh: its members are the
            // original recipients (recorded in owner-alias).
            orcpt: match expansion.owner {
                Some(_) => String::new(),
                None => dsn.orcpt.clone(),
            },
        },
        ret: attr("dsn_ret"),
        envid: attr("dsn_envid"),
    };
    crate::cleanup::queue_forward(s, log, syncer, sender, &recipients, &carried, |id| {
        let stamp = rostfix_message::date::rfc5322(&rostfix_message::date::local(
            rostfix_message::date::now(),
        ));
        let mut text = format!(
            "Received: by {} ({})\n\tid {id}; {stamp}\nDelivered-To: {delivered_to}\n",
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
    fn sender_chosen_parts_cannot_climb_out_of_forward_path() {
        let allowed = "abcdefghijklmnopqrstuvwxyz0123456789!@%-_=+:,./";
        assert_eq!(path_safe(allowed, "tag"), "tag");
        assert_eq!(path_safe(allowed, "../../etc/passwd"), "______etc_passwd");
        assert_eq!(path_safe(allowed, "a b$c"), "a_b_c");
        assert_eq!(path_safe(allowed, "john.doe"), "john.doe");
    }

    #[test]
    fn items_split_on_commas_outside_quotes() {
        assert_eq!(
            items(r#"a@b, "|/bin/sh -c 'x, y'" ,\nobody"#),
            vec!["a@b", "|/bin/sh -c 'x, y'", "\\nobody"]
        );
        assert_eq!(items("# comment\nalice\n\n"), vec!["alice"]);
        assert_eq!(items(r#""john doe"@x"#), vec![r#""john doe"@x"#]);
    }

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

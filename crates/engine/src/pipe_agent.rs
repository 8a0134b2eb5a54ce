//! pipe(8): delivery to a command that master.cf names (`dovecot unix -
//! n n - - pipe flags=DRhu user=vmail argv=/usr/lib/dovecot/deliver -f
//! ${sender} -d ${recipient}`). The command runs as `user=` (as the
//! engine's own user when Rostfix runs unprivileged), without a shell,
//! with the message on its standard input as `flags=` shapes it; its exit
//! status means what it means for local(8)'s commands (sysexits).
//!
//! One difference from Postfix, on purpose: a macro never makes an
//! argument that begins with `-` (an address `-X...`, an extension
//! `user+-oX`: a program could take it for an option); the delivery
//! bounces instead.

use std::path::PathBuf;
use std::time::Duration;

use rostfix_config::Config;
use rostfix_smtp::path::external_form;

use crate::local_command::{Job, Privileges};
use crate::settings::Settings;
use crate::virtual_agent::Failure;

/// `flags=` letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// B: an empty line after the message.
    pub blank_line: bool,
    /// D: Delivered-To.
    pub delivered_to: bool,
    /// F: the mbox `From sender  date` line.
    pub from_line: bool,
    /// O: X-Original-To.
    pub original_to: bool,
    /// R: Return-Path.
    pub return_path: bool,
    /// h: domains in lower case (in addresses, ${domain}, ${nexthop}).
    pub lower_domain: bool,
    /// u: local parts in lower case.
    pub lower_local: bool,
    /// q: address arguments in RFC 822 quoted form.
    pub quote: bool,
    /// `.`: a leading dot doubled.
    pub dot_stuff: bool,
    /// `>`: `From ` at the start of a line made `>From `.
    pub quote_from: bool,
    /// X: final delivery (the success report says delivered, not relayed).
    pub final_delivery: bool,
}

impl Flags {
    fn parse(text: &str) -> Result<Flags, String> {
        let mut f = Flags::default();
        for c in text.chars() {
            match c {
                'B' => f.blank_line = true,
                'D' => f.delivered_to = true,
                'F' => f.from_line = true,
                'O' => f.original_to = true,
                'R' => f.return_path = true,
                'h' => f.lower_domain = true,
                'u' => f.lower_local = true,
                'q' => f.quote = true,
                '.' => f.dot_stuff = true,
                '>' => f.quote_from = true,
                'X' => f.final_delivery = true,
                other => return Err(format!("unknown flag: {other}")),
            }
        }
        Ok(f)
    }
}

/// One pipe service of master.cf.
#[derive(Debug)]
pub struct Pipe {
    pub service: String,
    /// The log's program name (`postfix/pipe`).
    pub log_tag: String,
    pub flags: Flags,
    /// `user=name[:group]`: name, uid, gid; `None` when unprivileged.
    pub user: Option<(String, u32, u32)>,
    pub argv: Vec<String>,
    /// `size=`: larger messages bounce (0: no limit).
    pub size_limit: u64,
    /// `eol=`: the line end written (`\n` unless told).
    pub eol: String,
    /// `null_sender=`: what ${sender} is for the null sender.
    pub null_sender: String,
    /// `directory=`: where the command runs (the queue directory).
    pub directory: Option<PathBuf>,
    /// Recipients per command (`<service>_destination_recipient_limit`).
    pub recipient_limit: usize,
    /// `<service>_time_limit` (command_time_limit).
    pub time_limit: Duration,
    /// export_environment, as NAME=value pairs.
    pub environment: Vec<(&'static str, String)>,
    /// recipient_delimiter, for ${user} and ${extension}.
    pub recipient_delimiter: String,
    /// What is wrong with the service's master.cf entry (a user= that
    /// does not exist): its deliveries wait, the rest of the mail system
    /// runs (Postfix's pipe(8) finds such errors when it is used).
    pub broken: Option<String>,
}

impl Pipe {
    /// A service whose entry is wrong: every delivery to it defers with
    /// `why`.
    pub fn broken(name: &str, log_tag: String, why: String) -> Pipe {
        Pipe {
            service: name.to_string(),
            log_tag,
            flags: Flags::default(),
            user: None,
            argv: Vec::new(),
            size_limit: 0,
            eol: "\n".into(),
            null_sender: String::new(),
            directory: None,
            recipient_limit: 1,
            time_limit: Duration::from_secs(1),
            environment: Vec::new(),
            recipient_delimiter: String::new(),
            broken: Some(why),
        }
    }

    /// The service `name` with master.cf arguments `args` (its per-service
    /// view `cf`). `privileged`: whether user= can be switched to.
    pub fn from_config(
        cf: &Config,
        name: &str,
        args: &[String],
        privileged: bool,
    ) -> Result<Pipe, String> {
        let e = |e: rostfix_config::ConfigError| e.to_string();
        let mut it = args.iter().peekable();
        // Daemon options first (-o name=value, -v, -D).
        while let Some(a) = it.peek() {
            if !a.starts_with('-') {
                break;
            }
            let option = it.next().map(String::as_str);
            if option == Some("-o") {
                it.next();
            }
        }
        let mut p = Pipe {
            service: name.to_string(),
            log_tag: format!("{}/pipe", cf.string("syslog_name").map_err(e)?),
            flags: Flags::default(),
            user: None,
            argv: Vec::new(),
            size_limit: 0,
            eol: "\n".into(),
            null_sender: "MAILER-DAEMON".into(),
            directory: None,
            recipient_limit: usize::try_from(crate::settings::transport_int(
                cf,
                name,
                "destination_recipient_limit",
            )?)
            .unwrap_or(0),
            time_limit: Duration::from_secs(
                cf.time(&format!("{name}_time_limit"))
                    .or_else(|_| cf.time("command_time_limit"))
                    .map_err(e)?,
            ),
            environment: Vec::new(),
            recipient_delimiter: cf.string("recipient_delimiter").map_err(e)?,
            broken: None,
        };
        let mut user = None;
        while let Some(a) = it.next() {
            let (key, value) = a.split_once('=').unwrap_or((a.as_str(), ""));
            match key {
                "flags" => p.flags = Flags::parse(value)?,
                "user" => user = Some(value.to_string()),
                "size" => {
                    p.size_limit = value.parse().map_err(|_| format!("bad size: {value}"))?;
                }
                "eol" => p.eol = value.replace("\\r", "\r").replace("\\n", "\n"),
                "null_sender" => p.null_sender = value.to_string(),
                "directory" => p.directory = Some(PathBuf::from(value)),
                "argv" => {
                    p.argv.push(value.to_string());
                    p.argv.extend(it.by_ref().cloned());
                }
                // Accepted and without effect here.
                "umask" | "hop_count_limit" => {}
                other => return Err(format!("unknown attribute: {other}")),
            }
        }
        if p.argv.first().is_none_or(|a| a.is_empty()) {
            return Err("missing argv= attribute".into());
        }
        let Some(user) = user else {
            return Err("missing user= attribute".into());
        };
        if privileged {
            let (name, group) = match user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (user.as_str(), None),
            };
            let account = nix::unistd::User::from_name(name)
                .map_err(|e| format!("user={name}: {e}"))?
                .ok_or_else(|| format!("user={name}: unknown user"))?;
            let gid = match group {
                Some(g) => nix::unistd::Group::from_name(g)
                    .map_err(|e| format!("user={user}: {e}"))?
                    .ok_or_else(|| format!("user={user}: unknown group {g}"))?
                    .gid
                    .as_raw(),
                None => account.gid.as_raw(),
            };
            if account.uid.as_raw() == 0 || gid == 0 {
                return Err(format!("user={user}: root privileges are not allowed"));
            }
            p.user = Some((name.to_string(), account.uid.as_raw(), gid));
        }
        for n in rostfix_config::value::split_list(&cf.string("export_environment").map_err(e)?) {
            let (k, v) = n.split_once('=').unwrap_or((n, ""));
            if let Some(k) = crate::local_agent::exportable(k) {
                let v = if v.is_empty() {
                    std::env::var(k).unwrap_or_default()
                } else {
                    v.to_string()
                };
                if !v.is_empty() {
                    p.environment.push((k, v));
                }
            }
        }
        Ok(p)
    }
}

/// A recipient handed to pipe(8).
#[derive(Debug, Clone, Copy)]
pub struct Rcpt<'a> {
    pub address: &'a str,
    pub original: &'a str,
}

/// The message and what the macros say about it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub id: &'a str,
    pub sender: &'a str,
    pub attrs: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Runs the command once for `recipients` (all going to `nexthop`).
pub fn deliver(
    s: &Settings,
    pipe: &Pipe,
    m: &Message<'_>,
    nexthop: &str,
    recipients: &[Rcpt<'_>],
) -> Result<String, Failure> {
    if let Some(why) = &pipe.broken {
        return Err(Failure::Defer(
            "4.3.5".into(),
            format!("mail system configuration error: {why}"),
        ));
    }
    if pipe.size_limit > 0 && m.body.len() as u64 > pipe.size_limit {
        return Err(Failure::Bounce("5.2.3".into(), "message too large".into()));
    }
    let argv = arguments(pipe, m, nexthop, recipients)?;
    let input = content(pipe, m, recipients);
    let privileges = match &pipe.user {
        Some((name, uid, gid)) => Privileges {
            uid: *uid,
            gid: *gid,
            user: name.clone(),
            home: String::new(),
            shell: String::new(),
        },
        None => Privileges {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            user: String::new(),
            home: String::new(),
            shell: String::new(),
        },
    };
    let shown = argv.join(" ");
    crate::local_command::run(Job {
        command: &shown,
        argv: Some(&argv),
        program: "pipe",
        privileges: &privileges,
        switch: pipe.user.is_some(),
        env: pipe.environment.clone(),
        queue_directory: pipe.directory.as_deref().unwrap_or(&s.queue_directory),
        time_limit: pipe.time_limit,
        input,
    })?;
    Ok(format!("delivered via {} service", pipe.service))
}

/// An address as a macro gives it: the flags' case folding, quoted
/// with `q`.
fn address(flags: Flags, addr: &str) -> String {
    let (local, domain) = match addr.rfind('@') {
        Some(at) => (&addr[..at], Some(&addr[at + 1..])),
        None => (addr, None),
    };
    let local = if flags.lower_local {
        local.to_lowercase()
    } else {
        local.to_string()
    };
    let folded = match domain {
        Some(d) if flags.lower_domain => format!("{local}@{}", d.to_lowercase()),
        Some(d) => format!("{local}@{d}"),
        None => local,
    };
    if flags.quote {
        external_form(&folded)
    } else {
        folded
    }
}

/// The command's arguments: each argv= word with its macros expanded; a
/// word with a per-recipient macro becomes one word per recipient.
fn arguments(
    pipe: &Pipe,
    m: &Message<'_>,
    nexthop: &str,
    recipients: &[Rcpt<'_>],
) -> Result<Vec<String>, Failure> {
    let f = pipe.flags;
    let attr = |n: &str| {
        rostfix_queue::file::attr(m.attrs, n)
            .unwrap_or("")
            .to_string()
    };
    let lower_domain = |d: &str| {
        if f.lower_domain {
            d.to_lowercase()
        } else {
            d.to_string()
        }
    };
    let sender = if m.sender.is_empty() {
        pipe.null_sender.clone()
    } else {
        address(f, m.sender)
    };
    let global = |name: &str| -> Option<String> {
        Some(match name {
            "sender" => sender.clone(),
            "nexthop" => lower_domain(nexthop),
            "queue_id" => m.id.to_string(),
            "size" => m.body.len().to_string(),
            "client_address" => attr("client_address"),
            "client_hostname" => attr("client_name"),
            "client_helo" => attr("helo_name"),
            "client_protocol" => attr("protocol_name"),
            "client_port" => attr("client_port"),
            "sasl_method" => attr("sasl_method"),
            "sasl_username" => attr("sasl_username"),
            "sasl_sender" => attr("sasl_sender"),
            _ => return None,
        })
    };
    let per_recipient = |name: &str, r: &Rcpt<'_>| -> Option<String> {
        let (local, domain) = match r.address.rfind('@') {
            Some(at) => (&r.address[..at], &r.address[at + 1..]),
            None => (r.address, ""),
        };
        let local = if f.lower_local {
            local.to_lowercase()
        } else {
            local.to_string()
        };
        let (user, extension) = split_extension(&local, &pipe.recipient_delimiter);
        Some(match name {
            "recipient" => address(f, r.address),
            "original_recipient" => address(
                f,
                if r.original.is_empty() {
                    r.address
                } else {
                    r.original
                },
            ),
            "user" => user.to_string(),
            "extension" => extension.to_string(),
            "mailbox" => local.clone(),
            "domain" => lower_domain(domain),
            _ => return None,
        })
    };
    let mut out = Vec::new();
    for word in &pipe.argv {
        let names = macro_names(word);
        let per = names.iter().any(|n| {
            per_recipient(
                n,
                &Rcpt {
                    address: "",
                    original: "",
                },
            )
            .is_some()
        });
        let expand = |r: Option<&Rcpt<'_>>| -> Result<String, Failure> {
            let value = substitute(word, |name| {
                Ok::<_, Failure>(
                    r.and_then(|r| per_recipient(name, r))
                        .or_else(|| global(name))
                        .unwrap_or_default(),
                )
            })?;
            // A word that a macro made begin with `-` (an address, an
            // extension `user+-oX`) would read as an option.
            if value.starts_with('-') && !word.starts_with('-') {
                let (dsn, what) = if names.first().is_some_and(|n| n == "sender") {
                    ("5.1.7", "bad sender address syntax")
                } else {
                    ("5.1.3", "bad address syntax")
                };
                return Err(Failure::Bounce(
                    dsn.into(),
                    format!("{what}: {value} would be a command option"),
                ));
            }
            Ok(value)
        };
        if per {
            for r in recipients {
                out.push(expand(Some(r))?);
            }
        } else {
            out.push(expand(recipients.first())?);
        }
    }
    Ok(out)
}

/// `local` split at the first delimiter character into user and
/// extension.
fn split_extension<'a>(local: &'a str, delimiters: &str) -> (&'a str, &'a str) {
    if delimiters.is_empty() {
        return (local, "");
    }
    match local.find(|c| delimiters.contains(c)) {
        Some(i) if i > 0 => (&local[..i], &local[i + 1..]),
        _ => (local, ""),
    }
}

/// The names of the `$name` and `${name}` macros in `word`.
fn macro_names(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let _ = substitute(word, |n| {
        out.push(n.to_string());
        Ok::<_, Failure>(String::new())
    });
    out
}

/// `word` with each `$name` / `${name}` replaced by `value(name)`; `$$`
/// is a dollar.
fn substitute<E>(
    word: &str,
    mut value: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{')
            && let Some(end) = r.find('}')
        {
            out.push_str(&value(&r[..end])?);
            rest = &r[end + 1..];
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if end == 0 {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&value(&after[..end])?);
                rest = &after[end..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The command's standard input: the lines flags= asks for, then the
/// message, with `>From `, dot doubling, the line end and a final empty
/// line as asked.
fn content(pipe: &Pipe, m: &Message<'_>, recipients: &[Rcpt<'_>]) -> Vec<u8> {
    let f = pipe.flags;
    let eol = pipe.eol.as_bytes();
    let mut out = Vec::with_capacity(m.body.len() + 256);
    let line = |out: &mut Vec<u8>, text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(eol);
    };
    // The null sender is null_sender= here too (recorded with
    // dovecot-lda in tests/dovecot: `Return-Path: <MAILER-DAEMON>`).
    let sender = if m.sender.is_empty() {
        pipe.null_sender.clone()
    } else {
        external_form(m.sender)
    };
    if f.from_line {
        use rostfix_message::date;
        let date = date::asctime(&date::local(date::now()));
        line(&mut out, &format!("From {sender}  {date}"));
    }
    if f.return_path {
        line(&mut out, &format!("Return-Path: <{sender}>"));
    }
    if f.original_to {
        for r in recipients {
            let o = if r.original.is_empty() {
                r.address
            } else {
                r.original
            };
            line(&mut out, &format!("X-Original-To: {}", external_form(o)));
        }
    }
    if f.delivered_to {
        for r in recipients {
            line(
                &mut out,
                &format!("Delivered-To: {}", external_form(r.address)),
            );
        }
    }
    for l in m.body.split_inclusive(|&b| b == b'\n') {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        if f.quote_from && l.starts_with(b"From ") {
            out.push(b'>');
        }
        if f.dot_stuff && l.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(l);
        out.extend_from_slice(eol);
    }
    if f.blank_line {
        out.extend_from_slice(eol);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros() {
        let v = |n: &str| Ok::<_, ()>(format!("<{n}>"));
        assert_eq!(substitute("-f ${sender}", v).unwrap(), "-f <sender>");
        assert_eq!(substitute("$user@$domain", v).unwrap(), "<user>@<domain>");
        assert_eq!(substitute("a$$b $", v).unwrap(), "a$b $");
        assert_eq!(
            macro_names("${recipient}x$nexthop"),
            ["recipient", "nexthop"]
        );
    }

    fn pipe(argv: &[&str]) -> Pipe {
        let mut p = Pipe::broken("test", "postfix/pipe".into(), String::new());
        p.broken = None;
        p.argv = argv.iter().map(|s| s.to_string()).collect();
        p.recipient_delimiter = "+".into();
        p.null_sender = "MAILER-DAEMON".into();
        p
    }

    #[test]
    fn no_argument_becomes_an_option() {
        let m = Message {
            id: "Q1",
            sender: "-Xevil@example.test",
            attrs: &[],
            body: b"",
        };
        let ok = Rcpt {
            address: "user+ext@example.test",
            original: "",
        };
        let p = pipe(&["/bin/cmd", "-f", "${sender}", "-e", "${extension}"]);
        let err = arguments(&p, &m, "hop", &[ok]).unwrap_err();
        assert_eq!(err.parts().0, "5.1.7");
        let m = Message {
            sender: "sender@example.test",
            ..m
        };
        assert_eq!(
            arguments(&p, &m, "hop", &[ok]).unwrap(),
            ["/bin/cmd", "-f", "sender@example.test", "-e", "ext"]
        );
        let dash = Rcpt {
            address: "user+-oQ/tmp@example.test",
            original: "",
        };
        assert_eq!(
            arguments(&p, &m, "hop", &[dash]).unwrap_err().parts().0,
            "5.1.3"
        );
        // Several recipients: one argument each.
        let p = pipe(&["/bin/cmd", "${recipient}"]);
        let two = [
            ok,
            Rcpt {
                address: "b@x",
                original: "",
            },
        ];
        assert_eq!(
            arguments(&p, &m, "hop", &two).unwrap(),
            ["/bin/cmd", "user+ext@example.test", "b@x"]
        );
    }

    #[test]
    fn flags_and_addresses() {
        let f = Flags::parse("DRhu").unwrap();
        assert!(f.delivered_to && f.return_path && f.lower_domain && f.lower_local);
        assert!(Flags::parse("Z").is_err());
        let q = Flags::parse("hq").unwrap();
        assert_eq!(
            address(q, "John Doe+Tag@Flag.EXAMPLE"),
            "\"John Doe+Tag\"@flag.example"
        );
        assert_eq!(address(Flags::default(), "User@Ex"), "User@Ex");
        assert_eq!(split_extension("user+ext", "+"), ("user", "ext"));
        assert_eq!(split_extension("+ext", "+"), ("+ext", ""));
    }
}

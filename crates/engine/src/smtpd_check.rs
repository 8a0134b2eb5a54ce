//! smtpd's access restrictions: smtpd_client_restrictions,
//! smtpd_helo_restrictions, smtpd_sender_restrictions,
//! smtpd_relay_restrictions and smtpd_recipient_restrictions, read in that
//! order when a recipient is given (smtpd_delay_reject = yes, Postfix's
//! default: the client, HELO and sender are judged at RCPT time, when the
//! reply can name the recipient and permit_sasl_authenticated applies
//! whatever came first).
//!
//! Each list is read left to right. The first restriction that permits
//! ends its list (the next list is read), the first that rejects ends the
//! check; `warn_if_reject` makes the next restriction's rejection a
//! logged warning instead. A restriction this server does not know
//! answers 451 4.3.5 (Postfix's "Server configuration error"), so a
//! configuration that names one never turns into an open relay.

use std::net::IpAddr;

use rostfix_maps::order;
use rostfix_smtp::reply::Reply;

use crate::settings::Settings;

/// What a recipient is judged with.
#[derive(Debug)]
pub struct Request<'a> {
    pub client: IpAddr,
    /// `unknown[127.0.0.1]`
    pub client_name: &'a str,
    pub helo: Option<&'a str>,
    /// MAIL FROM's address (empty: the null sender).
    pub sender: &'a str,
    pub recipient: &'a str,
    /// The recipient is in a domain this server takes mail for (local,
    /// virtual, relay_domains) and names no further route.
    pub recipient_authorized: bool,
    /// SASL is on in this session (smtpd_sasl_auth_enable, and TLS is up
    /// or smtpd_tls_auth_only is off).
    pub sasl_active: bool,
    /// The SASL login name, once AUTH succeeded.
    pub sasl_username: Option<&'a str>,
}

/// The judgement: rejections that warn_if_reject turned into warnings
/// (logged as `reject_warning`), problems of the configuration (logged as
/// warnings), and the outcome.
#[derive(Debug, Default)]
pub struct Verdict {
    pub warnings: Vec<Reply>,
    pub config_errors: Vec<String>,
    pub refused: Option<Reply>,
}

/// The list a restriction stands in; it names what a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Client,
    Helo,
    Sender,
    Relay,
    Recipient,
}

enum Outcome {
    Permit,
    Reject(Reply),
    Dunno,
    /// Not a restriction this server knows (the warning to log).
    Unknown(String),
    /// Not applicable here (the warning to log); the list goes on.
    Ignored(String),
}

/// Reads the five lists for one recipient.
pub fn check_recipient(s: &Settings, req: &Request) -> Verdict {
    let mut verdict = Verdict::default();
    let lists = [
        (Stage::Client, &s.client_restrictions),
        (Stage::Helo, &s.helo_restrictions),
        (Stage::Sender, &s.sender_restrictions),
        (Stage::Relay, &s.relay_restrictions),
        (Stage::Recipient, &s.recipient_restrictions),
    ];
    for (stage, list) in lists {
        let mut items = list.iter().map(String::as_str);
        let mut warn = false;
        'list: while let Some(name) = items.next() {
            if name.eq_ignore_ascii_case("warn_if_reject") {
                warn = true;
                continue;
            }
            let one = [name];
            let parts: &[&str] = if name.eq_ignore_ascii_case("reject_sender_login_mismatch") {
                &SENDER_LOGIN_MISMATCH
            } else {
                &one
            };
            for &name in parts {
                match restriction(s, req, stage, name, &mut items) {
                    Outcome::Dunno => {}
                    Outcome::Ignored(warning) => verdict.config_errors.push(warning),
                    Outcome::Permit => break 'list,
                    Outcome::Reject(reply) if warn => verdict.warnings.push(reply),
                    Outcome::Reject(reply) => {
                        verdict.refused = Some(reply);
                        return verdict;
                    }
                    Outcome::Unknown(warning) => {
                        verdict.config_errors.push(warning);
                        verdict.refused = Some(Reply::new(451, "4.3.5 Server configuration error"));
                        return verdict;
                    }
                }
            }
            warn = false;
        }
    }
    verdict
}

const AUTHENTICATED_MISMATCH: &str = "reject_authenticated_sender_login_mismatch";
const UNAUTHENTICATED_MISMATCH: &str = "reject_unauthenticated_sender_login_mismatch";

/// reject_sender_login_mismatch is its authenticated and unauthenticated
/// halves, each judged (and warned about) as itself, as Postfix logs them.
const SENDER_LOGIN_MISMATCH: [&str; 2] = [AUTHENTICATED_MISMATCH, UNAUTHENTICATED_MISMATCH];

/// One restriction; `args` yields the words after it (a table).
fn restriction<'a>(
    s: &Settings,
    req: &Request,
    stage: Stage,
    name: &str,
    _args: &mut impl Iterator<Item = &'a str>,
) -> Outcome {
    let authenticated = req.sasl_username.is_some();
    match name.to_ascii_lowercase().as_str() {
        "permit" => Outcome::Permit,
        "reject" => Outcome::Reject(rejected(req, stage, 554, "5.7.1", "Access denied")),
        "permit_mynetworks" if s.in_mynetworks(req.client) => Outcome::Permit,
        "permit_sasl_authenticated" if authenticated => Outcome::Permit,
        "permit_mynetworks" | "permit_sasl_authenticated" => Outcome::Dunno,
        "reject_unauth_destination" if !req.recipient_authorized => Outcome::Reject(Reply::new(
            554,
            format!("5.7.1 <{}>: Relay access denied", req.recipient),
        )),
        "defer_unauth_destination" if !req.recipient_authorized => Outcome::Reject(Reply::new(
            454,
            format!("4.7.1 <{}>: Relay access denied", req.recipient),
        )),
        "reject_unauth_destination" | "defer_unauth_destination" => Outcome::Dunno,
        AUTHENTICATED_MISMATCH => sender_login(s, req, name, Login::Authenticated),
        "reject_known_sender_login_mismatch" => sender_login(s, req, name, Login::Known),
        UNAUTHENTICATED_MISMATCH => sender_login(s, req, name, Login::Unauthenticated),
        _ => Outcome::Unknown(format!("unknown smtpd restriction: \"{name}\"")),
    }
}

/// Which sender/login check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// An authenticated client may use only the addresses its login owns.
    Authenticated,
    /// The same, for the addresses the table lists at all.
    Known,
    /// No unauthenticated client may use an address some login owns.
    Unauthenticated,
}

/// The `553 5.7.1 <sender>: Sender address rejected: ...` checks against
/// smtpd_sender_login_maps (login names compared ignoring case). Without
/// SASL in this service they are ignored with a warning; without the
/// table, or for the null sender, nothing is checked.
fn sender_login(s: &Settings, req: &Request, name: &str, login: Login) -> Outcome {
    if !req.sasl_active {
        return Outcome::Ignored(format!("restriction `{name}' ignored: no SASL support"));
    }
    if s.sender_login_maps.is_empty() || req.sender.is_empty() {
        return Outcome::Dunno;
    }
    let owners = match (req.sasl_username, login) {
        (Some(_), Login::Unauthenticated) | (None, Login::Authenticated | Login::Known) => {
            return Outcome::Dunno;
        }
        _ => match sender_owners(s, req.sender) {
            Ok(owners) => owners,
            Err(()) => {
                let why = "Temporary lookup failure";
                return Outcome::Reject(rejected(req, Stage::Sender, 451, "4.3.0", why));
            }
        },
    };
    let refuse = |why: &str| Outcome::Reject(rejected(req, Stage::Sender, 553, "5.7.1", why));
    match (req.sasl_username, owners) {
        (None, Some(_)) => refuse("not logged in"),
        (None, None) => Outcome::Dunno,
        (Some(_), None) if login == Login::Known => Outcome::Dunno,
        (Some(user), owners) => {
            if owners.is_some_and(|o| o.iter().any(|n| n.eq_ignore_ascii_case(user))) {
                Outcome::Dunno
            } else {
                refuse(&format!("not owned by user {user}"))
            }
        }
    }
}

/// The login names smtpd_sender_login_maps gives for a sender address (in
/// its canonical form), looked up as virtual(5) addresses are: the
/// address, the local part alone in this host's own domains, `@domain`.
fn sender_owners(s: &Settings, sender: &str) -> Result<Option<Vec<String>>, ()> {
    let address = crate::resolve::resolve(s, sender).address;
    let split = order::split_address(&address, &s.order.recipient_delimiter);
    let own = split
        .domain
        .is_some_and(|d| crate::rewrite::domain_is_local(s, d));
    let keys = order::address_keys(&address, &s.order, own);
    let found = s.sender_login_maps.find_first(&keys).map_err(|_| ())?;
    Ok(found.map(|f| {
        rostfix_config::value::split_list(&f.value)
            .into_iter()
            .map(str::to_string)
            .collect()
    }))
}

/// A rejection about what `stage` judges: the client, the HELO name, the
/// sender or the recipient.
fn rejected(req: &Request, stage: Stage, code: u16, dsn: &str, why: &str) -> Reply {
    let (shown, what) = match stage {
        Stage::Client => (req.client_name, "Client host"),
        Stage::Helo => (req.helo.unwrap_or(""), "Helo command"),
        Stage::Sender => (req.sender, "Sender address"),
        Stage::Relay | Stage::Recipient => (req.recipient, "Recipient address"),
    };
    Reply::new(code, format!("{dsn} <{shown}>: {what} rejected: {why}"))
}

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
//! logged warning instead. An access(5) table's result is an action (OK,
//! REJECT, DEFER, DUNNO, `NNN text`) or restrictions read in its place. A
//! restriction or action this server does not know answers 451 4.3.5
//! (Postfix's "Server configuration error"), so a configuration that
//! names one never turns into an open relay.
//!
//! smtpd_data_restrictions are read at DATA (and the first BDAT), and
//! smtpd_end_of_data_restrictions after the message's last line, each
//! alone ([`check_data`]); recipient restrictions there judge the
//! recipient only when there is exactly one.

use std::collections::HashMap;
use std::net::IpAddr;

use rostfix_config::{Config, ConfigError, value};
use rostfix_maps::order::{self, Maps, OrderContext};
use rostfix_smtp::reply::Reply;

use crate::settings::Settings;
use crate::tls_server::ClientCert;

mod lookups;
pub mod policy;
pub use lookups::{Asked, ClientDns, Domain, Domains, client_name, domains};

/// The restriction lists, in the order they are read.
const LISTS: [(Stage, &str); 5] = [
    (Stage::Client, "smtpd_client_restrictions"),
    (Stage::Helo, "smtpd_helo_restrictions"),
    (Stage::Sender, "smtpd_sender_restrictions"),
    (Stage::Relay, "smtpd_relay_restrictions"),
    (Stage::Recipient, "smtpd_recipient_restrictions"),
];

/// The lists read at DATA and at the end of the message.
const DATA_LISTS: [(Stage, &str); 2] = [
    (Stage::Data, "smtpd_data_restrictions"),
    (Stage::EndOfData, "smtpd_end_of_data_restrictions"),
];

/// Restrictions about the recipient: with no (single) recipient to
/// judge, as at DATA after several, they have nothing to say.
const RECIPIENT_RESTRICTIONS: &[&str] = &[
    "reject_unauth_destination",
    "defer_unauth_destination",
    "reject_non_fqdn_recipient",
    "reject_unknown_recipient_domain",
];

/// How deep classes and table results may nest.
const MAX_DEPTH: u8 = 8;

/// Restrictions that ask the name service about the sender's and
/// recipient's domains, the client's name, the HELO name.
const DOMAIN_RESTRICTIONS: &[&str] = &[
    "reject_unknown_sender_domain",
    "reject_unknown_recipient_domain",
];
const CLIENT_NAME_RESTRICTIONS: &[&str] = &[
    "reject_unknown_client_hostname",
    "reject_unknown_client",
    "reject_unknown_reverse_client_hostname",
];
const HELO_NAME_RESTRICTIONS: &[&str] = &["reject_unknown_helo_hostname"];

/// Restrictions followed by a table.
const TABLE_RESTRICTIONS: &[&str] = &[
    "check_ccert_access",
    "check_client_access",
    "check_helo_access",
    "check_sender_access",
    "check_recipient_access",
];

/// The lists of one smtpd service, the tables they name (opened once,
/// when the configuration is read), and the reply codes.
#[derive(Debug)]
pub struct Access {
    /// Why this service cannot run (Postfix's smtpd exits with it).
    fatal: Option<String>,
    lists: [Vec<String>; 5],
    /// smtpd_data_restrictions, smtpd_end_of_data_restrictions.
    data_lists: [Vec<String>; 2],
    /// smtpd_restriction_classes, by (lower-case) name.
    classes: HashMap<String, Vec<String>>,
    tables: HashMap<String, Maps>,
    /// smtpd_sender_login_maps: the SASL logins that own sender addresses.
    sender_login_maps: Maps,
    /// relay_clientcerts: the client certificate fingerprints
    /// permit_tls_clientcerts permits.
    relay_clientcerts: Maps,
    /// access(5) lookups (parent_domain_matches_subdomains may list
    /// smtpd_access_maps).
    order: OrderContext,
    /// smtpd_null_access_lookup_key: the null sender's key.
    null_key: String,
    reject_code: u16,
    defer_code: u16,
    access_map_reject_code: u16,
    access_map_defer_code: u16,
    non_fqdn_reject_code: u16,
    invalid_hostname_reject_code: u16,
    unknown_address_reject_code: u16,
    unknown_client_reject_code: u16,
    unknown_hostname_reject_code: u16,
    multi_recipient_bounce_reject_code: u16,
    /// The name service, when a list asks about domains
    /// (reject_unknown_sender_domain, reject_unknown_recipient_domain).
    pub dns: Option<crate::smtp::dns::Dns>,
    /// smtpd_peername_lookup: the client's name is looked up at connect.
    pub peername_lookup: bool,
    /// Which of the lookups the lists need.
    asks_domains: bool,
    asks_client: bool,
    asks_helo: bool,
    /// The DNS lists named (reject_rbl_client, reject_rhsbl_*,
    /// permit_dnswl_client, permit_rhswl_client): the restriction and the
    /// list.
    blocklists: Vec<(&'static str, String)>,
    maps_rbl_reject_code: u16,
    /// default_rbl_reply, unexpanded: its $rbl_* names are filled in per
    /// reply.
    default_rbl_reply: String,
    /// rbl_reply_maps: replies by list domain, in the same form.
    rbl_reply_maps: Maps,
    /// smtpd_policy_service_default_action: when no policy server answers.
    policy_default_action: String,
    /// The policy servers the configuration names.
    pub policy_servers: Vec<String>,
    pub policy: policy::Settings,
}

/// A restriction list as read once at load: restriction names in lower
/// case, table names as they are (and opened into `tables`).
fn parse_list(
    param: &str,
    value: &str,
    tables: &mut HashMap<String, Maps>,
) -> Result<Vec<String>, String> {
    let mut list = Vec::new();
    let mut items = value::split_list(value).into_iter();
    while let Some(item) = items.next() {
        let item = item.to_ascii_lowercase();
        if item == "check_policy_service" {
            let Some(server) = items.next() else {
                return Err(format!("{param}: {item} needs a server"));
            };
            if server.starts_with('{') {
                return Err(format!(
                    "{param}: {item} {{ server, options }} is not supported; name the server alone"
                ));
            }
            list.push(item);
            list.push(server.to_string());
        } else if TABLE_RESTRICTIONS.contains(&item.as_str()) {
            let Some(spec) = items.next() else {
                return Err(format!("{param}: {item} needs a table"));
            };
            if !tables.contains_key(spec) {
                let maps = crate::settings::open_value(&item, spec, false)?;
                tables.insert(spec.to_string(), maps);
            }
            list.push(item);
            list.push(spec.to_string());
        } else {
            list.push(item);
        }
    }
    Ok(list)
}

impl Access {
    pub fn load(cf: &Config) -> Result<Access, String> {
        let e = |e: ConfigError| e.to_string();
        let mut lists: [Vec<String>; 5] = Default::default();
        let mut tables = HashMap::new();
        for (list, (_, name)) in lists.iter_mut().zip(LISTS) {
            *list = parse_list(name, &cf.string(name).map_err(e)?, &mut tables)?;
        }
        let mut data_lists: [Vec<String>; 2] = Default::default();
        for (list, (_, name)) in data_lists.iter_mut().zip(DATA_LISTS) {
            *list = parse_list(name, &cf.string(name).map_err(e)?, &mut tables)?;
        }
        // smtpd_restriction_classes: named lists, usable wherever a
        // restriction is (and as a table's result).
        let mut classes = HashMap::new();
        for class in crate::settings::list(cf, "smtpd_restriction_classes").map_err(e)? {
            let list = parse_list(&class, &cf.string(&class).map_err(e)?, &mut tables)?;
            classes.insert(class.to_ascii_lowercase(), list);
        }
        // Postfix refuses to run an open relay by omission: one of the two
        // relay lists must end what nothing else permitted.
        let guards = [
            "reject_unauth_destination",
            "defer_unauth_destination",
            "reject",
            "defer",
            "defer_if_permit",
            "check_relay_domains",
        ];
        let guarded = lists[3..]
            .iter()
            .flatten()
            .any(|item| guards.contains(&item.as_str()));
        // As in Postfix, the service then refuses its connections (the
        // others run on).
        let fatal = (!guarded).then(|| {
            "in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, \
             specify at least one working instance of: reject_unauth_destination, \
             defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains"
                .to_string()
        });
        let asks = |names: &[&str]| {
            lists
                .iter()
                .chain(&data_lists)
                .chain(classes.values())
                .flatten()
                .any(|item| names.contains(&item.as_str()))
        };
        let asks_domains = asks(DOMAIN_RESTRICTIONS);
        let asks_client = asks(CLIENT_NAME_RESTRICTIONS);
        let asks_helo = asks(HELO_NAME_RESTRICTIONS);
        // The blocklists named (`domain` or `domain=d.d.d.d`), and the
        // policy servers: the only ones smtpd will talk to, whatever a
        // server's answer names.
        let mut blocklists: Vec<(&'static str, String)> = Vec::new();
        let mut policy_servers: Vec<String> = Vec::new();
        for list in lists.iter().chain(&data_lists).chain(classes.values()) {
            for pair in list.windows(2) {
                if pair[0] == "check_policy_service" && !policy_servers.contains(&pair[1]) {
                    policy_servers.push(pair[1].clone());
                }
                let Some(restriction) = lookups::BLOCKLISTS.iter().find(|b| **b == pair[0]) else {
                    continue;
                };
                let named = (*restriction, pair[1].clone());
                if !blocklists.contains(&named) {
                    blocklists.push(named);
                }
            }
        }
        let peername_lookup = cf.bool("smtpd_peername_lookup").map_err(e)?;
        let asks_dns = asks_domains || asks_client || asks_helo || !blocklists.is_empty();
        let dns = if asks_dns || peername_lookup {
            let use_dns = !cf.bool("disable_dns_lookups").map_err(e)?;
            let servers = crate::settings::list(cf, "rostfix_dns_servers").map_err(e)?;
            Some(crate::smtp::dns::Dns::new(use_dns, &servers, "")?)
        } else {
            None
        };
        let parents = crate::settings::list(cf, "parent_domain_matches_subdomains").map_err(e)?;
        let code = |name: &str| -> Result<u16, String> {
            let v = cf.int(name).map_err(e)?;
            u16::try_from(v)
                .ok()
                .filter(|c| (400..600).contains(c))
                .ok_or_else(|| format!("{name} = {v}: not a 4XX or 5XX reply code"))
        };
        Ok(Access {
            fatal,
            lists,
            data_lists,
            classes,
            tables,
            sender_login_maps: crate::settings::maps(cf, "smtpd_sender_login_maps")?,
            relay_clientcerts: crate::settings::maps(cf, "relay_clientcerts")?,
            order: OrderContext {
                recipient_delimiter: cf.string("recipient_delimiter").map_err(e)?,
                parent_matches_subdomains: parents.iter().any(|p| p == "smtpd_access_maps"),
            },
            null_key: cf.string("smtpd_null_access_lookup_key").map_err(e)?,
            reject_code: code("reject_code")?,
            defer_code: code("defer_code")?,
            access_map_reject_code: code("access_map_reject_code")?,
            access_map_defer_code: code("access_map_defer_code")?,
            non_fqdn_reject_code: code("non_fqdn_reject_code")?,
            invalid_hostname_reject_code: code("invalid_hostname_reject_code")?,
            unknown_address_reject_code: code("unknown_address_reject_code")?,
            unknown_client_reject_code: code("unknown_client_reject_code")?,
            unknown_hostname_reject_code: code("unknown_hostname_reject_code")?,
            multi_recipient_bounce_reject_code: code("multi_recipient_bounce_reject_code")?,
            dns,
            peername_lookup,
            asks_domains,
            asks_client,
            asks_helo,
            blocklists,
            maps_rbl_reject_code: code("maps_rbl_reject_code")?,
            default_rbl_reply: cf.raw("default_rbl_reply").unwrap_or_default().into_owned(),
            rbl_reply_maps: crate::settings::maps(cf, "rbl_reply_maps")?,
            policy_servers,
            policy_default_action: cf
                .string("smtpd_policy_service_default_action")
                .map_err(e)?,
            policy: policy::Settings {
                timeout: std::time::Duration::from_secs(
                    cf.time("smtpd_policy_service_timeout").map_err(e)?.max(1),
                ),
                tries: u32::try_from(cf.int("smtpd_policy_service_try_limit").map_err(e)?)
                    .unwrap_or(1)
                    .max(1),
                retry_delay: std::time::Duration::from_secs(
                    cf.time("smtpd_policy_service_retry_delay").map_err(e)?,
                ),
            },
        })
    }
}

impl Access {
    /// Why the service must not take connections, if it must not.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Whether smtpd_data_restrictions (`end` false) or
    /// smtpd_end_of_data_restrictions (`end`) has anything to read.
    pub fn checks_data(&self, end: bool) -> bool {
        !self.data_lists[usize::from(end)].is_empty()
    }
}

/// What a recipient is judged with.
#[derive(Debug)]
pub struct Request<'a> {
    pub client: IpAddr,
    /// `unknown[127.0.0.1]`
    pub client_name: &'a str,
    /// The PTR name, unverified (`unknown`: none).
    pub reverse_client_name: &'a str,
    pub helo: Option<&'a str>,
    /// MAIL FROM's address as given (empty: the null sender); None
    /// outside a transaction (VRFY).
    pub sender: Option<&'a str>,
    pub recipient: &'a str,
    /// The recipient in canonical form (what tables are asked), and
    /// whether it names a route onwards (`user%elsewhere@`, ...).
    pub recipient_address: &'a str,
    pub recipient_routed: bool,
    /// The recipient is in a domain this server takes mail for (local,
    /// virtual, relay_domains) and names no further route.
    pub recipient_authorized: bool,
    /// SASL is on in this session (smtpd_sasl_auth_enable, and TLS is up
    /// or smtpd_tls_auth_only is off).
    pub sasl_active: bool,
    /// The SASL login name, once AUTH succeeded.
    pub sasl_username: Option<&'a str>,
    /// The client's TLS certificate, when it presented one.
    pub client_cert: Option<&'a ClientCert>,
    /// The client sent commands ahead of replies where it may not
    /// (smtpd logged "improper command pipelining").
    pub improper_pipelining: bool,
    /// What the policy servers asked so far answered (`None`: none did).
    pub policy: &'a HashMap<String, Option<String>>,
    /// Judged at DATA or the message's end (not a recipient), and the
    /// transaction's recipients by then.
    pub at_data: bool,
    pub recipient_count: usize,
    /// What the name service says of the domains, when a list asks.
    pub domains: Domains,
}

impl Request<'_> {
    fn sender(&self) -> &str {
        self.sender.unwrap_or("")
    }

    /// At DATA after several recipients there is none to judge.
    fn no_recipient(&self) -> bool {
        self.at_data && self.recipient.is_empty()
    }
}

/// The judgement: rejections that warn_if_reject turned into warnings
/// (logged as `reject_warning`), problems of the configuration (logged as
/// warnings), and the outcome.
#[derive(Debug, Default)]
pub struct Verdict {
    pub warnings: Vec<Reply>,
    /// Warnings for the log: configuration errors, DNS lists that could
    /// not be asked.
    pub config_errors: Vec<String>,
    pub refused: Option<Reply>,
    /// WARN, INFO, HOLD and DISCARD results: (`warn`, `info`, `hold` or
    /// `discard`, their text), logged as `NOQUEUE: warn: RCPT from ...`.
    pub notes: Vec<(&'static str, String)>,
    /// The policy server the check stopped at: ask it, then check again.
    pub ask_policy: Option<String>,
    /// HOLD: the message goes to the hold queue (its `hold` note is
    /// logged once per message, by smtpd).
    pub hold: bool,
    /// DISCARD: the message is accepted and dropped, and nothing more of
    /// it is checked.
    pub discard: bool,
    /// DEFER_IF_PERMIT: the reply if nothing rejects.
    defer_if_permit: Option<Reply>,
    /// DEFER_IF_REJECT: the reply if something rejects (with 5XX).
    defer_if_reject: Option<Reply>,
}

impl Verdict {
    /// The outcome once every list was read: a DEFER_IF_PERMIT stands
    /// where nothing refused, a DEFER_IF_REJECT in place of a refusal.
    fn settle(mut self) -> Verdict {
        if self.ask_policy.is_some() {
            return self;
        }
        match &self.refused {
            None => self.refused = self.defer_if_permit.take(),
            Some(r) if r.code >= 500 => {
                if let Some(deferred) = self.defer_if_reject.take() {
                    self.refused = Some(deferred);
                }
            }
            Some(_) => {}
        }
        self
    }
}

/// The list a restriction stands in; it names what a rejection is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Client,
    /// Not a list: check_ccert_access's rejections name the certificate.
    ClientCert,
    Helo,
    Sender,
    Relay,
    Recipient,
    Data,
    EndOfData,
}

enum Outcome {
    Permit,
    Reject(Reply),
    Dunno,
    /// Not a restriction or action this server knows (the warning to log).
    Unknown(String),
    /// Not applicable here (the warning to log); the list goes on.
    Ignored(String),
    /// A policy server must be asked first.
    AskPolicy(String),
}

/// Reads the five lists for one recipient.
pub fn check_recipient(s: &Settings, req: &Request) -> Verdict {
    let mut verdict = Verdict::default();
    for ((stage, _), list) in LISTS.iter().zip(&s.access.lists) {
        // Without HELO, or outside a transaction, there is nothing to
        // judge: Postfix skips those lists.
        if (*stage == Stage::Helo && req.helo.is_none())
            || (*stage == Stage::Sender && req.sender.is_none())
        {
            continue;
        }
        // DEFER_IF_REJECT holds within a list (relay and recipient
        // restrictions count as one), as in Postfix.
        if *stage != Stage::Recipient {
            verdict.defer_if_reject = None;
        }
        if !judge(
            read_list(s, req, *stage, list, 0, &mut verdict),
            &mut verdict,
        ) || verdict.discard
        {
            break;
        }
    }
    verdict.settle()
}

/// Takes a list's outcome into the verdict: whether the next list is read.
fn judge(outcome: Outcome, verdict: &mut Verdict) -> bool {
    match outcome {
        Outcome::Permit | Outcome::Dunno | Outcome::Ignored(_) => true,
        Outcome::Reject(reply) => {
            verdict.refused = Some(reply);
            false
        }
        Outcome::Unknown(warning) => {
            verdict.config_errors.push(warning);
            verdict.refused = Some(Reply::new(451, "4.3.5 Server configuration error"));
            false
        }
        Outcome::AskPolicy(server) => {
            verdict.ask_policy = Some(server);
            false
        }
    }
}

/// Reads smtpd_data_restrictions (`end` false) or
/// smtpd_end_of_data_restrictions. `req.recipient` is the transaction's
/// only recipient, or empty when it has several.
pub fn check_data(s: &Settings, req: &Request, end: bool) -> Verdict {
    let mut verdict = Verdict::default();
    let (stage, _) = DATA_LISTS[usize::from(end)];
    let list = &s.access.data_lists[usize::from(end)];
    judge(
        read_list(s, req, stage, list, 0, &mut verdict),
        &mut verdict,
    );
    verdict.settle()
}

/// One list (at `depth` 0; deeper: a class's or a table result's): Permit
/// or Dunno when it is
/// done, Reject or Unknown to end the check.
fn read_list(
    s: &Settings,
    req: &Request,
    stage: Stage,
    list: &[String],
    depth: u8,
    verdict: &mut Verdict,
) -> Outcome {
    // Classes and table results may name classes; a loop among them
    // ends here.
    if depth > MAX_DEPTH {
        return Outcome::Unknown("restriction classes nest too deep (a loop?)".into());
    }
    let mut items = list.iter();
    let mut warn = false;
    while let Some(name) = items.next() {
        if name.eq_ignore_ascii_case("warn_if_reject") {
            warn = true;
            continue;
        }
        let one = [name.as_str()];
        let parts: &[&str] = if name.eq_ignore_ascii_case("reject_sender_login_mismatch") {
            &SENDER_LOGIN_MISMATCH
        } else {
            &one
        };
        for &name in parts {
            match restriction(s, req, stage, name, &mut items, depth, verdict) {
                Outcome::Dunno => {}
                Outcome::Ignored(warning) => verdict.config_errors.push(warning),
                Outcome::Reject(reply) if warn => verdict.warnings.push(reply),
                decided => return decided,
            }
        }
        warn = false;
    }
    Outcome::Dunno
}

const AUTHENTICATED_MISMATCH: &str = "reject_authenticated_sender_login_mismatch";
const UNAUTHENTICATED_MISMATCH: &str = "reject_unauthenticated_sender_login_mismatch";

/// reject_sender_login_mismatch is its authenticated and unauthenticated
/// halves, each judged (and warned about) as itself, as Postfix logs them.
const SENDER_LOGIN_MISMATCH: [&str; 2] = [AUTHENTICATED_MISMATCH, UNAUTHENTICATED_MISMATCH];

/// One restriction; `args` yields the words after it (a table).
fn restriction(
    s: &Settings,
    req: &Request,
    stage: Stage,
    name: &str,
    args: &mut std::slice::Iter<String>,
    depth: u8,
    verdict: &mut Verdict,
) -> Outcome {
    let a = &s.access;
    let authenticated = req.sasl_username.is_some();
    if req.no_recipient() && RECIPIENT_RESTRICTIONS.contains(&name) {
        return Outcome::Dunno;
    }
    match name {
        "permit" => Outcome::Permit,
        "reject_unauth_pipelining" if req.improper_pipelining => Outcome::Reject(rejected_dsn(
            req,
            stage,
            503,
            "5.5.0",
            "Improper use of SMTP command pipelining",
        )),
        "reject_unauth_pipelining" => Outcome::Dunno,
        // A bounce (null sender) to several recipients is not one.
        // At RCPT the count is of those before this one; at the message's
        // end one recipient is enough.
        "reject_multi_recipient_bounce"
            if req.sender.is_some_and(str::is_empty)
                && req.recipient_count > usize::from(stage == Stage::Data) =>
        {
            Outcome::Reject(rejected_dsn(
                req,
                stage,
                a.multi_recipient_bounce_reject_code,
                if a.multi_recipient_bounce_reject_code < 500 {
                    "4.5.3"
                } else {
                    "5.5.3"
                },
                "Multi-recipient bounce",
            ))
        }
        "reject_multi_recipient_bounce" => Outcome::Dunno,
        "dunno" => Outcome::Dunno,
        "reject" => Outcome::Reject(rejected(req, stage, a.reject_code, "Access denied")),
        "defer" => Outcome::Reject(rejected(req, stage, a.defer_code, "Access denied")),
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
        "reject_invalid_helo_hostname" => match req.helo {
            Some(helo) if !valid_helo(helo) => Outcome::Reject(rejected_dsn(
                req,
                Stage::Helo,
                a.invalid_hostname_reject_code,
                "5.5.2",
                "Invalid name",
            )),
            _ => Outcome::Dunno,
        },
        "reject_non_fqdn_helo_hostname" => match req.helo {
            Some(helo) if !helo.starts_with('[') && !fully_qualified(helo) => {
                Outcome::Reject(rejected_dsn(
                    req,
                    Stage::Helo,
                    a.non_fqdn_reject_code,
                    "5.5.2",
                    "need fully-qualified hostname",
                ))
            }
            _ => Outcome::Dunno,
        },
        // A certificate whose fingerprint relay_clientcerts lists (trusted
        // or not, as Postfix), or any a CA of smtpd_tls_CAfile vouches for.
        "permit_tls_clientcerts" => match req.client_cert {
            Some(cert) => match find_fingerprint(&a.relay_clientcerts, cert) {
                Ok(Some(_)) => Outcome::Permit,
                Ok(None) => Outcome::Dunno,
                Err(()) => Outcome::Reject(rejected_dsn(
                    req,
                    Stage::Client,
                    451,
                    "4.3.0",
                    "Temporary lookup failure",
                )),
            },
            None => Outcome::Dunno,
        },
        "permit_tls_all_clientcerts" => match req.client_cert {
            Some(cert) if cert.trust.is_ok() => Outcome::Permit,
            _ => Outcome::Dunno,
        },
        // unknown_address_reject_code; always 450 when the name service
        // fails for now (Postfix defers then: defer_if_permit).
        "reject_unknown_client_hostname" | "reject_unknown_client" => unknown_client(
            a,
            req,
            req.domains.client.map(|c| c.forward),
            "7.25",
            "hostname",
        ),
        "reject_unknown_reverse_client_hostname" => unknown_client(
            a,
            req,
            req.domains.client.map(|c| c.reverse),
            "7.1",
            "reverse hostname",
        ),
        // unknown_hostname_reject_code, or 450 when the name service fails
        // for now: the same words either way.
        "reject_unknown_helo_hostname" => {
            let code = match req.domains.helo {
                None | Some(Domain::Exists) => return Outcome::Dunno,
                Some(Domain::NotFound) => a.unknown_hostname_reject_code,
                Some(Domain::TryAgain) => 450,
            };
            let dsn = if code < 500 { "4.7.1" } else { "5.7.1" };
            Outcome::Reject(rejected_dsn(req, Stage::Helo, code, dsn, "Host not found"))
        }
        // An allowlist must not open the relay: it is ignored where
        // reject_unauth_destination would refuse the recipient at hand.
        "permit_dnswl_client" | "permit_rhswl_client"
            if !req.recipient.is_empty() && !req.recipient_authorized =>
        {
            match args.next() {
                Some(_) => Outcome::Dunno,
                None => Outcome::Unknown(format!("{name} needs a list domain")),
            }
        }
        blocklist if lookups::BLOCKLISTS.contains(&blocklist) => {
            let Some(list) = args.next() else {
                return Outcome::Unknown(format!("{name} needs a blocklist domain"));
            };
            let found = req
                .domains
                .listed
                .iter()
                .find(|l| l.restriction == blocklist && l.list == *list);
            match found {
                // Said when reached, as Postfix does. A blocklist that
                // cannot tell does not list; an allowlist defers a
                // rejection (postconf(5): DEFER_IF_REJECT), naming what was
                // looked up.
                Some(lookups::Listed {
                    failed: Some(why),
                    what,
                    ..
                }) => {
                    verdict.config_errors.push(why.clone());
                    if !blocklist.starts_with("permit_") {
                        return Outcome::Dunno;
                    }
                    verdict.defer_if_reject.get_or_insert_with(|| {
                        let text =
                            format!("4.7.1 <{what}>: Client host rejected: Service unavailable");
                        Reply::new(450, text)
                    });
                    Outcome::Dunno
                }
                Some(_) if blocklist.starts_with("permit_") => Outcome::Permit,
                Some(listed) => Outcome::Reject(blocklisted(a, req, listed)),
                None => Outcome::Dunno,
            }
        }
        "reject_unknown_sender_domain" => unknown_domain(s, req, Stage::Sender, req.domains.sender),
        "reject_unknown_recipient_domain" => {
            unknown_domain(s, req, Stage::Recipient, req.domains.recipient)
        }
        "reject_non_fqdn_sender" => non_fqdn_address(s, req, Stage::Sender, req.sender()),
        "reject_non_fqdn_recipient" => non_fqdn_address(s, req, Stage::Recipient, req.recipient),
        AUTHENTICATED_MISMATCH => sender_login(s, req, name, Login::Authenticated),
        "reject_known_sender_login_mismatch" => sender_login(s, req, name, Login::Known),
        UNAUTHENTICATED_MISMATCH => sender_login(s, req, name, Login::Unauthenticated),
        table if TABLE_RESTRICTIONS.contains(&table) => {
            let Some(spec) = args.next() else {
                return Outcome::Unknown(format!("{name} needs a table"));
            };
            // Tables are opened with the configuration: those the lists
            // and classes name (not one a table's result names).
            let Some(maps) = a.tables.get(spec) else {
                return Outcome::Unknown(format!(
                    "{name} {spec}: not opened with the configuration"
                ));
            };
            check_access(s, req, table, maps, depth, verdict)
        }
        "check_policy_service" => {
            let Some(server) = args.next() else {
                return Outcome::Unknown(format!("{name} needs a server"));
            };
            match req.policy.get(server) {
                Some(Some(action)) => access_result(s, req, stage, action, depth, verdict),
                Some(None) => {
                    access_result(s, req, stage, &a.policy_default_action, depth, verdict)
                }
                None if a.policy_servers.contains(server) => Outcome::AskPolicy(server.clone()),
                // Named by an answer, not the configuration: never asked.
                None => Outcome::Unknown(format!(
                    "{name} {server}: not a policy server of the configuration"
                )),
            }
        }
        class if a.classes.contains_key(class) => {
            read_list(s, req, stage, &a.classes[class], depth + 1, verdict)
        }
        _ => Outcome::Unknown(format!("unknown smtpd restriction: \"{name}\"")),
    }
}

/// check_client_access, check_helo_access, check_sender_access,
/// check_recipient_access: the keys access(5) defines for what `kind`
/// looks up; the first result decides.
fn check_access(
    s: &Settings,
    req: &Request,
    kind: &str,
    maps: &Maps,
    depth: u8,
    verdict: &mut Verdict,
) -> Outcome {
    let a = &s.access;
    if kind == "check_recipient_access" && req.no_recipient() {
        return Outcome::Dunno;
    }
    if kind == "check_ccert_access" {
        let Some(cert) = req.client_cert else {
            return Outcome::Dunno;
        };
        // The certificate's entry, then (when that says DUNNO or there
        // is none) its public key's.
        for fp in &cert.fingerprints {
            let found = match maps.find(fp, true) {
                Ok(found) => found,
                Err(_) => {
                    let why = "Temporary lookup failure";
                    return Outcome::Reject(rejected_dsn(
                        req,
                        Stage::ClientCert,
                        451,
                        "4.3.0",
                        why,
                    ));
                }
            };
            match found.map(|v| access_result(s, req, Stage::ClientCert, &v, depth, verdict)) {
                None | Some(Outcome::Dunno) => {}
                Some(decided) => return decided,
            }
        }
        return Outcome::Dunno;
    }
    // A rejection names what was looked up, whichever list asked.
    let mut routed = false;
    let (keys, about) = match kind {
        "check_client_access" => (
            order::access_client_keys(
                req.client_name.split('[').next(),
                &req.client.to_string(),
                a.order.parent_matches_subdomains,
            ),
            Stage::Client,
        ),
        "check_helo_access" => match req.helo {
            Some(helo) => (
                order::domain_keys(helo, a.order.parent_matches_subdomains),
                Stage::Helo,
            ),
            None => return Outcome::Dunno,
        },
        "check_sender_access" => {
            let sender = match req.sender() {
                "" => String::new(),
                given => crate::resolve::resolve(s, given).address,
            };
            (
                order::access_address_keys(&sender, &a.order, &a.null_key),
                Stage::Sender,
            )
        }
        _ => {
            routed = req.recipient_routed;
            (
                order::access_address_keys(req.recipient_address, &a.order, &a.null_key),
                Stage::Recipient,
            )
        }
    };
    match maps.find_first(&keys) {
        Ok(None) => Outcome::Dunno,
        // A recipient that names a route onwards is not vouched for by an
        // entry for its domain (the route may leave this site): Postfix
        // turns OK into DUNNO for it. (A sender's route sends nothing
        // anywhere; its OK stands, as Postfix's does.)
        Ok(Some(found)) => match access_result(s, req, about, &found.value, depth, verdict) {
            Outcome::Permit if routed => Outcome::Dunno,
            other => other,
        },
        Err(_) => Outcome::Reject(rejected_dsn(
            req,
            about,
            451,
            "4.3.0",
            "Temporary lookup failure",
        )),
    }
}

/// Sender-specified routing in an address's local part
/// (`user%elsewhere@`, `user!elsewhere@`, `user@elsewhere@`): never an
/// authorized destination, never vouched for by its domain's entry.
pub fn is_routed(address: &str) -> bool {
    let local = address.rsplit_once('@').map_or(address, |(local, _)| local);
    local.contains(['@', '%', '!'])
}

/// A certificate's entry in a table: its fingerprint, then its public
/// key's.
fn find_fingerprint(maps: &Maps, cert: &ClientCert) -> Result<Option<String>, ()> {
    for fp in &cert.fingerprints {
        if let Some(v) = maps.find(fp, true).map_err(|_| ())? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// An access(5) result: OK (or a number), REJECT or DEFER with optional
/// text, DUNNO, `4NN`/`5NN text` (with or without an enhanced status
/// code), or restrictions read in the table's place.
fn access_result(
    s: &Settings,
    req: &Request,
    stage: Stage,
    result: &str,
    depth: u8,
    verdict: &mut Verdict,
) -> Outcome {
    let a = &s.access;
    let result = result.trim();
    let (word, text) = result
        .split_once(char::is_whitespace)
        .map_or((result, ""), |(w, t)| (w, t.trim()));
    let text_or = |default: &'static str| if text.is_empty() { default } else { text };
    let numeric = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    match word.to_ascii_uppercase().as_str() {
        "" => Outcome::Unknown("an empty access table result".into()),
        "OK" => Outcome::Permit,
        // An all-numerical result is OK (pop-before-smtp tables); a
        // three-digit code with text is a reply.
        _ if numeric && text.is_empty() => Outcome::Permit,
        "REJECT" => Outcome::Reject(rejected(
            req,
            stage,
            a.access_map_reject_code,
            text_or("Access denied"),
        )),
        "DEFER" => Outcome::Reject(rejected(
            req,
            stage,
            a.access_map_defer_code,
            text_or("Access denied"),
        )),
        "DUNNO" => Outcome::Dunno,
        w if numeric && w.len() == 3 && (w.starts_with('4') || w.starts_with('5')) => {
            let code: u16 = w.parse().unwrap_or(554);
            Outcome::Reject(rejected(req, stage, code, text))
        }
        _ if numeric => {
            Outcome::Unknown(format!("access table result \"{result}\" is not a reply"))
        }
        "WARN" | "INFO" => {
            let kind = if word.eq_ignore_ascii_case("WARN") {
                "warn"
            } else {
                "info"
            };
            verdict.notes.push((kind, text.to_string()));
            Outcome::Dunno
        }
        w @ ("DEFER_IF_PERMIT" | "DEFER_IF_REJECT") => {
            let reply = rejected(
                req,
                stage,
                a.access_map_defer_code,
                text_or("Service unavailable"),
            );
            let flag = if w == "DEFER_IF_PERMIT" {
                &mut verdict.defer_if_permit
            } else {
                &mut verdict.defer_if_reject
            };
            flag.get_or_insert(reply);
            Outcome::Dunno
        }
        // They act on the whole message, and are logged (`hold:`,
        // `discard:`) with the rejection's subject: HOLD as DUNNO, DISCARD
        // as a permit that ends every check of the message.
        w @ ("HOLD" | "DISCARD") => {
            let (shown, what) = subject(req, stage);
            let why = if text.is_empty() {
                format!("triggers {w} action")
            } else {
                text.to_string()
            };
            let kind = if w == "HOLD" { "hold" } else { "discard" };
            verdict
                .notes
                .push((kind, format!("<{shown}>: {what} {why}")));
            if w == "HOLD" {
                verdict.hold = true;
                Outcome::Dunno
            } else {
                verdict.discard = true;
                Outcome::Permit
            }
        }
        // FILTER, REDIRECT, PREPEND, ... act on the message; a mail
        // system that cannot must not let it pass.
        "FILTER" | "REDIRECT" | "PREPEND" | "BCC" => {
            Outcome::Unknown(format!("access table result \"{result}\" is not supported"))
        }
        _ => {
            let list: Vec<String> = value::split_list(result)
                .into_iter()
                .map(str::to_string)
                .collect();
            read_list(s, req, stage, &list, depth + 1, verdict)
        }
    }
}

/// reject_non_fqdn_sender / reject_non_fqdn_recipient: an address needs
/// a domain with a dot in it (or an address literal); the null sender
/// passes.
fn non_fqdn_address(s: &Settings, req: &Request, stage: Stage, address: &str) -> Outcome {
    if address.is_empty() {
        return Outcome::Dunno;
    }
    let qualified = address
        .rsplit_once('@')
        .is_some_and(|(_, d)| d.starts_with('[') || fully_qualified(d));
    if qualified {
        return Outcome::Dunno;
    }
    Outcome::Reject(rejected_dsn(
        req,
        stage,
        s.access.non_fqdn_reject_code,
        "5.5.2",
        "need fully-qualified address",
    ))
}

/// reject_unknown_client_hostname (the client's name must resolve back to
/// it) and reject_unknown_reverse_client_hostname (it must have one):
/// unknown_client_reject_code, or 450 when the name service fails for
/// now.
fn unknown_client(
    a: &Access,
    req: &Request,
    found: Option<Domain>,
    detail: &str,
    what: &str,
) -> Outcome {
    let code = match found {
        None | Some(Domain::Exists) => return Outcome::Dunno,
        Some(Domain::NotFound) => a.unknown_client_reject_code,
        Some(Domain::TryAgain) => 450,
    };
    let class = if code < 500 { '4' } else { '5' };
    Outcome::Reject(Reply::new(
        code,
        format!(
            "{class}.{detail} Client host rejected: cannot find your {what}, [{}]",
            req.client
        ),
    ))
}

/// A blocklist's reply: its rbl_reply_maps entry, else default_rbl_reply,
/// with the names postconf(5) lists filled in. The enhanced status code
/// (5.7.1 unless the reply has one) takes the reply code's class.
fn blocklisted(a: &Access, req: &Request, listed: &lookups::Listed) -> Reply {
    let domain = listed
        .list
        .split_once('=')
        .map_or(listed.list.as_str(), |(d, _)| d);
    let template = match a.rbl_reply_maps.find(domain, false) {
        Ok(Some(t)) => t,
        _ => a.default_rbl_reply.clone(),
    };
    let class = match listed.restriction {
        "reject_rhsbl_reverse_client" => "Unverified Client host",
        "reject_rhsbl_helo" => "Helo command",
        "reject_rhsbl_sender" => "Sender address",
        "reject_rhsbl_recipient" => "Recipient address",
        _ => "Client host",
    };
    // An address's local part and domain (none without an @).
    let parts = |address: &str| match address.rsplit_once('@') {
        Some((l, d)) => (l.to_string(), d.to_string()),
        None => (address.to_string(), String::new()),
    };
    let sender = req.sender.unwrap_or("");
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "rbl_code" => a.maps_rbl_reject_code.to_string(),
            "rbl_class" => class.to_string(),
            "rbl_what" => listed.what.clone(),
            "rbl_domain" => domain.to_string(),
            "rbl_reason" | "rbl_txt" => listed.reason.clone().unwrap_or_default(),
            "client_address" => req.client.to_string(),
            "client_name" => req.client_name.split('[').next().unwrap_or("").to_string(),
            "reverse_client_name" => req.reverse_client_name.to_string(),
            "helo_name" => req.helo.unwrap_or("").to_string(),
            "sender" => sender.to_string(),
            "sender_name" => parts(sender).0,
            "sender_domain" => parts(sender).1,
            "recipient" => req.recipient.to_string(),
            "recipient_name" => parts(req.recipient).0,
            "recipient_domain" => parts(req.recipient).1,
            _ => return None,
        })
        // A value is text, never expanded again.
        .map(|v| v.replace('$', "$$"))
    };
    let text = rostfix_config::expand::expand(&template, &value, &mut |_| {})
        .unwrap_or_else(|_| template.clone());
    // `NNN [X.Y.Z] text`
    let (code, rest) = match text.split_once(' ') {
        Some((c, rest)) => match c.parse::<u16>() {
            Ok(c) if (400..600).contains(&c) => (c, rest),
            _ => (a.maps_rbl_reject_code, text.as_str()),
        },
        None => (a.maps_rbl_reject_code, text.as_str()),
    };
    let class = if code < 500 { '4' } else { '5' };
    let (dsn, rest) = match rest.split_once(' ') {
        // Any class: the reply code's wins.
        Some((d, rest)) if ['2', '4', '5'].iter().any(|c| is_dsn(d, *c)) => (&d[1..], rest),
        _ => (".7.1", rest),
    };
    Reply::new(code, format!("{class}{dsn} {rest}"))
}

/// reject_unknown_sender_domain / reject_unknown_recipient_domain.
fn unknown_domain(s: &Settings, req: &Request, stage: Stage, domain: Option<Domain>) -> Outcome {
    let code = match domain {
        None | Some(Domain::Exists) => return Outcome::Dunno,
        Some(Domain::NotFound) => s.access.unknown_address_reject_code,
        Some(Domain::TryAgain) => 450,
    };
    let class = if code < 500 { '4' } else { '5' };
    let detail = if stage == Stage::Sender { "1.8" } else { "1.2" };
    let dsn = format!("{class}.{detail}");
    Outcome::Reject(rejected_dsn(req, stage, code, &dsn, "Domain not found"))
}

/// A domain name with a dot inside it.
fn fully_qualified(name: &str) -> bool {
    name.trim_end_matches('.').contains('.')
}

/// reject_invalid_helo_hostname's idea of a valid name: an address
/// literal, an IP address, or a host name of letters, digits, `-` and
/// `_` labels (1 to 63 characters, no `-` at either end), at most 255 in
/// all and not all numeric.
fn valid_helo(helo: &str) -> bool {
    if let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let inner = inner
            .strip_prefix("IPv6:")
            .or_else(|| inner.strip_prefix("ipv6:"))
            .unwrap_or(inner);
        return inner.parse::<IpAddr>().is_ok();
    }
    if helo.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = helo.strip_suffix('.').unwrap_or(helo);
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    labels_ok && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Which sender/login check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    /// An authenticated client may use only the addresses its login owns.
    Authenticated,
    /// The same, for the addresses the table lists at all (and, as
    /// Unauthenticated, for clients that did not log in).
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
    if s.access.sender_login_maps.is_empty() || req.sender().is_empty() {
        return Outcome::Dunno;
    }
    let owners = match (req.sasl_username, login) {
        (Some(_), Login::Unauthenticated) | (None, Login::Authenticated) => {
            return Outcome::Dunno;
        }
        _ => match sender_owners(s, req.sender()) {
            Ok(owners) => owners,
            Err(()) => {
                let why = "Temporary lookup failure";
                return Outcome::Reject(rejected_dsn(req, Stage::Sender, 451, "4.3.0", why));
            }
        },
    };
    let refuse = |why: &str| Outcome::Reject(rejected_dsn(req, Stage::Sender, 553, "5.7.1", why));
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
    let found = s
        .access
        .sender_login_maps
        .find_first(&keys)
        .map_err(|_| ())?;
    Ok(found.map(|f| {
        rostfix_config::value::split_list(&f.value)
            .into_iter()
            .map(str::to_string)
            .collect()
    }))
}

/// A rejection about what `stage` judges: the client, the HELO name, the
/// sender or the recipient. A text that starts with an enhanced status
/// code keeps it; otherwise it is X.7.1 for the reply's class.
fn rejected(req: &Request, stage: Stage, code: u16, text: &str) -> Reply {
    let class = if code < 500 { '4' } else { '5' };
    match text.split_once(' ') {
        Some((dsn, rest)) if is_dsn(dsn, class) => rejected_dsn(req, stage, code, dsn, rest),
        _ if is_dsn(text, class) => rejected_dsn(req, stage, code, text, "Access denied"),
        _ => rejected_dsn(req, stage, code, &format!("{class}.7.1"), text),
    }
}

/// `4.7.1`-style, of the reply's class.
fn is_dsn(word: &str, class: char) -> bool {
    let mut parts = word.split('.');
    parts
        .next()
        .is_some_and(|c| c.len() == 1 && c.starts_with(class))
        && parts.clone().count() == 2
        && parts.all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn rejected_dsn(req: &Request, stage: Stage, code: u16, dsn: &str, why: &str) -> Reply {
    let (shown, what) = subject(req, stage);
    Reply::new(code, format!("{dsn} <{shown}>: {what} rejected: {why}"))
}

/// What a restriction's finding is about, as its reply and log line show
/// it: `<shown>: what rejected: ...`.
fn subject<'a>(req: &'a Request<'_>, stage: Stage) -> (&'a str, &'static str) {
    match stage {
        Stage::Client => (req.client_name, "Client host"),
        Stage::ClientCert => (
            req.client_cert.map_or("", |c| c.subject_cn.as_str()),
            "Client certificate",
        ),
        Stage::Helo => (req.helo.unwrap_or(""), "Helo command"),
        Stage::Sender => (req.sender(), "Sender address"),
        Stage::Relay | Stage::Recipient => (req.recipient, "Recipient address"),
        Stage::Data => ("DATA", "Data command"),
        Stage::EndOfData => ("END-OF-MESSAGE", "End-of-data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(main_cf: &str) -> Access {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("compatibility_level = 3.6\n{main_cf}");
        std::fs::write(dir.path().join("main.cf"), text).unwrap();
        let cf = Config::load(Some(dir.path())).unwrap();
        Access::load(&cf).unwrap()
    }

    #[test]
    fn relay_lists_must_end_what_nothing_permitted() {
        // Postfix 3.7's smtpd exits with this (tests/dialog, observed).
        assert!(
            access("smtpd_relay_restrictions = permit\n")
                .fatal()
                .is_some()
        );
        assert!(
            access("").fatal().is_none(),
            "the default ends in defer_unauth_destination"
        );
        let moved = "smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = REJECT_unauth_destination\n";
        assert!(
            access(moved).fatal().is_none(),
            "names are compared in lower case"
        );
    }

    #[test]
    fn helo_names() {
        for good in [
            "mail.example.test",
            "host_1.example",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "x.",
        ] {
            assert!(valid_helo(good), "{good}");
        }
        // bad..name: observed rejected by Postfix (tests/dialog).
        for bad in [
            "bad..name",
            "-lead.example",
            "trail-.example",
            "1.2.3",
            "[999.1.1.1]",
            "",
        ] {
            assert!(!valid_helo(bad), "{bad}");
        }
    }

    #[test]
    fn enhanced_codes_of_the_reply_class() {
        assert!(is_dsn("4.7.2", '4'));
        assert!(is_dsn("5.1.1", '5'));
        assert!(!is_dsn("4.7.2", '5'));
        assert!(!is_dsn("Go", '5'));
        assert!(!is_dsn("5.1", '5'));
    }
}

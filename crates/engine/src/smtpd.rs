//! smtpd(8): the driver around `rostfix_smtp::session`. It owns the socket,
//! TLS and AUTH, asks smtpd_check about each recipient (the restriction
//! lists) and then whether it exists (smtpd_reject_unlisted_recipient),
//! and hands the message to cleanup.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rostfix_maps::order;
use rostfix_queue::file::Dsn;
use rostfix_smtp::data::{DataEvent, DataReceiver};
use rostfix_smtp::params::{Notify, Ret};
use rostfix_smtp::reply::Reply;
use rostfix_smtp::session::{Event, Session, text};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::cleanup::{self, Cleanup, Envelope, Intake, Origin, Refused};
use crate::log::Log;
use crate::resolve::{Class, resolve};
use crate::settings::Settings;
use crate::smtpd_check;
use crate::tls_server::{Stream, TlsSession};

/// Longest command line read (Postfix's line_length_limit).
const LINE_LIMIT: usize = 2048;

/// Accepts connections for one smtpd service until the runtime stops.
/// `alive` is cloned into every session, so its count tells how many run.
pub async fn serve(
    listener: TcpListener,
    s: Arc<Settings>,
    log: Log,
    intake: Intake,
    alive: Arc<()>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Some(why) = s.access.fatal() {
            // Postfix's smtpd dies on this at every connection; the client
            // sees the connection close without a greeting.
            log.fatal("smtpd", why);
            drop(stream);
            continue;
        }
        let (s, log, intake, alive) = (s.clone(), log.clone(), intake.clone(), alive.clone());
        tokio::spawn(async move {
            let _alive = alive;
            let found = peer_name(&s, &log, peer.ip()).await;
            let client = format!("{}[{}]", found.name, peer.ip());
            log.info("smtpd", &format!("connect from {client}"));
            let summary = session(stream, peer, &s, &log, &intake, &found).await;
            log.info("smtpd", &format!("disconnect from {client} {summary}"));
        });
    }
}

/// smtpd_peername_lookup: the client's name when its PTR name resolves
/// back to its address (Postfix warns when it does not), else `unknown`;
/// and that finding, for reject_unknown_(reverse_)client_hostname later.
async fn peer_name(s: &Settings, log: &Log, ip: std::net::IpAddr) -> PeerName {
    let unknown = || "unknown".to_string();
    let Some(dns) = s.access.dns.as_ref().filter(|_| s.access.peername_lookup) else {
        return PeerName {
            name: unknown(),
            reverse: unknown(),
            dns: None,
        };
    };
    let (known, ptr) = smtpd_check::client_name(dns, ip).await;
    let name = match (known.forward, &ptr) {
        (smtpd_check::Domain::Exists, Some(name)) => name.clone(),
        (smtpd_check::Domain::NotFound, Some(name)) => {
            log.warning(
                "smtpd",
                &format!("hostname {name} does not resolve to address {ip}"),
            );
            unknown()
        }
        _ => unknown(),
    };
    PeerName {
        name,
        reverse: ptr.unwrap_or_else(unknown),
        dns: Some(known),
    }
}

/// What smtpd_peername_lookup found of the client.
struct PeerName {
    /// Its name when that resolves back to its address, or `unknown`.
    name: String,
    /// Its PTR name (unverified), or `unknown`.
    reverse: String,
    dns: Option<smtpd_check::ClientDns>,
}

/// What the access restrictions are asked about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// A recipient (RCPT, VRFY): the five lists, then whether it exists.
    Recipient,
    /// DATA or the first BDAT: smtpd_data_restrictions.
    Data,
    /// The message's end: smtpd_end_of_data_restrictions.
    EndOfData,
}

/// The session's side of a restriction check.
struct Judged<'a> {
    session: &'a Session,
    tls: Option<&'a TlsSession>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    /// `unknown[127.0.0.1]`
    client_name: &'a str,
    /// The PTR name, unverified (`unknown`: none).
    reverse_client_name: &'a str,
    improper_pipelining: bool,
    /// Tells policy servers one transaction from another.
    instance: &'a str,
}

/// Judges `given` (a recipient; at DATA the transaction's only one, or
/// empty) with the access restrictions (smtpd_check), and a recipient
/// also by whether it exists. `client_dns` keeps what the name service
/// said of the client for the rest of the session.
async fn check(
    s: &Settings,
    log: &Log,
    who: &Judged<'_>,
    client_dns: &mut Option<smtpd_check::ClientDns>,
    given: &str,
    what: Judge,
) -> smtpd_check::Verdict {
    let session = who.session;
    let sender = session.transaction().map(|t| t.from.as_str());
    // Nothing is looked up unless the lists ask.
    let client = who.peer.ip();
    let helo = session.helo_name();
    let asked = smtpd_check::Asked {
        client,
        client_name: who.client_name.split('[').next().unwrap_or("unknown"),
        reverse_client_name: who.reverse_client_name,
        known_client: *client_dns,
        helo,
        sender,
        recipient: given,
    };
    let domains = smtpd_check::domains(s, asked).await;
    *client_dns = client_dns.or(domains.client);
    let r = resolve(s, given);
    let routed = smtpd_check::is_routed(&r.address);
    let mut policy = HashMap::new();
    // Each configured server is asked at most once per check.
    for _ in 0..=s.access.policy_servers.len() {
        let req = smtpd_check::Request {
            client,
            client_name: who.client_name,
            reverse_client_name: who.reverse_client_name,
            helo,
            sender,
            recipient: given,
            recipient_address: &r.address,
            recipient_routed: routed,
            recipient_authorized: !routed
                && matches!(r.class, Class::Local | Class::Virtual | Class::Relay),
            sasl_active: s.smtpd_sasl.is_some()
                && (session.is_tls() || !s.smtpd_tls.as_ref().is_some_and(|t| t.auth_only)),
            sasl_username: session.authenticated().map(|(user, _)| user),
            client_cert: who.tls.and_then(|t| t.client_cert.as_ref()),
            improper_pipelining: who.improper_pipelining,
            policy: &policy,
            at_data: what != Judge::Recipient,
            recipient_count: session.transaction().map_or(0, |t| t.recipients.len()),
            domains: domains.clone(),
        };
        let mut verdict = match what {
            Judge::Data | Judge::EndOfData => {
                smtpd_check::check_data(s, &req, what == Judge::EndOfData)
            }
            Judge::Recipient => smtpd_check::check_recipient(s, &req),
        };
        // A policy server the restrictions reached: asked, then the
        // check runs again knowing its answer.
        if let Some(server) = verdict.ask_policy.take() {
            let attrs = policy_request(who, given, what);
            let answer = smtpd_check::policy::ask(
                &server,
                &attrs,
                &s.queue_directory,
                &s.access.policy,
                log,
            )
            .await;
            policy.insert(server, answer);
            continue;
        }
        if what == Judge::Recipient
            && verdict.refused.is_none()
            && !verdict.discard
            && let Err(reply) = check_listed(s, &r, given)
        {
            verdict.refused = Some(reply);
        }
        return verdict;
    }
    // Each server asked once and still asking: cannot happen, and must
    // not hang the session if it did.
    let mut verdict = smtpd_check::Verdict::default();
    verdict.refused = Some(Reply::new(451, "4.3.5 Server configuration error"));
    verdict
}

/// access(5) HOLD and DISCARD of the current message (Postfix's
/// saved_flags and discard): they act on all of it, and last until it
/// ends (the next MAIL starts afresh).
#[derive(Debug, Default, Clone, Copy)]
struct TxAction {
    hold: bool,
    discard: bool,
}

impl TxAction {
    /// Takes a verdict's actions. A message is said to be held once, as
    /// Postfix logs it.
    fn take(&mut self, verdict: &mut smtpd_check::Verdict) {
        let mut held = self.hold;
        verdict.notes.retain(|(kind, _)| {
            let first = *kind != "hold" || !held;
            held |= *kind == "hold";
            first
        });
        self.hold |= verdict.hold;
        self.discard |= verdict.discard;
    }
}

/// A new transaction's `instance` for policy servers: unique in this
/// process (which serves every session) and across its restarts.
fn next_instance() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TRANSACTIONS: AtomicU64 = AtomicU64::new(0);
    let n = TRANSACTIONS.fetch_add(1, Ordering::Relaxed);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:x}.{started:x}.{n}", std::process::id())
}

/// A policy server's request (SMTPD_POLICY_README's attributes).
fn policy_request(who: &Judged<'_>, recipient: &str, what: Judge) -> Vec<(&'static str, String)> {
    let session = who.session;
    let tx = session.transaction();
    let name = who.client_name.split('[').next().unwrap_or("unknown");
    let tls = who.tls;
    // A certificate nobody vouches for names whoever its maker chose.
    let cert = tls
        .and_then(|t| t.client_cert.as_ref())
        .filter(|c| c.trust.is_ok());
    let (protocol, cipher, bits) = tls.map_or((String::new(), String::new(), "0".into()), |t| {
        // `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) ...`
        let mut words = t.described.split_whitespace();
        let protocol = words.next().unwrap_or("").to_string();
        let cipher = words.nth(2).unwrap_or("").to_string();
        let bits = words
            .next()
            .and_then(|b| b.trim_start_matches('(').split('/').next())
            .unwrap_or("0")
            .to_string();
        (protocol, cipher, bits)
    });
    let (method, username) = session
        .authenticated()
        .map_or((String::new(), String::new()), |(u, m)| {
            (m.to_string(), u.to_string())
        });
    vec![
        ("request", "smtpd_access_policy".into()),
        (
            "protocol_state",
            match what {
                Judge::Recipient => "RCPT",
                Judge::Data => "DATA",
                Judge::EndOfData => "END-OF-MESSAGE",
            }
            .into(),
        ),
        (
            "protocol_name",
            if session.is_esmtp() { "ESMTP" } else { "SMTP" }.into(),
        ),
        ("client_address", who.peer.ip().to_string()),
        ("client_name", name.to_string()),
        ("client_port", who.peer.port().to_string()),
        ("reverse_client_name", who.reverse_client_name.to_string()),
        (
            "server_address",
            who.local.map(|a| a.ip().to_string()).unwrap_or_default(),
        ),
        (
            "server_port",
            who.local.map(|a| a.port().to_string()).unwrap_or_default(),
        ),
        ("helo_name", session.helo_name().unwrap_or("").into()),
        ("sender", tx.map(|t| t.from.clone()).unwrap_or_default()),
        ("recipient", recipient.to_string()),
        (
            "recipient_count",
            match what {
                Judge::Recipient => 0,
                _ => tx.map_or(0, |t| t.recipients.len()),
            }
            .to_string(),
        ),
        ("queue_id", String::new()),
        ("instance", who.instance.to_string()),
        (
            "size",
            tx.and_then(|t| t.params.size).unwrap_or(0).to_string(),
        ),
        ("etrn_domain", String::new()),
        ("stress", String::new()),
        ("sasl_method", method),
        ("sasl_username", username),
        ("sasl_sender", String::new()),
        (
            "ccert_subject",
            cert.map(|c| c.subject_cn.clone()).unwrap_or_default(),
        ),
        (
            "ccert_issuer",
            cert.map(|c| c.issuer_cn.clone()).unwrap_or_default(),
        ),
        (
            "ccert_fingerprint",
            cert.map(|c| c.fingerprints[0].clone()).unwrap_or_default(),
        ),
        (
            "ccert_pubkey_fingerprint",
            cert.map(|c| c.fingerprints[1].clone()).unwrap_or_default(),
        ),
        ("encryption_protocol", protocol),
        ("encryption_cipher", cipher),
        ("encryption_keysize", bits),
        ("policy_context", String::new()),
    ]
}

/// smtpd_data_restrictions at `verb` (DATA or BDAT), for the message
/// `queue_id` when its file is started: the refusal (logged), if any.
async fn data_restrictions(
    s: &Settings,
    log: &Log,
    judge: &Judged<'_>,
    client_dns: &mut Option<smtpd_check::ClientDns>,
    verb: &str,
    queue_id: Option<String>,
    action: &mut TxAction,
) -> Option<Reply> {
    if action.discard {
        return None;
    }
    let only = only_recipient(judge.session);
    let mut verdict = check(s, log, judge, client_dns, &only, Judge::Data).await;
    action.take(&mut verdict);
    let about = about_transaction(judge.session);
    let queue_id = queue_id.as_deref().unwrap_or("NOQUEUE");
    judged_as(log, queue_id, verb, judge.client_name, &about, verdict)
}

/// smtpd_end_of_data_restrictions for the message `queue_id`: the
/// refusal (logged), if any.
async fn end_of_data(
    s: &Settings,
    log: &Log,
    judge: &Judged<'_>,
    client_dns: &mut Option<smtpd_check::ClientDns>,
    queue_id: &str,
    action: &mut TxAction,
) -> Option<Reply> {
    if action.discard {
        return None;
    }
    let only = only_recipient(judge.session);
    let mut verdict = check(s, log, judge, client_dns, &only, Judge::EndOfData).await;
    action.take(&mut verdict);
    let about = about_transaction(judge.session);
    let client = judge.client_name;
    judged_as(log, queue_id, "END-OF-MESSAGE", client, &about, verdict)
}

/// The recipient smtpd_data_restrictions judge: the transaction's only
/// one (Postfix names none when there are several).
fn only_recipient(session: &Session) -> String {
    match session.transaction().map(|t| t.recipients.as_slice()) {
        Some([(only, _)]) => only.clone(),
        _ => String::new(),
    }
}

/// `from=<..> to=<..> proto=.. helo=<..>` of a reject line at DATA or the
/// message's end (`to=` only for a single recipient, as Postfix).
fn about_transaction(session: &Session) -> String {
    let from = session
        .transaction()
        .map(|t| t.from.clone())
        .unwrap_or_default();
    let only = only_recipient(session);
    let to = if only.is_empty() {
        String::new()
    } else {
        format!(" to=<{only}>")
    };
    format!("from=<{from}>{to} {}", proto_helo(session))
}

/// smtpd_reject_unlisted_recipient: the recipient must exist.
fn check_listed(s: &Settings, r: &crate::resolve::Resolved, given: &str) -> Result<(), Reply> {
    let shown = format!("<{given}>");
    let local_part = r
        .address
        .rsplit_once('@')
        .map_or(r.address.as_str(), |(l, _)| l);
    if !s.reject_unlisted_recipient {
        return Ok(());
    }
    // smtpd_reject_unlisted_recipient. Mail routed to the error or retry
    // transport is undeliverable by design: refused now, with the next
    // hop's text as the reason.
    let temporary = || Reply::new(451, format!("4.3.0 {shown}: Temporary lookup failure"));
    if let Some(moved) = crate::resolve::relocated(s, r).map_err(|_| temporary())? {
        return Err(Reply::new(
            550,
            format!("5.1.6 {shown}: Recipient address rejected: User has moved to {moved}"),
        ));
    }
    // The sender does not change whether a recipient is deliverable.
    let route = crate::resolve::route(s, r, "").map_err(|_| temporary())?;
    let undeliverable = match route.transport.as_str() {
        "error" => Some((550, '5', "5.1.1")),
        "retry" => Some((450, '4', "4.1.1")),
        _ => None,
    };
    if let Some((code, class, default)) = undeliverable {
        let (dsn, why) = crate::resolve::split_dsn(&route.nexthop);
        let dsn = if dsn.starts_with(class) {
            dsn.as_str()
        } else {
            default
        };
        return Err(Reply::new(
            code,
            format!("{dsn} {shown}: Recipient address rejected: {why}"),
        ));
    }
    // An address that a canonical or virtual alias table rewrites is
    // listed, whatever its class.
    if matches!(r.class, Class::Local | Class::Virtual) {
        let rw = &s.rewriting;
        for maps in [
            &rw.recipient_canonical_maps,
            &rw.canonical_maps,
            &s.virtual_alias_maps,
        ] {
            match crate::rewrite::map_address(s, maps, &r.address, false) {
                Ok(None) => {}
                Ok(Some(_)) => return Ok(()),
                Err(_) => return Err(temporary()),
            }
        }
    }
    // A local user must exist (postmaster always does: RFC 5321 section
    // 4.5.1).
    let postmaster = local_part.eq_ignore_ascii_case("postmaster");
    if r.class == Class::Local && !postmaster {
        let local = r
            .address
            .rsplit_once('@')
            .map_or(r.address.as_str(), |(l, _)| l);
        let keys = order::alias_keys(local, &s.order);
        match s.local_recipient_maps.as_ref().map(|m| m.find_first(&keys)) {
            None | Some(Ok(Some(_))) => {}
            Some(Ok(None)) => {
                return Err(Reply::new(
                    550,
                    format!(
                        "5.1.1 {shown}: Recipient address rejected: User unknown in local recipient table"
                    ),
                ));
            }
            Some(Err(_)) => return Err(temporary()),
        }
    }
    // smtpd_reject_unlisted_recipient: a virtual mailbox must be listed.
    if r.class == Class::Virtual {
        let keys = order::address_keys(&r.address, &s.order, false);
        match s.virtual_mailbox_maps.find_first(&keys) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Reply::new(
                    550,
                    format!(
                        "5.1.1 {shown}: Recipient address rejected: User unknown in virtual mailbox table"
                    ),
                ));
            }
            Err(_) => return Err(temporary()),
        }
    }
    Ok(())
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    s: &Arc<Settings>,
    log: &Log,
    intake: &Intake,
    found: &PeerName,
) -> String {
    let client_name = found.name.as_str();
    // Replies are already gathered into one write per batch of pipelined
    // commands; Nagle's algorithm would only hold them back.
    let _ = stream.set_nodelay(true);
    // Input waiting before the greeting is written came from a client
    // that did not wait for it. Checked before the write, never after: a
    // client that answers the greeting at once (loopback, a loaded
    // machine) must not be taken for one that talked first.
    let mut talked_first = unread_bytes(&stream) > 0;
    let local = stream.local_addr().ok();
    // check_policy_service's `instance`: one per transaction.
    let mut instance = String::new();
    let mut action = TxAction::default();
    let mut session = Session::new(s.session.clone());
    let client = format!("{client_name}[{}]", peer.ip());
    let mut tls_info: Option<TlsSession> = None;
    // smtpd_tls_req_ccert refused the wrapped TLS session: this reply
    // instead of the greeting, and the connection ends.
    let mut aborted: Option<Reply> = None;
    // What the name service said of the client (asked once, if at all).
    let mut client_dns: Option<smtpd_check::ClientDns> = found.dns;
    // smtpd_tls_wrappermode: the handshake comes before the greeting.
    let stream = match &s.smtpd_tls {
        Some(tls) if tls.wrapper => match handshake(tls, stream, log, &client, "CONNECT").await {
            Some((t, info)) => {
                // What came before the greeting was the TLS handshake,
                // not an early talker.
                talked_first = false;
                session.wrapped();
                aborted = required_cert(tls, &info, s, log, &client);
                tls_info = Some(info);
                t
            }
            None => {
                // Postfix counts the failed handshake as a refused line
                // (`commands=0/0`).
                session.refused_line();
                return session.summary();
            }
        },
        _ => Stream::Plain(stream),
    };
    // SMTP AUTH: the backend's mechanisms, in plaintext only without
    // smtpd_tls_auth_only, under TLS only with a certificate.
    if let Some(sasl) = &s.smtpd_sasl {
        let auth_only = s.smtpd_tls.as_ref().is_some_and(|t| t.auth_only);
        let plain = if auth_only || session.is_tls() {
            Vec::new()
        } else {
            sasl.mechanisms(false).await
        };
        let under_tls = if s.smtpd_tls.is_some() {
            sasl.mechanisms(true).await
        } else {
            Vec::new()
        };
        session.offer_auth(plain, under_tls, sasl.broken_clients);
    }
    // One buffer for reading; replies are written to the stream under it.
    let mut io = BufReader::with_capacity(16 * 1024, stream);
    if let Some(reply) = aborted.take() {
        return refuse_tls_session(&mut io, reply, session).await;
    }
    let mut greeting = Vec::with_capacity(128);
    session.greeting().write_to(&mut greeting);
    if send(&mut io, &greeting).await.is_err() {
        return session.summary();
    }
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut line = Vec::with_capacity(256);
    // The last command, for "lost connection after X".
    let mut last = "CONNECT".to_string();
    // A message arriving in BDAT chunks, between its chunks.
    let mut chunked: Option<Chunked> = None;
    // "improper command pipelining" was logged.
    let mut improper = false;
    // The session as the restrictions see it, now.
    macro_rules! judged {
        () => {
            Judged {
                session: &session,
                tls: tls_info.as_ref(),
                peer,
                local,
                instance: &instance,
                client_name: &client,
                reverse_client_name: &found.reverse,
                improper_pipelining: improper,
            }
        };
    }
    if talked_first {
        let _ = io.fill_buf().await;
        improper = true;
        improper_pipelining(log, "CONNECT", &client, io.buffer());
    }
    loop {
        // Replies to pipelined commands go out together, when the input
        // buffer runs dry (RFC 2920).
        if io.buffer().is_empty() && !out.is_empty() {
            if send(&mut io, &out).await.is_err() {
                break;
            }
            out.clear();
        }
        line.clear();
        let read = tokio::time::timeout(s.smtpd_timeout, read_line(&mut io, &mut line)).await;
        match read {
            Err(_) => {
                timed_out(&mut io, s, log, &format!("{last} from {client}")).await;
                break;
            }
            Ok(Ok(Line::Complete)) => {}
            Ok(Ok(Line::BareLf)) => {
                // smtpd_forbid_bare_newline = reject applies to commands
                // too (smtpd_forbid_bare_newline_exclusions aside).
                if s.bare_newline == rostfix_smtp::data::BareNewline::Reject
                    && !s.in_mynetworks(peer.ip())
                {
                    log.info(
                        "smtpd",
                        &format!(
                            "NOQUEUE: reject: {last} from {client}: bare <LF> received; {}",
                            proto_helo(&session)
                        ),
                    );
                    text::bare_lf(&s.myhostname).write_to(&mut out);
                    let _ = send(&mut io, &out).await;
                    session.refused_line();
                    return session.summary();
                }
            }
            Ok(Ok(Line::TooLong)) => {
                let shown: String = String::from_utf8_lossy(&line).chars().take(30).collect();
                log.warning(
                    "smtpd",
                    &format!("{client}: request longer than {LINE_LIMIT}: {shown}..."),
                );
            }
            Ok(Ok(Line::Eof) | Err(_)) => {
                log.info(
                    "smtpd",
                    &format!("lost connection after {last} from {client}"),
                );
                break;
            }
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        last = verb_of(&text);
        // A client that sends more after a command it must wait on (one
        // that ends a pipelined group, RFC 2920; any, where EHLO did not
        // offer PIPELINING) is logged, once.
        let must_wait = ENDS_GROUP.contains(&last.as_str()) || !session.is_esmtp();
        if !improper && must_wait && !io.buffer().is_empty() {
            improper = true;
            improper_pipelining(log, &last, &client, io.buffer());
        }
        let mut event = session.command(&text);
        loop {
            event = match event {
                Event::Reply(r) => {
                    // Tarpit a client that keeps making errors.
                    if session.should_sleep() {
                        tokio::time::sleep(s.smtpd_error_sleep_time).await;
                    }
                    r.write_to(&mut out);
                    break;
                }
                Event::Auth { mechanism, initial } => {
                    let Some(sasl) = &s.smtpd_sasl else {
                        unreachable!("AUTH is offered only with SASL settings")
                    };
                    let exchange = Exchange {
                        sasl,
                        mechanism: &mechanism,
                        client: &client,
                        peer,
                        local,
                        tls: session.is_tls(),
                    };
                    match authenticate(&mut io, &exchange, initial.as_deref(), s, log).await {
                        Ok(user) => session.auth_done(Ok((user, mechanism))),
                        Err(Some(reply)) => session.auth_done(Err(reply)),
                        Err(None) => {
                            log.info(
                                "smtpd",
                                &format!("lost connection after AUTH from {client}"),
                            );
                            return session.summary();
                        }
                    }
                }
                Event::StartTls(r) => {
                    r.write_to(&mut out);
                    if send(&mut io, &out).await.is_err() {
                        return session.summary();
                    }
                    out.clear();
                    // Whatever the client sent after STARTTLS in plaintext
                    // goes with the buffer, unread (CVE-2011-0411).
                    let (Some(tls), Stream::Plain(tcp)) = (&s.smtpd_tls, io.into_inner()) else {
                        return session.summary();
                    };
                    match handshake(tls, tcp, log, &client, "STARTTLS").await {
                        Some((stream, info)) => {
                            let refused = required_cert(tls, &info, s, log, &client);
                            tls_info = Some(info);
                            io = BufReader::with_capacity(16 * 1024, stream);
                            session.tls_started();
                            if let Some(reply) = refused {
                                return refuse_tls_session(&mut io, reply, session).await;
                            }
                            break;
                        }
                        None => {
                            session.tls_failed();
                            return session.summary();
                        }
                    }
                }
                Event::NonSmtp(r) => {
                    let shown: String = text.chars().take(100).collect();
                    log.warning("smtpd", &format!("non-SMTP command from {client}: {shown}"));
                    Event::Close(r)
                }
                Event::Close(r) => {
                    if r.code == 521 && last == "BDAT" {
                        log.warning(
                            "smtpd",
                            &format!(
                                "NOQUEUE: malformed BDAT command syntax from {client}: {text}"
                            ),
                        );
                    }
                    r.write_to(&mut out);
                    let _ = send(&mut io, &out).await;
                    // Under TLS, a close_notify before the close.
                    let _ = io.get_mut().shutdown().await;
                    return session.summary();
                }
                Event::CheckMail { from, params } => {
                    let limit = s.session.message_size_limit;
                    if let Some(size) = params.size
                        && limit > 0
                        && size > limit
                    {
                        let reply = text::size_exceeded();
                        log.info(
                            "smtpd",
                            &format!(
                                "NOQUEUE: reject: MAIL from {client}: {}; from=<{from}> {}",
                                reply.to_string().trim_end(),
                                proto_helo(&session)
                            ),
                        );
                        session.rejected(reply)
                    } else {
                        instance = next_instance();
                        action = TxAction::default();
                        session.mail_accepted(from, params)
                    }
                }
                // After DISCARD nothing of the message is checked.
                Event::CheckRcpt { to, params } if action.discard => {
                    session.rcpt_accepted(to, params)
                }
                Event::CheckRcpt { to, params } => {
                    let who = judged!();
                    let mut verdict =
                        check(s, log, &who, &mut client_dns, &to, Judge::Recipient).await;
                    action.take(&mut verdict);
                    let from = session
                        .transaction()
                        .map(|t| t.from.clone())
                        .unwrap_or_default();
                    let about = format!("from=<{from}> to=<{to}> {}", proto_helo(&session));
                    match judged(log, "RCPT", &client, &about, verdict) {
                        None => session.rcpt_accepted(to, params),
                        Some(reply) => session.rejected(reply),
                    }
                }
                Event::Vrfy(arg) => {
                    let addr = arg
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string();
                    let who = judged!();
                    let verdict =
                        check(s, log, &who, &mut client_dns, &addr, Judge::Recipient).await;
                    let about = format!("to=<{addr}> {}", proto_helo(&session));
                    match judged(log, "VRFY", &client, &about, verdict) {
                        None => session.replied(Reply::new(252, format!("2.0.0 {arg}"))),
                        Some(reply) => session.replied(reply),
                    }
                }
                Event::Etrn(site) => {
                    // Sites outside fast_flush_domains are refused as
                    // Postfix logs and answers it; the others' deferred
                    // mail is tried again now.
                    if s.flushable(&site) {
                        let fifo = s.queue_directory.join(rostfix_queue::maildrop::QMGR_FIFO);
                        let site = site.trim_start_matches(['@', '#']);
                        match rostfix_queue::maildrop::trigger(
                            &fifo,
                            format!("S {site}\n").as_bytes(),
                        ) {
                            Ok(()) => session.replied(Reply::new(250, "Queuing started")),
                            Err(_) => session.replied(Reply::new(458, "Unable to queue messages")),
                        }
                    } else {
                        log.warning("smtpd", &format!("reject: ETRN {site}... from {client}"));
                        session.replied(Reply::new(459, format!("<{site}>: service unavailable")))
                    }
                }
                Event::Bdat { size, last } => 'bdat: {
                    if chunked.is_none() {
                        let cleanup = start_message(
                            &session,
                            s,
                            log,
                            &Who::new(peer, client_name, &tls_info),
                        )
                        .await;
                        // smtpd_data_restrictions, as at DATA; a refused
                        // chunk is read and thrown away.
                        if s.access.checks_data(false) {
                            let judge = judged!();
                            let qid = cleanup.as_ref().map(|c| c.id().to_string());
                            let refused = data_restrictions(
                                s,
                                log,
                                &judge,
                                &mut client_dns,
                                "BDAT",
                                qid,
                                &mut action,
                            )
                            .await;
                            if let Some(reply) = refused {
                                if let Some(c) = cleanup {
                                    c.abandon();
                                }
                                if discard(&mut io, s, size).await.is_err() {
                                    log.info(
                                        "smtpd",
                                        &format!("lost connection after BDAT from {client}"),
                                    );
                                    return session.summary();
                                }
                                break 'bdat session.bdat_done(last, Err(reply));
                            }
                        }
                        chunked = Some(Chunked {
                            failed: cleanup.is_none(),
                            cleanup,
                            partial: Vec::new(),
                            total: 0,
                        });
                    }
                    let Some(msg) = chunked.as_mut() else {
                        unreachable!("made above")
                    };
                    if let Err(gone) = bdat_chunk(&mut io, s, msg, size).await {
                        drop(chunked.take());
                        session.data_aborted();
                        match gone {
                            Gone::Lost(n) => log.info(
                                "smtpd",
                                &format!("lost connection after BDAT ({n} bytes) from {client}"),
                            ),
                            Gone::Timeout(n) => {
                                let after = format!("BDAT ({n} bytes) from {client}");
                                timed_out(&mut io, s, log, &after).await;
                            }
                        }
                        return session.summary();
                    }
                    let limit = s.session.message_size_limit;
                    let too_big = limit > 0 && msg.total > limit;
                    if too_big || msg.failed || last {
                        let Some(mut msg) = chunked.take() else {
                            unreachable!("checked above")
                        };
                        let result = match msg.cleanup.take() {
                            Some(c) if too_big => {
                                c.abandon();
                                Err(text::message_file_too_big())
                            }
                            Some(mut c) if !msg.failed => {
                                // A message not ended by CRLF gets one.
                                if !msg.partial.is_empty() {
                                    msg.total += 2;
                                    if c.line(s, &msg.partial).is_err() {
                                        msg.failed = true;
                                    }
                                }
                                let refused = if msg.failed || !s.access.checks_data(true) {
                                    None
                                } else {
                                    let judge = judged!();
                                    end_of_data(
                                        s,
                                        log,
                                        &judge,
                                        &mut client_dns,
                                        c.id().as_str(),
                                        &mut action,
                                    )
                                    .await
                                };
                                if msg.failed {
                                    c.abandon();
                                    Err(text::write_error())
                                } else if let Some(reply) = refused {
                                    c.abandon();
                                    Err(reply)
                                } else {
                                    commit(c, s, log, intake, action).await.map(|id| {
                                        Reply::new(
                                            250,
                                            format!("2.0.0 Ok: {} bytes queued as {id}", msg.total),
                                        )
                                    })
                                }
                            }
                            other => {
                                if let Some(c) = other {
                                    c.abandon();
                                }
                                Err(text::write_error())
                            }
                        };
                        session.bdat_done(last, result)
                    } else {
                        let reply = Reply::new(250, format!("2.0.0 Ok: {} bytes", msg.total));
                        session.bdat_done(false, Ok(reply))
                    }
                }
                Event::BdatDiscard { size, reply } => {
                    if discard(&mut io, s, size).await.is_err() {
                        log.info(
                            "smtpd",
                            &format!("lost connection after BDAT from {client}"),
                        );
                        return session.summary();
                    }
                    reply.write_to(&mut out);
                    break;
                }
                Event::StartData(r) => 'data: {
                    let who = Who::new(peer, client_name, &tls_info);
                    let judge = judged!();
                    // smtpd_data_restrictions, with the queue ID the
                    // transaction has by now in Postfix (its log line too).
                    let mut started = None;
                    if s.access.checks_data(false) {
                        started = start_message(&session, s, log, &who).await;
                        let qid = started.as_ref().map(|c| c.id().to_string());
                        let refused = data_restrictions(
                            s,
                            log,
                            &judge,
                            &mut client_dns,
                            "DATA",
                            qid,
                            &mut action,
                        )
                        .await;
                        if let Some(reply) = refused {
                            if let Some(c) = started {
                                c.abandon();
                            }
                            break 'data session.rejected(reply);
                        }
                    }
                    r.write_to(&mut out);
                    if send(&mut io, &out).await.is_err() {
                        if let Some(c) = started {
                            c.abandon();
                        }
                        return session.summary();
                    }
                    out.clear();
                    let eod = s
                        .access
                        .checks_data(true)
                        .then_some((&judge, &mut client_dns));
                    let reply = receive(
                        &mut io,
                        &session,
                        s,
                        log,
                        &who,
                        intake,
                        started,
                        eod,
                        &mut action,
                    )
                    .await;
                    match reply {
                        Ok((r, false)) => session.data_done(r),
                        // Refused at its end: Postfix keeps the envelope.
                        Ok((r, true)) => session.data_rejected(r),
                        Err(Gone::Lost(n)) => {
                            session.data_aborted();
                            log.info(
                                "smtpd",
                                &format!("lost connection after DATA ({n} bytes) from {client}"),
                            );
                            return session.summary();
                        }
                        Err(Gone::Timeout(n)) => {
                            session.data_aborted();
                            let after = format!("DATA ({n} bytes) from {client}");
                            timed_out(&mut io, s, log, &after).await;
                            return session.summary();
                        }
                    }
                }
            };
        }
        if let Some(r) = session.too_many_errors() {
            r.write_to(&mut out);
            let _ = send(&mut io, &out).await;
            log.info(
                "smtpd",
                &format!("too many errors after {last} from {client}"),
            );
            return session.summary();
        }
        // RSET, HELO or EHLO ended a BDAT transfer: its message goes.
        if chunked.is_some() && !session.in_bdat() {
            chunked = None;
        }
    }
    session.summary()
}

/// One SMTP AUTH exchange's parties.
struct Exchange<'a> {
    sasl: &'a crate::sasl_server::SaslServer,
    mechanism: &'a str,
    /// `unknown[addr]`, for the log.
    client: &'a str,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: bool,
}

/// Runs an AUTH exchange between the client and the backend: the user
/// it authenticated, or the reply that refuses it (`None`: the client
/// went away).
async fn authenticate(
    io: &mut BufReader<Stream>,
    x: &Exchange<'_>,
    initial: Option<&str>,
    s: &Settings,
    log: &Log,
) -> Result<String, Option<Reply>> {
    let temporary = |why: String| {
        log.warning(
            "smtpd",
            &format!(
                "{}: SASL {} authentication failed: {why}",
                x.client, x.mechanism
            ),
        );
        Some(Reply::new(454, "4.7.0 Temporary authentication failure"))
    };
    let mut ex = match x
        .sasl
        .start(x.mechanism, initial, x.peer, x.local, x.tls)
        .await
    {
        Ok(ex) => ex,
        Err(e) => return Err(temporary(e)),
    };
    let mut line = Vec::with_capacity(256);
    loop {
        match ex.next().await {
            Ok(crate::sasl_server::Step::Ok(user)) => return Ok(user),
            Ok(crate::sasl_server::Step::Continue(challenge)) => {
                let mut out = Vec::new();
                Reply::new(334, challenge).write_to(&mut out);
                if send(io, &out).await.is_err() {
                    return Err(None);
                }
                line.clear();
                match tokio::time::timeout(s.smtpd_timeout, read_line(io, &mut line)).await {
                    Ok(Ok(Line::Complete | Line::BareLf)) => {}
                    _ => return Err(None),
                }
                let answer = String::from_utf8_lossy(&line).into_owned();
                if answer == "*" {
                    return Err(Some(Reply::new(501, "5.7.0 Authentication aborted")));
                }
                if let Err(e) = ex.answer(&answer).await {
                    return Err(temporary(e));
                }
            }
            Ok(crate::sasl_server::Step::Fail(reason, user, detail)) => {
                if let Some(d) = detail {
                    log.warning("smtpd", &format!("SASL authentication failure: {d}"));
                }
                let reason = reason.unwrap_or_else(|| "(reason unavailable)".to_string());
                let user = user
                    .map(|u| format!(", sasl_username={u}"))
                    .unwrap_or_default();
                log.warning(
                    "smtpd",
                    &format!(
                        "{}: SASL {} authentication failed: {reason}{user}",
                        x.client, x.mechanism
                    ),
                );
                return Err(Some(Reply::new(
                    535,
                    format!("5.7.8 Error: authentication failed: {reason}"),
                )));
            }
            Err(e) => return Err(temporary(e)),
        }
    }
}

/// The client, as a message's Received header and queue file name it.
struct Who<'a> {
    addr: SocketAddr,
    name: &'a str,
    /// The session's TLS (`TLSv1.3 with cipher ...`) and whether the
    /// Received header shows it.
    tls: &'a Option<TlsSession>,
}

impl<'a> Who<'a> {
    fn new(addr: SocketAddr, name: &'a str, tls: &'a Option<TlsSession>) -> Who<'a> {
        Who { addr, name, tls }
    }
}

/// Writes replies to the session's stream (under its read buffer), and
/// flushes them out of TLS.
async fn send(io: &mut BufReader<Stream>, bytes: &[u8]) -> std::io::Result<()> {
    let w = io.get_mut();
    w.write_all(bytes).await?;
    w.flush().await
}

/// Sends smtpd_tls_req_ccert's 421 and ends the session.
async fn refuse_tls_session(io: &mut BufReader<Stream>, reply: Reply, session: Session) -> String {
    let mut out = Vec::with_capacity(128);
    reply.write_to(&mut out);
    let _ = send(io, &out).await;
    let _ = io.get_mut().shutdown().await;
    session.summary()
}

/// smtpd_tls_req_ccert: a session without a trusted client certificate is
/// logged as aborted, and answered 421 at once.
fn required_cert(
    tls: &crate::tls_server::ServerTls,
    info: &TlsSession,
    s: &Settings,
    log: &Log,
    client: &str,
) -> Option<Reply> {
    let why = info.required_cert_missing(tls)?;
    log.info(
        "smtpd",
        &format!("NOQUEUE: abort: TLS from {client}: {why}"),
    );
    Some(Reply::new(
        421,
        format!("4.7.1 {} Error: {why}", s.myhostname),
    ))
}

/// The server side of a TLS handshake, within smtpd_starttls_timeout;
/// `None` (logged) when it fails.
async fn handshake(
    tls: &crate::tls_server::ServerTls,
    tcp: TcpStream,
    log: &Log,
    client: &str,
    after: &str,
) -> Option<(Stream, TlsSession)> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(tcp)).await {
        Ok(Ok(t)) => {
            let stream = Stream::Tls(Box::new(t));
            let session = stream.session(tls)?;
            if let Some(Err(why)) = session.client_cert.as_ref().map(|c| c.trust)
                && tls.req_ccert
            {
                log.info(
                    "smtpd",
                    &format!("certificate verification failed for {client}: {why}"),
                );
            }
            if tls.loglevel >= 1 {
                log.info(
                    "smtpd",
                    &format!(
                        "{} TLS connection established from {client}: {}",
                        session.trust(),
                        session.described
                    ),
                );
            }
            Some((stream, session))
        }
        // Postfix's lines (the library's own text differs: rustls).
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            log.info(
                "smtpd",
                &format!("SSL_accept error from {client}: lost connection"),
            );
            log.info(
                "smtpd",
                &format!("lost connection after {after} from {client}"),
            );
            None
        }
        Ok(Err(e)) => {
            log.info("smtpd", &format!("SSL_accept error from {client}: -1"));
            log.warning("smtpd", &format!("TLS library problem: {e}"));
            log.info(
                "smtpd",
                &format!("lost connection after {after} from {client}"),
            );
            None
        }
        Err(_) => {
            log.info("smtpd", &format!("SSL_accept error from {client}: timeout"));
            log.info("smtpd", &format!("timeout after {after} from {client}"));
            None
        }
    }
}

/// Bytes the kernel holds for `stream` that nobody has read yet.
fn unread_bytes(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // at `n`, alive for the call; the descriptor is the open socket.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 {
        usize::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// Logs a verdict as Postfix does (`NOQUEUE: reject: RCPT from CLIENT:
/// REPLY; from=<..> to=<..> proto=.. helo=<..>`, `reject_warning` for
/// what warn_if_reject let pass) and returns the refusal, if any.
fn judged(
    log: &Log,
    verb: &str,
    client: &str,
    about: &str,
    verdict: smtpd_check::Verdict,
) -> Option<Reply> {
    judged_as(log, "NOQUEUE", verb, client, about, verdict)
}

/// [`judged`] for a transaction that has a queue ID already (at DATA and
/// the message's end), or `NOQUEUE`.
fn judged_as(
    log: &Log,
    queue_id: &str,
    verb: &str,
    client: &str,
    about: &str,
    verdict: smtpd_check::Verdict,
) -> Option<Reply> {
    for e in &verdict.config_errors {
        log.warning("smtpd", e);
    }
    for (kind, text) in &verdict.notes {
        log.info(
            "smtpd",
            &format!("{queue_id}: {kind}: {verb} from {client}: {text}; {about}"),
        );
    }
    for w in &verdict.warnings {
        log.info(
            "smtpd",
            &format!(
                "{queue_id}: reject_warning: {verb} from {client}: {}; {about}",
                w.to_string().trim_end()
            ),
        );
    }
    let reply = verdict.refused?;
    log.info(
        "smtpd",
        &format!(
            "{queue_id}: reject: {verb} from {client}: {}; {about}",
            reply.to_string().trim_end()
        ),
    );
    Some(reply)
}

/// `proto=ESMTP helo=<name>`, the tail of Postfix's reject log lines.
fn proto_helo(session: &Session) -> String {
    let proto = if session.is_esmtp() { "ESMTP" } else { "SMTP" };
    match session.helo_name() {
        Some(helo) => format!("proto={proto} helo=<{helo}>"),
        None => format!("proto={proto}"),
    }
}

/// Commands after which a client must wait for the reply before it sends
/// more (the last of a pipelined group, as Postfix counts them).
const ENDS_GROUP: &[&str] = &["HELO", "EHLO", "STARTTLS", "DATA", "NOOP", "VRFY"];

/// Logs a client that did not wait for a reply, with (the start of) what
/// it sent ahead.
fn improper_pipelining(log: &Log, after: &str, client: &str, pending: &[u8]) {
    let shown = escape(&pending[..pending.len().min(100)]);
    log.info(
        "smtpd",
        &format!("improper command pipelining after {after} from {client}: {shown}"),
    );
}

/// Bytes as C-style escapes, the way Postfix logs client input.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            other => out.push_str(&format!("\\{other:03o}")),
        }
    }
    out
}

/// The verb of a command line as Postfix names it in log lines: known verbs
/// in upper case, anything else as UNKNOWN.
fn verb_of(line: &str) -> String {
    let verb = line
        .split_ascii_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    const KNOWN: &[&str] = &[
        "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY", "ETRN", "QUIT",
        "STARTTLS", "AUTH",
    ];
    if KNOWN.contains(&verb.as_str()) {
        verb
    } else {
        "UNKNOWN".to_string()
    }
}

/// What [`read_line`] read.
enum Line {
    Complete,
    /// Complete, but ended by a bare LF.
    BareLf,
    /// Longer than LINE_LIMIT: cut there, the rest read and dropped.
    TooLong,
    Eof,
}

/// How a client left in the middle of DATA, and the bytes it had sent.
enum Gone {
    Lost(u64),
    Timeout(u64),
}

/// smtpd_timeout ran out: Postfix's 421 and log line (`after` is what the
/// client was doing, and who it is).
async fn timed_out(io: &mut BufReader<Stream>, s: &Settings, log: &Log, after: &str) {
    let reply = Reply::new(
        421,
        format!("4.4.2 {} Error: timeout exceeded", s.myhostname),
    );
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = send(io, &out).await;
    log.info("smtpd", &format!("timeout after {after}"));
}

/// Reads one line up to LF into `line` (without CRLF); longer lines are
/// cut at LINE_LIMIT and the rest read and dropped.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<Line> {
    // Bytes of the line so far, and whether the last one was CR.
    let (mut seen, mut cr) = (0usize, false);
    loop {
        let buf = rd.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        // The byte before this chunk's end (or its LF) ends in CR?
        let before_end = if done {
            take.checked_sub(2)
        } else {
            take.checked_sub(1)
        };
        if let Some(i) = before_end {
            cr = buf[i] == b'\r';
        }
        let room = LINE_LIMIT.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        rd.consume(take);
        seen += take;
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            // The limit counts the line without its CRLF.
            let body = seen - 1 - usize::from(cr);
            return Ok(if body > LINE_LIMIT {
                Line::TooLong
            } else if cr {
                Line::Complete
            } else {
                Line::BareLf
            });
        }
    }
}

/// Receives DATA into cleanup; the reply to send, or `None` when the
/// client went away.
#[allow(clippy::too_many_arguments)]
async fn receive<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    session: &Session,
    s: &Arc<Settings>,
    log: &Log,
    who: &Who<'_>,
    intake: &Intake,
    started: Option<Cleanup>,
    end_of_data: Option<(&Judged<'_>, &mut Option<smtpd_check::ClientDns>)>,
    action: &mut TxAction,
) -> Result<(Reply, bool), Gone> {
    let (peer, client_name) = (who.addr, who.name);
    let started = match started {
        Some(c) => Some(c),
        None => start_message(session, s, log, who).await,
    };
    let mut cleanup = match started {
        Some(c) => c,
        None => {
            // Read to the end of the data, then refuse.
            let mut rx = DataReceiver::new(s.bare_newline, 0);
            drain(rd, &mut rx, s).await?;
            return Ok((text::write_error(), false));
        }
    };
    // smtpd_forbid_bare_newline_exclusions (default $mynetworks) keep the
    // old behaviour for trusted clients.
    let mode = if s.in_mynetworks(peer.ip()) {
        rostfix_smtp::data::BareNewline::Allow
    } else {
        s.bare_newline
    };
    let mut rx = DataReceiver::new(mode, s.session.message_size_limit);
    // Less than glibc's 64 KB, whose free consolidates the whole heap's
    // small free chunks (malloc_consolidate: 2% of the CPU, perf).
    let mut content = Vec::with_capacity(16 * 1024);
    let mut failed = false;
    let mut received = 0u64;
    loop {
        let buf = match fill(rd, s, received).await {
            Ok(buf) => buf,
            Err(gone) => {
                cleanup.abandon();
                return Err(gone);
            }
        };
        let (used, ev) = rx.feed(buf, &mut content);
        rd.consume(used);
        received += used as u64;
        // Hand whole lines to cleanup as they come.
        let mut start = 0;
        while let Some(nl) = content[start..].iter().position(|&b| b == b'\n') {
            if !failed && cleanup.line(s, &content[start..start + nl]).is_err() {
                failed = true;
            }
            start += nl + 1;
        }
        content.drain(..start);
        if ev == DataEvent::Done {
            break;
        }
    }
    if rx.too_big() {
        log.warning(
            "smtpd",
            &format!("{}: queue file size limit exceeded", cleanup.id()),
        );
        cleanup.abandon();
        return Ok((text::message_file_too_big(), false));
    }
    if mode == rostfix_smtp::data::BareNewline::Reject && rx.saw_bare_lf() {
        let id = cleanup.id().clone();
        cleanup.abandon();
        if let Some(tx) = session.transaction() {
            let to = tx.recipients.first().map_or("", |(r, _)| r.as_str());
            log.info(
                "smtpd",
                &format!(
                    "{id}: reject: END-OF-MESSAGE from {client_name}[{}]: bare <LF> received; from=<{}> to=<{to}> {}",
                    peer.ip(),
                    tx.from,
                    proto_helo(session)
                ),
            );
        }
        return Ok((text::bare_lf(&s.myhostname), false));
    }
    if failed {
        cleanup.abandon();
        return Ok((text::write_error(), false));
    }
    if let Some((judge, client_dns)) = end_of_data {
        let id = cleanup.id().to_string();
        if let Some(reply) = self::end_of_data(s, log, judge, client_dns, &id, action).await {
            cleanup.abandon();
            return Ok((reply, true));
        }
    }
    Ok(match commit(cleanup, s, log, intake, *action).await {
        Ok(id) => (text::queued(id.as_str()), false),
        Err(reply) => (reply, false),
    })
}

/// Starts the queue file of the current transaction (cleanup) and logs
/// `ID: client=`; `None` (logged) when the queue cannot take it.
async fn start_message(
    session: &Session,
    s: &Arc<Settings>,
    log: &Log,
    who: &Who<'_>,
) -> Option<Cleanup> {
    let (peer, client_name, tls) = (who.addr, who.name, who.tls);
    let tx = session.transaction()?;
    let env = Envelope {
        origin: Origin::Smtp {
            client_name: client_name.to_string(),
            client_addr: peer.ip().to_string(),
            helo: session.helo_name().map(str::to_string),
            esmtp: session.is_esmtp(),
            tls: tls.clone().map(Box::new),
            authenticated: session.authenticated().is_some(),
            auth_header: session
                .authenticated()
                .filter(|_| {
                    s.smtpd_sasl
                        .as_ref()
                        .is_some_and(|a| a.authenticated_header)
                })
                .map(|(user, _)| user.to_string()),
        },
        full_name: None,
        sender: tx.from.clone(),
        recipients: tx.recipients.iter().map(|(r, _)| r.clone()).collect(),
        dsn: tx
            .recipients
            .iter()
            .map(|(_, p)| Dsn {
                notify: p.notify.map(notify_text).unwrap_or_default(),
                orcpt: p.orcpt.clone().unwrap_or_default(),
            })
            .collect(),
        ret: match tx.params.ret {
            Some(Ret::Full) => "full".into(),
            Some(Ret::Hdrs) => "hdrs".into(),
            None => String::new(),
        },
        envid: tx.params.envid.clone().unwrap_or_default(),
        verify: false,
        eight_bit_mime: tx.params.body == Some(rostfix_smtp::params::Body::EightBitMime),
        // local_header_rewrite_clients = permit_inet_interfaces
        rewrite_headers: s.inet_interface_addrs.contains(&peer.ip()),
    };
    // Creating the file runs here, not on the blocking pool: a hand-off
    // between threads (futex wake-ups, context switches) costs more than
    // the create, which the journal rarely makes wait.
    match Cleanup::start(s, &env) {
        Ok(c) => {
            let sasl = match session.authenticated() {
                Some((user, method)) => format!(", sasl_method={method}, sasl_username={user}"),
                None => String::new(),
            };
            log.info(
                "smtpd",
                &format!("{}: client={client_name}[{}]{sasl}", c.id(), peer.ip()),
            );
            Some(c)
        }
        Err(e) => {
            log.warning("cleanup", &format!("queue file: {e}"));
            None
        }
    }
}

/// NOTIFY as the queue file keeps it (see [`Dsn`]).
fn notify_text(n: Notify) -> String {
    if n.never {
        return "never".into();
    }
    [
        (n.success, "success"),
        (n.failure, "failure"),
        (n.delay, "delay"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// Ends the message through cleanup and answers with its queue ID or
/// the reply for why it could not be queued. A discarded message is
/// answered as queued, and dropped; a held one goes to the hold queue.
async fn commit(
    mut cleanup: Cleanup,
    s: &Arc<Settings>,
    log: &Log,
    intake: &Intake,
    action: TxAction,
) -> Result<rostfix_queue::QueueId, Reply> {
    if action.discard {
        let id = cleanup.id().clone();
        cleanup.abandon();
        return Ok(id);
    }
    if action.hold
        && let Err(e) = cleanup.hold(s)
    {
        log.warning("cleanup", &format!("{}: hold: {e}", cleanup.id()));
        cleanup.abandon();
        return Err(text::write_error());
    }
    match cleanup::commit(cleanup, s, log, intake).await {
        Ok(id) => Ok(id),
        Err(Refused::TooManyHops) => Err(Reply::new(554, "5.4.0 Error: too many hops")),
        Err(Refused::Io(_)) => Err(text::write_error()),
    }
}

/// A message arriving in BDAT chunks: the queue file, the line not yet
/// ended, and the bytes so far.
struct Chunked {
    cleanup: Option<Cleanup>,
    partial: Vec<u8>,
    total: u64,
    failed: bool,
}

impl Drop for Chunked {
    /// A transfer that ends without LAST (RSET, QUIT, a lost client)
    /// leaves no half-written queue file behind.
    fn drop(&mut self) {
        if let Some(c) = self.cleanup.take() {
            c.abandon();
        }
    }
}

/// Reads the `size` bytes of a BDAT chunk, handing them to `each` as they
/// come, within smtpd_timeout per read.
async fn read_chunk<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    s: &Settings,
    size: u64,
    mut each: impl FnMut(&[u8]),
) -> Result<(), Gone> {
    let mut left = size;
    while left > 0 {
        let buf = fill(rd, s, size - left).await?;
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        each(&buf[..take]);
        rd.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Reads one BDAT chunk of `size` bytes into `msg` (lines end at LF; a CR
/// before it is dropped, as the queue keeps lines).
async fn bdat_chunk<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    s: &Settings,
    msg: &mut Chunked,
    size: u64,
) -> Result<(), Gone> {
    read_chunk(rd, s, size, |mut rest| {
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            msg.partial.extend_from_slice(&rest[..nl]);
            if msg.partial.last() == Some(&b'\r') {
                msg.partial.pop();
            }
            if let Some(c) = &mut msg.cleanup
                && !msg.failed
                && c.line(s, &msg.partial).is_err()
            {
                msg.failed = true;
            }
            msg.partial.clear();
            rest = &rest[nl + 1..];
        }
        msg.partial.extend_from_slice(rest);
    })
    .await?;
    msg.total += size;
    Ok(())
}

/// Reads and drops `size` bytes.
async fn discard<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    s: &Settings,
    size: u64,
) -> Result<(), Gone> {
    read_chunk(rd, s, size, |_| {}).await
}

/// The next bytes of message data, within smtpd_timeout.
async fn fill<'a, R: tokio::io::AsyncBufRead + Unpin>(
    rd: &'a mut R,
    s: &Settings,
    received: u64,
) -> Result<&'a [u8], Gone> {
    match tokio::time::timeout(s.smtpd_timeout, rd.fill_buf()).await {
        Err(_) => Err(Gone::Timeout(received)),
        Ok(Ok(buf)) if !buf.is_empty() => Ok(buf),
        Ok(_) => Err(Gone::Lost(received)),
    }
}

async fn drain<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    rx: &mut DataReceiver,
    s: &Settings,
) -> Result<(), Gone> {
    let mut sink = Vec::new();
    let mut received = 0u64;
    loop {
        let buf = fill(rd, s, received).await?;
        let (used, ev) = rx.feed(buf, &mut sink);
        rd.consume(used);
        received += used as u64;
        sink.clear();
        if ev == DataEvent::Done {
            return Ok(());
        }
    }
}

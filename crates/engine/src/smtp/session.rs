//! The conversation: connect (trying each host of the next hop in
//! turn), greeting, EHLO/LHLO, STARTTLS, AUTH, then the mail
//! transaction, pipelined when the server offers PIPELINING. Each
//! recipient ends with the server's reply, in Postfix's words.

use std::time::{Duration, Instant};

use rostfix_smtp::Reply;
use rostfix_smtp::client::{Extensions, data_bytes, encode_xtext};
use tokio::net::{TcpSocket, UnixStream};

use super::conn::{Broken, Conn, Peer, Stream, one_line, status_code};
use super::nexthop::{self, Host, Target};
use super::tls::Level;
use super::{Client, InsecureMx, Message, Outcome, Rcpt, sasl};
use super::{dane, dns};
use crate::settings::Settings;
use crate::virtual_agent::Failure;

/// The connection broke (or timed out) while `b` says.
fn broken(b: Broken, conn: &Conn) -> HostFailed {
    HostFailed::soft("4.4.2", b.reason(&conn.peer))
}

/// Where each recipient stands.
#[derive(Debug)]
enum State {
    Pending,
    /// Tried and failed for now: another host may take it.
    Soft(Failure),
    Done(Result<String, Failure>),
}

/// Why a host could not be used (the next one is tried).
struct HostFailed {
    dsn: String,
    why: String,
    /// The server's own reply, for the notification.
    remote: Option<(String, String)>,
    /// A permanent refusal (5xx) that no other host changes.
    permanent: bool,
    /// The server still listens: it gets a QUIT.
    alive: bool,
    /// The server's relay field, once connected.
    relay: Option<String>,
    /// Opportunistic TLS failed: this host may be tried again without.
    retry_plain: bool,
}

impl HostFailed {
    fn soft(dsn: &str, why: String) -> HostFailed {
        HostFailed {
            dsn: dsn.into(),
            why,
            remote: None,
            permanent: false,
            alive: false,
            relay: None,
            retry_plain: false,
        }
    }

    /// A refusal by a server that still listens.
    fn alive(mut self) -> HostFailed {
        self.alive = true;
        self
    }

    fn failure(self) -> Failure {
        match (self.remote, self.permanent) {
            (Some((mta, reply)), _) => Failure::Remote {
                dsn: self.dsn,
                why: self.why,
                mta,
                reply,
            },
            (None, true) => Failure::Bounce(self.dsn, self.why),
            (None, false) => Failure::Defer(self.dsn, self.why),
        }
    }
}

pub(super) async fn deliver(
    s: &Settings,
    client: &Client,
    message: &Message<'_>,
    nexthop: &str,
    recipients: &[Rcpt<'_>],
    cached: Option<Conn>,
    log: &crate::log::Log,
) -> (Vec<Outcome>, Option<Conn>) {
    let mut states: Vec<State> = recipients.iter().map(|_| State::Pending).collect();
    let mut relay = "none".to_string();
    let mut setup = 0.0;
    let mut last: Option<HostFailed> = None;
    let mut kept = None;
    let mut dsn = false;
    let generic = Generic::new(s, client, message);
    let configured = match tls_level(client, nexthop) {
        Ok(level) => level,
        Err((dsn, why)) => {
            let f = HostFailed::soft(dsn, why);
            return (finish(states, &relay, 0.0, Some(f)), None);
        }
    };
    // DANE decides per connection, with what DNS says now: no
    // connection made before is reused for it.
    let dane = matches!(configured, Level::Dane | Level::DaneOnly);
    let cached = match cached {
        Some(conn) if dane => {
            quit(conn, client).await;
            None
        }
        other => other,
    };

    // A cached connection first; if it broke meanwhile, a new one.
    if let Some(mut conn) = cached {
        relay = conn.peer.relay();
        match transaction(
            s,
            client,
            &mut conn,
            message,
            &generic,
            recipients,
            &mut states,
        )
        .await
        {
            Ok(reusable) => {
                let mut out = finish(states, &relay, 0.0, None);
                mark_dsn(&mut out, conn.ext.dsn);
                return (out, reusable.then_some(conn));
            }
            // Nothing was accepted over it: no harm in trying afresh.
            Err(_) if states.iter().all(|st| matches!(st, State::Pending)) => {}
            Err(f) => last = Some(f),
        }
    }

    let targets = match targets(s, client, configured, nexthop, log).await {
        Ok(t) => t,
        Err(f) => return (finish(states, &relay, 0.0, Some(f)), None),
    };
    for host in targets {
        if !states
            .iter()
            .any(|st| matches!(st, State::Pending | State::Soft(_)))
        {
            break;
        }
        for st in states.iter_mut() {
            if matches!(st, State::Soft(_)) {
                *st = State::Pending;
            }
        }
        // The host before this one failed: its reason is logged on a line
        // of its own (the last host's goes into each recipient's line).
        if let Some(prev) = &last {
            if prev.relay.is_some() && !message.id.is_empty() {
                log.tagged(&client.log_tag, &format!("{}: {}", message.id, prev.why));
            } else {
                log.tagged(&client.log_tag, &prev.why);
            }
        }
        let t = Instant::now();
        // No connection without its TLS policy (a failure says relay=none).
        let tls = match tls_policy(s, client, configured, nexthop, &host, log).await {
            Ok(tls) => tls,
            Err(f) => {
                last = Some(f);
                continue;
            }
        };
        let opened = match open(s, client, &host, message, nexthop, &tls, log).await {
            // Only where TLS was optional (`may`) is plaintext a fallback.
            Err(f) if f.retry_plain && tls.level == Level::May => {
                let plain = TlsPolicy {
                    level: Level::None,
                    ..tls
                };
                open(s, client, &host, message, nexthop, &plain, log).await
            }
            other => other,
        };
        let mut conn = match opened {
            Ok(conn) => conn,
            Err(f) => {
                if let Some(r) = &f.relay {
                    relay = r.clone();
                }
                if f.permanent {
                    return (finish(states, &relay, setup, Some(f)), None);
                }
                last = Some(f);
                continue;
            }
        };
        setup = t.elapsed().as_secs_f64();
        relay = conn.peer.relay();
        dsn = conn.ext.dsn;
        match transaction(
            s,
            client,
            &mut conn,
            message,
            &generic,
            recipients,
            &mut states,
        )
        .await
        {
            // What the server refused for now stays refused: backup
            // hosts are for hosts that cannot be reached.
            Ok(true) if !dane => {
                kept = Some(conn);
                break;
            }
            Ok(_) => {
                quit(conn, client).await;
                break;
            }
            Err(f) => last = Some(f),
        }
    }
    let mut out = finish(states, &relay, setup, last);
    mark_dsn(&mut out, dsn);
    (out, kept)
}

/// Delivered recipients of a server that speaks DSN: it reports on them
/// from here on (RFC 3461 section 4.2), not this MTA.
fn mark_dsn(out: &mut [Outcome], dsn: bool) {
    for o in out {
        o.dsn_passed = dsn && o.result.is_ok();
    }
}

/// Outcomes: each recipient as it ended, or with the last host's
/// failure.
fn finish(states: Vec<State>, relay: &str, setup: f64, last: Option<HostFailed>) -> Vec<Outcome> {
    let last = last.map(HostFailed::failure);
    states
        .into_iter()
        .map(|st| Outcome {
            relay: relay.to_string(),
            result: match st {
                State::Done(r) => r,
                State::Soft(f) => Err(f),
                State::Pending => Err(last.clone().unwrap_or_else(|| {
                    Failure::Defer("4.4.0".into(), "no route to the next hop".into())
                })),
            },
            setup,
            dsn_passed: false,
        })
        .collect()
}

/// The hosts to try: a UNIX socket, or the next hop's hosts, then the
/// fallback relays'.
async fn targets(
    s: &Settings,
    client: &Client,
    configured: Level,
    nexthop: &str,
    log: &crate::log::Log,
) -> Result<Vec<Candidate>, HostFailed> {
    let target = nexthop::parse(
        nexthop,
        client.lmtp,
        client.default_port,
        &s.queue_directory,
    )
    .map_err(|why| HostFailed::soft("4.3.5", why))?;
    let mut out = Vec::new();
    // DANE needs to know which records were secure.
    let dane = matches!(configured, Level::Dane | Level::DaneOnly);
    let dnssec = dane && client.dnssec && s.clients.dns.has_mx();
    if dane && !dnssec {
        log.tagged_warning(
            &client.log_tag,
            &format!(
                "{}: {} configured with dnssec lookups disabled",
                nexthop_domain(nexthop),
                configured.name()
            ),
        );
    }
    match target {
        Target::Unix(path) => out.push(Candidate::Unix(path)),
        Target::Inet { host, port, mx } => {
            let first = nexthop::hosts(
                &s.clients.dns,
                &host,
                port,
                mx,
                client.families,
                client.mx_address_limit,
                dnssec,
            )
            .await;
            let mut fallback_error = None;
            match first {
                Ok(hosts) => out.extend(hosts.into_iter().map(Candidate::Inet)),
                Err(e) if client.fallback_relay.is_empty() => {
                    if e.no_mx_address {
                        log.tagged_warning(
                            &client.log_tag,
                            &format!("no MX host for {host} has a valid address record"),
                        );
                    }
                    let mut f = HostFailed::soft(e.dsn, e.why);
                    f.permanent = e.dsn.starts_with('5');
                    return Err(f);
                }
                Err(e) => fallback_error = Some(e),
            }
            for relay in &client.fallback_relay {
                if let Ok(Target::Inet { host, port, mx }) =
                    nexthop::parse(relay, false, client.default_port, &s.queue_directory)
                    && let Ok(hosts) = nexthop::hosts(
                        &s.clients.dns,
                        &host,
                        port,
                        mx,
                        client.families,
                        client.mx_address_limit,
                        dnssec,
                    )
                    .await
                {
                    out.extend(hosts.into_iter().map(Candidate::Inet));
                }
            }
            if out.is_empty()
                && let Some(e) = fallback_error
            {
                return Err(HostFailed::soft(e.dsn, e.why));
            }
        }
    }
    Ok(out)
}

enum Candidate {
    Unix(std::path::PathBuf),
    Inet(Host),
}

/// Connects, reads the greeting, says EHLO (LHLO), and starts TLS and
/// authenticates as the settings ask.
async fn open(
    s: &Settings,
    client: &Client,
    target: &Candidate,
    message: &Message<'_>,
    nexthop: &str,
    tls: &TlsPolicy,
    log: &crate::log::Log,
) -> Result<Conn, HostFailed> {
    let t = &client.timeouts;
    let (stream, peer): (Box<dyn Stream>, Peer) = match target {
        Candidate::Unix(path) => {
            let peer = Peer {
                name: s.myhostname.clone(),
                addr: path.display().to_string(),
                port: None,
            };
            match tokio::time::timeout(t.connect, UnixStream::connect(path)).await {
                Ok(Ok(st)) => (Box::new(st), peer),
                Ok(Err(e)) => {
                    return Err(HostFailed::soft(
                        "4.4.1",
                        format!("connect to {}: {}", peer.named(), io_text(&e)),
                    ));
                }
                Err(_) => {
                    return Err(HostFailed::soft(
                        "4.4.1",
                        format!("connect to {}: Connection timed out", peer.named()),
                    ));
                }
            }
        }
        Candidate::Inet(host) => {
            let peer = Peer {
                name: host.name.clone(),
                addr: host.addr.to_string(),
                port: Some(host.port),
            };
            let addr = std::net::SocketAddr::new(host.addr, host.port);
            let connect = async {
                let socket = if addr.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                if let Some(bind) = client.bind_address {
                    socket.bind(std::net::SocketAddr::new(bind, 0))?;
                }
                let st = socket.connect(addr).await?;
                st.set_nodelay(true)?;
                Ok::<_, std::io::Error>(st)
            };
            match tokio::time::timeout(t.connect, connect).await {
                Ok(Ok(st)) => (Box::new(st), peer),
                Ok(Err(e)) => {
                    return Err(HostFailed::soft(
                        "4.4.1",
                        format!("connect to {}: {}", peer.relay(), io_text(&e)),
                    ));
                }
                Err(_) => {
                    return Err(HostFailed::soft(
                        "4.4.1",
                        format!("connect to {}: Connection timed out", peer.relay()),
                    ));
                }
            }
        }
    };
    let relay = peer.relay();
    match setup(client, Conn::new(stream, peer), message, nexthop, tls, log).await {
        Ok(conn) => Ok(conn),
        Err((mut f, conn)) => {
            if let Some(conn) = conn {
                quit(conn, client).await;
            }
            f.relay = Some(relay);
            Err(f)
        }
    }
}

/// A connection's start: the greeting, EHLO, STARTTLS, AUTH. A failure
/// comes with the connection when the server still listens.
async fn setup(
    client: &Client,
    mut conn: Conn,
    message: &Message<'_>,
    nexthop: &str,
    tls: &TlsPolicy,
    log: &crate::log::Log,
) -> Result<Conn, (HostFailed, Option<Conn>)> {
    // `?` for failures that leave the connection open (or not).
    macro_rules! check {
        ($e:expr, $conn:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) if f.alive => return Err((f, Some($conn))),
                Err(f) => return Err((f, None)),
            }
        };
    }
    let t = &client.timeouts;
    let greeting = conn
        .reply(t.helo, "receiving the initial server greeting")
        .await
        .map_err(|b| (broken(b, &conn), None))?;
    if greeting.code / 100 != 2 {
        // smtp_skip_5xx_greeting: a 5xx greeting is this host's problem;
        // the mail waits (or goes to the next host).
        let permanent = greeting.code >= 500 && !client.skip_5xx_greeting;
        let mut dsn = status_code(&greeting, "4.0.0");
        if !permanent {
            dsn.replace_range(..1, "4");
        }
        let mut f = HostFailed::soft(
            &dsn,
            format!(
                "host {} refused to talk to me: {}",
                conn.peer.named(),
                one_line(&greeting)
            ),
        );
        f.permanent = permanent;
        return Err((f, Some(conn)));
    }
    let mut ext = check!(hello(client, &mut conn).await, conn);
    // STARTTLS, as the level (or the policy table, or DANE) asks.
    let level = tls.level;
    if level > Level::None {
        if ext.starttls {
            match check!(starttls_command(client, &mut conn).await, conn) {
                // Opportunistic TLS: a server that will not start it
                // gets the mail in plaintext.
                Some(_) if level == Level::May => {}
                Some(refused) => return Err((refused, Some(conn))),
                None => {
                    conn = starttls(client, conn, tls, nexthop, log)
                        .await
                        .map_err(|mut f| {
                            // A failed handshake at `may`: the same host
                            // again, without TLS (Postfix's fallback).
                            f.retry_plain = level == Level::May;
                            (f, None)
                        })?;
                    ext = check!(hello(client, &mut conn).await, conn);
                }
            }
        } else if level >= Level::Encrypt {
            let f = HostFailed::soft(
                "4.7.4",
                format!(
                    "TLS is required, but was not offered by host {}",
                    conn.peer.named()
                ),
            );
            return Err((f, Some(conn)));
        }
    }
    if client.sasl_enable {
        check!(
            authenticate(client, &mut conn, &ext, message, nexthop).await,
            conn
        );
    }
    conn.ext = ext;
    Ok(conn)
}

/// EHLO (or LHLO), falling back to HELO when EHLO is refused (SMTP).
async fn hello(client: &Client, conn: &mut Conn) -> Result<Extensions, HostFailed> {
    let verb = if client.lmtp { "LHLO" } else { "EHLO" };
    let r = greet(client, conn, verb, "performing the EHLO handshake").await?;
    if r.code / 100 == 2 {
        return Ok(Extensions::parse(&r));
    }
    if client.lmtp || r.code / 100 == 4 {
        return Err(refused(conn, &r, verb));
    }
    let r = greet(client, conn, "HELO", "performing the HELO handshake").await?;
    if r.code / 100 == 2 {
        return Ok(Extensions::default());
    }
    Err(refused(conn, &r, "HELO"))
}

/// `VERB helo_name` and its reply.
async fn greet(
    client: &Client,
    conn: &mut Conn,
    verb: &str,
    stage: &'static str,
) -> Result<Reply, HostFailed> {
    let t = client.timeouts.helo;
    conn.send(
        format!("{verb} {}\r\n", client.helo_name).as_bytes(),
        t,
        stage,
    )
    .await
    .map_err(|b| broken(b, conn))?;
    conn.reply(t, stage).await.map_err(|b| broken(b, conn))
}

/// A reply that ends the session with this host.
fn refused(conn: &Conn, r: &Reply, command: &str) -> HostFailed {
    HostFailed {
        dsn: status_code(r, "5.0.0"),
        why: format!(
            "host {} said: {} (in reply to {command} command)",
            conn.peer.named(),
            one_line(r)
        ),
        remote: Some((conn.peer.name.clone(), one_line(r))),
        permanent: false,
        alive: true,
        relay: None,
        retry_plain: false,
    }
}

/// The TLS level for a next hop: smtp_tls_policy_maps over the
/// transport's level, looked up by the next hop as written (`[host]:port`,
/// `[host]`, `domain`), then `[host]` without the port, then the parent
/// domains as `.domain`.
fn tls_level(client: &Client, nexthop: &str) -> Result<Level, (&'static str, String)> {
    if client.tls_policy_maps.is_empty() {
        return Ok(client.tls_level);
    }
    let hop = nexthop.trim().to_ascii_lowercase();
    let mut keys = vec![hop.clone()];
    if let Some(rest) = hop.strip_prefix('[')
        && let Some((host, port)) = rest.split_once(']')
        && !port.is_empty()
    {
        keys.push(format!("[{host}]"));
    } else if !hop.starts_with('[') {
        let domain = hop.split(':').next().unwrap_or(&hop);
        let mut parent = domain;
        while let Some((_, up)) = parent.split_once('.') {
            keys.push(format!(".{up}"));
            parent = up;
        }
    }
    for k in keys {
        match client.tls_policy_maps.find(&k, true) {
            Ok(Some(v)) => {
                let word = v.split_whitespace().next().unwrap_or("");
                return Level::parse(word)
                    .map(|(l, _)| l)
                    .map_err(|e| ("4.7.5", format!("TLS policy lookup for {k}: {e}")));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(("4.3.0", format!("TLS policy lookup for {k}: {e}")));
            }
        }
    }
    Ok(client.tls_level)
}

/// The TLS a connection must have.
struct TlsPolicy {
    /// What is in force: never `DaneOnly`; `Dane` means the server's
    /// certificates must match `tlsa`.
    level: Level,
    tlsa: Vec<dane::Tlsa>,
    /// DANE in force for a host an insecure MX lookup named: its key is
    /// what DNS says, but DNS could not say that it is the right host
    /// (the log says `Trusted`, not `Verified`).
    insecure_mx: bool,
}

impl TlsPolicy {
    fn at(level: Level) -> TlsPolicy {
        TlsPolicy {
            level,
            tlsa: Vec::new(),
            insecure_mx: false,
        }
    }
}

/// The TLS for a connection to `target` under the `configured` level,
/// with DANE decided for the host (RFC 7672 section 2.2): its TLSA
/// records when its address (and the MX records that named it) were
/// secure. At `dane` what is missing falls back: no secure TLSA records,
/// `may`; records none of which is usable, `encrypt`. At `dane-only`
/// nothing falls back: the mail waits. A failed TLSA lookup means no
/// connection to this host now, at either level. Reasons and warnings
/// in Postfix's words.
async fn tls_policy(
    s: &Settings,
    client: &Client,
    configured: Level,
    nexthop: &str,
    target: &Candidate,
    log: &crate::log::Log,
) -> Result<TlsPolicy, HostFailed> {
    if !matches!(configured, Level::Dane | Level::DaneOnly) {
        return Ok(TlsPolicy::at(configured));
    }
    let warn = |text: &str| log.tagged_warning(&client.log_tag, text);
    let host_name = match target {
        Candidate::Inet(host) => host.name.clone(),
        Candidate::Unix(path) => path.display().to_string(),
    };
    match dane_policy(s, client, configured == Level::DaneOnly, target, &warn).await {
        Ok(policy) => Ok(policy),
        Err(why) => {
            warn(&format!(
                "TLS policy lookup for {}/{host_name}: {why}",
                nexthop_domain(nexthop)
            ));
            Err(HostFailed::soft("4.7.5", why))
        }
    }
}

/// [`tls_policy`] at `dane` (`only` false) or `dane-only`: the policy,
/// or why there is none.
async fn dane_policy(
    s: &Settings,
    client: &Client,
    only: bool,
    target: &Candidate,
    warn: &dyn Fn(&str),
) -> Result<TlsPolicy, String> {
    // What `dane` falls back to, or why `dane-only` does not deliver.
    let fall_back = |level, why: &str| {
        if only {
            Err(why.to_string())
        } else {
            Ok(TlsPolicy::at(level))
        }
    };
    let dns = &s.clients.dns;
    let host = match target {
        Candidate::Inet(host) if client.dnssec && dns.has_mx() => host,
        _ => return fall_back(Level::May, "client TLS configuration problem"),
    };
    let insecure_mx = !host.secure_mx;
    let found = if !host.secure_address {
        Ok(dane::Policy::Absent)
    } else if insecure_mx && only {
        return Err("non DNSSEC destination".into());
    } else if insecure_mx && client.dane_insecure_mx != InsecureMx::Dane {
        let level = match client.dane_insecure_mx {
            InsecureMx::Encrypt => Level::Encrypt,
            _ => Level::May,
        };
        return Ok(TlsPolicy::at(level));
    } else {
        dane::lookup(dns, &host.name, host.port, warn).await
    };
    if let Some(reason) = dns.dnssec_probe().await {
        warn("DNSSEC validation may be unavailable");
        warn(&format!("reason: {reason}"));
    }
    match found {
        Ok(dane::Policy::Records(tlsa)) => Ok(TlsPolicy {
            level: Level::Dane,
            tlsa,
            insecure_mx,
        }),
        Ok(dane::Policy::Unusable) => fall_back(Level::Encrypt, "TLSA records unusable"),
        Ok(dane::Policy::Absent) => fall_back(Level::May, "no TLSA records found"),
        Err(failed) => {
            if let dns::Failed::Temporary(_) = failed {
                warn(&format!("DANE TLSA lookup problem: {}", failed.explained()));
            }
            Err(format!("TLSA lookup error for {}:{}", host.name, host.port))
        }
    }
}

/// The name a certificate must have: the MX host's at `verify`, the
/// next-hop domain's at `secure` (DNS is not trusted for it).
fn certificate_name(level: Level, peer: &Peer, nexthop: &str) -> String {
    if level == Level::Secure {
        return nexthop_domain(nexthop);
    }
    peer.name.clone()
}

/// The domain or host of a next hop (`[host]:port` → `host`).
fn nexthop_domain(nexthop: &str) -> String {
    let hop = nexthop.trim().trim_start_matches('[');
    hop.split([']', ':']).next().unwrap_or(hop).to_string()
}

/// STARTTLS and the handshake.
/// The STARTTLS command: `Ok(None)` when the server said yes, `Ok(Some(
/// refusal))` when it did not (a session that may go on in plaintext).
async fn starttls_command(
    client: &Client,
    conn: &mut Conn,
) -> Result<Option<HostFailed>, HostFailed> {
    let t = client.timeouts.starttls;
    conn.send(b"STARTTLS\r\n", t, "sending STARTTLS")
        .await
        .map_err(|b| broken(b, conn))?;
    let r = conn
        .reply(t, "receiving the STARTTLS response")
        .await
        .map_err(|b| broken(b, conn))?;
    if r.code == 220 {
        return Ok(None);
    }
    Ok(Some(
        HostFailed::soft(
            "4.7.5",
            format!(
                "TLS is required, but host {} refused to start TLS: {}",
                conn.peer.named(),
                one_line(&r)
            ),
        )
        .alive(),
    ))
}

/// The TLS handshake after the server's 220 to STARTTLS.
async fn starttls(
    client: &Client,
    conn: Conn,
    tls: &TlsPolicy,
    nexthop: &str,
    log: &crate::log::Log,
) -> Result<Conn, HostFailed> {
    let level = tls.level;
    let t = client.timeouts.starttls;
    if conn.has_buffered() {
        // Bytes after the 220 were sent before TLS: nothing the server
        // says in plaintext may be read as if it came under TLS.
        return Err(HostFailed::soft(
            "4.7.5",
            format!("host {} sent data after STARTTLS reply", conn.peer.named()),
        ));
    }
    let (stream, peer) = conn.into_stream();
    let name = rustls::pki_types::ServerName::try_from(certificate_name(level, &peer, nexthop))
        .or_else(|_| rustls::pki_types::ServerName::try_from(peer.addr.clone()))
        .unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("localhost").expect("valid"));
    let config = match level {
        Level::Dane => client.tls.dane.clone(),
        _ if level.verifies() => client.tls.checked.clone(),
        Level::Encrypt => client.tls.encrypt.clone(),
        _ => client.tls.any.clone(),
    };
    let connector = tokio_rustls::TlsConnector::from(config);
    let handshake = tokio::time::timeout(t, connector.connect(name.clone(), stream)).await;
    let tls_stream = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let why = if level.verifies() {
                format!("Server certificate not verified: {e}")
            } else {
                format!("Cannot start TLS: handshake failure: {e}")
            };
            return Err(HostFailed::soft("4.7.5", why));
        }
        Err(_) => {
            return Err(HostFailed::soft(
                "4.7.5",
                format!(
                    "conversation with {} timed out while performing the TLS handshake",
                    peer.named()
                ),
            ));
        }
    };
    let (_, session) = tls_stream.get_ref();
    let mut unverified = false;
    let trust = if level == Level::Dane {
        let chain = session.peer_certificates().unwrap_or_default();
        let host = peer.name.clone();
        let domain = nexthop_domain(nexthop);
        let names = [host.as_str(), domain.as_str()];
        match dane::verify(chain, &tls.tlsa, &names, client.tls.algorithms()) {
            Ok(()) if tls.insecure_mx => "Trusted",
            Ok(()) => "Verified",
            Err(why) => {
                log.tagged(
                    &client.log_tag,
                    &format!(
                        "server certificate verification failed for {}: {why}",
                        peer.relay()
                    ),
                );
                unverified = true;
                "Untrusted"
            }
        }
    } else {
        client.tls.trust(session, &name)
    };
    let server_cert = session.peer_certificates().and_then(|c| c.first());
    let described = super::tls::describe(session, server_cert.map(|c| c.as_ref()));
    log.tagged(
        &client.log_tag,
        &format!(
            "{trust} TLS connection established to {}: {described}",
            peer.relay()
        ),
    );
    if unverified {
        // Nothing goes over a connection whose key DNS did not vouch for.
        return Err(HostFailed::soft(
            "4.7.5",
            "Server certificate not verified".into(),
        ));
    }
    let mut conn = Conn::new(Box::new(tls_stream), peer);
    conn.tls = Some(described);
    Ok(conn)
}

/// AUTH with the password smtp_sasl_password_maps has for this server
/// (or sender); no entry, no authentication.
async fn authenticate(
    client: &Client,
    conn: &mut Conn,
    ext: &Extensions,
    message: &Message<'_>,
    nexthop: &str,
) -> Result<(), HostFailed> {
    let mut keys = Vec::new();
    if client.sender_dependent_authentication && !message.sender.is_empty() {
        keys.push(message.sender.to_ascii_lowercase());
        if let Some((_, d)) = message.sender.rsplit_once('@') {
            keys.push(format!("@{}", d.to_ascii_lowercase()));
        }
    }
    // The server's host name, then the next hop as written (SASL_README).
    keys.push(conn.peer.name.to_ascii_lowercase());
    keys.push(nexthop.trim().to_ascii_lowercase());
    let mut found = None;
    for k in &keys {
        match client.sasl_password_maps.find(k, true) {
            Ok(Some(v)) => {
                found = Some(v);
                break;
            }
            Ok(None) => {}
            Err(e) => {
                return Err(HostFailed::soft(
                    "4.3.0",
                    format!("smtp_sasl_password_maps lookup for {k}: {e}"),
                ));
            }
        }
    }
    let Some(found) = found else {
        return Ok(());
    };
    if ext.auth.is_empty() {
        // Postfix goes on without AUTH when the server offers none.
        return Ok(());
    }
    let (user, password) = sasl::credentials(&found);
    let security = if conn.tls.is_some() {
        client.sasl_tls_security
    } else {
        client.sasl_security
    };
    let Some(mechanism) = sasl::choose(&ext.auth, &client.sasl_mechanism_filter, security) else {
        return Err(HostFailed::soft(
            "4.7.0",
            format!(
                "SASL authentication failed; cannot authenticate to server {}: no mechanism available",
                conn.peer.named()
            ),
        )
        .alive());
    };
    let t = client.timeouts.helo;
    conn.send(
        sasl::start(mechanism, &user, &password).as_bytes(),
        t,
        "sending AUTH",
    )
    .await
    .map_err(|b| broken(b, conn))?;
    let mut step = 0;
    loop {
        // A server that keeps challenging is not authenticating anyone.
        if step > 4 {
            return Err(HostFailed::soft(
                "4.7.0",
                format!(
                    "SASL authentication failed; server {} keeps challenging",
                    conn.peer.named()
                ),
            )
            .alive());
        }
        let r = conn
            .reply(t, "receiving the AUTH response")
            .await
            .map_err(|b| broken(b, conn))?;
        match r.code {
            235 => return Ok(()),
            334 => {
                let challenge = r.lines.first().map(String::as_str).unwrap_or("");
                let Some(a) = sasl::answer(mechanism, step, challenge, &user, &password) else {
                    step += 1;
                    conn.send(b"*\r\n", t, "sending AUTH")
                        .await
                        .map_err(|b| broken(b, conn))?;
                    continue;
                };
                step += 1;
                conn.send(a.as_bytes(), t, "sending AUTH")
                    .await
                    .map_err(|b| broken(b, conn))?;
            }
            _ => {
                let dsn = status_code(&r, "4.7.0");
                // smtp_sasl_auth_soft_bounce: a refusal is for now.
                let dsn = format!("4{}", &dsn[1..]);
                return Err(HostFailed::soft(
                    &dsn,
                    format!(
                        "SASL authentication failed; server {} said: {}",
                        conn.peer.named(),
                        one_line(&r)
                    ),
                )
                .alive());
            }
        }
    }
}

/// smtp_generic_maps: the envelope and header addresses of outgoing
/// mail rewritten (generic(5)); the content is rewritten only when a
/// header address changes.
struct Generic {
    sender: String,
    body: Option<Vec<u8>>,
}

impl Generic {
    fn new(s: &Settings, client: &Client, message: &Message<'_>) -> Generic {
        if client.generic_maps.is_empty() {
            return Generic {
                sender: message.sender.to_string(),
                body: None,
            };
        }
        let map = |a: &str| -> Option<String> {
            match crate::rewrite::map_address(s, &client.generic_maps, a, true) {
                Ok(Some(v)) => v.into_iter().next(),
                _ => None,
            }
        };
        let sender = if message.sender.is_empty() {
            String::new()
        } else {
            map(message.sender).unwrap_or_else(|| message.sender.to_string())
        };
        Generic {
            sender,
            body: crate::cleanup::rewrite_header_addresses(message.body, &map),
        }
    }

    fn recipient(&self, s: &Settings, client: &Client, address: &str) -> String {
        if client.generic_maps.is_empty() {
            return address.to_string();
        }
        match crate::rewrite::map_address(s, &client.generic_maps, address, true) {
            Ok(Some(v)) => v.into_iter().next().unwrap_or_else(|| address.to_string()),
            _ => address.to_string(),
        }
    }
}

/// One mail transaction. `Ok(true)`: the connection may carry another.
/// `Err`: the session with this host ended before the recipients were
/// settled (the next host may take the pending ones).
async fn transaction(
    s: &Settings,
    client: &Client,
    conn: &mut Conn,
    message: &Message<'_>,
    generic: &Generic,
    recipients: &[Rcpt<'_>],
    states: &mut [State],
) -> Result<bool, HostFailed> {
    let t = &client.timeouts;
    let ext = conn.ext.clone();
    let body = generic.body.as_deref().unwrap_or(message.body);
    // 8-bit mail to a server without 8BITMIME: MIME parts made
    // quoted-printable; the size is then unknown, so no SIZE= (as
    // Postfix).
    let seven_bit_only = message.eight_bit && !ext.eight_bit_mime;
    let downgraded = seven_bit_only
        .then(|| rostfix_message::mime::downgrade(body))
        .flatten();
    let body = downgraded.as_deref().unwrap_or(body);
    // SIZE: the message as queued, with CRLF line ends (before
    // smtp_generic_maps, as Postfix measures it).
    let size = (message.body.len() + message.body.iter().filter(|&&b| b == b'\n').count()) as u64;
    let named = conn.peer.named();
    if let Some(limit) = ext.size
        && limit > 0
        && size > limit
    {
        let why = format!("message size {size} exceeds size limit {limit} of server {named}");
        for st in states.iter_mut() {
            if matches!(st, State::Pending) {
                *st = State::Done(Err(Failure::Bounce("5.3.4".into(), why.clone())));
            }
        }
        return Ok(true);
    }
    // The commands, in order.
    let mut mail = format!("MAIL FROM:<{}>", generic.sender);
    if ext.size.is_some() && !seven_bit_only {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if ext.eight_bit_mime && message.eight_bit {
        mail.push_str(" BODY=8BITMIME");
    }
    let utf8 = !message.sender.is_ascii() || recipients.iter().any(|r| !r.address.is_ascii());
    if utf8 && ext.smtputf8 {
        mail.push_str(" SMTPUTF8");
    } else if utf8 {
        // RFC 6531: UTF-8 addresses go only to a server that takes them.
        let why = format!("SMTPUTF8 is required, but was not offered by host {named}");
        for st in states.iter_mut() {
            if matches!(st, State::Pending) {
                *st = State::Done(Err(Failure::Bounce("5.6.7".into(), why.clone())));
            }
        }
        return Ok(true);
    }
    if ext.dsn {
        if let Some(envid) = message.envid.filter(|e| !e.is_empty()) {
            mail.push_str(&format!(" ENVID={}", encode_xtext(envid)));
        }
        if let Some(ret) = message.ret.filter(|r| !r.is_empty()) {
            mail.push_str(&format!(" RET={}", ret.to_ascii_uppercase()));
        }
    }
    mail.push_str("\r\n");
    let pending: Vec<usize> = (0..recipients.len())
        .filter(|&i| matches!(states[i], State::Pending))
        .collect();
    let mut rcpts = Vec::with_capacity(pending.len());
    for &i in &pending {
        let r = &recipients[i];
        let mut line = format!("RCPT TO:<{}>", generic.recipient(s, client, r.address));
        if ext.dsn {
            if !r.dsn.orcpt.is_empty() {
                let (kind, addr) = r
                    .dsn
                    .orcpt
                    .split_once(';')
                    .unwrap_or(("rfc822", &r.dsn.orcpt));
                line.push_str(&format!(" ORCPT={kind};{}", encode_xtext(addr)));
            }
            if !r.dsn.notify.is_empty() {
                line.push_str(&format!(" NOTIFY={}", r.dsn.notify.to_ascii_uppercase()));
            }
        }
        line.push_str("\r\n");
        rcpts.push(line);
    }
    let said = |r: &Reply, command: &str| {
        format!(
            "host {named} said: {} (in reply to {command} command)",
            one_line(r)
        )
    };
    let remote = |r: &Reply, default: &str, why: String, conn: &Conn| Failure::Remote {
        dsn: status_code(r, default),
        why,
        mta: conn.peer.name.clone(),
        reply: one_line(r),
    };
    // MAIL, RCPT... and DATA in one write when the server pipelines;
    // else each waits for its reply.
    let replies = if ext.pipelining {
        let mut all = mail.clone().into_bytes();
        for r in &rcpts {
            all.extend_from_slice(r.as_bytes());
        }
        all.extend_from_slice(b"DATA\r\n");
        conn.send(&all, t.mail, "sending MAIL FROM")
            .await
            .map_err(|b| broken(b, conn))?;
        let mut replies = Vec::with_capacity(rcpts.len() + 2);
        replies.push(
            conn.reply(t.mail, "receiving the MAIL FROM response")
                .await
                .map_err(|b| broken(b, conn))?,
        );
        for _ in &rcpts {
            replies.push(
                conn.reply(t.rcpt, "receiving the RCPT TO response")
                    .await
                    .map_err(|b| broken(b, conn))?,
            );
        }
        replies.push(
            conn.reply(t.data_init, "receiving the DATA response")
                .await
                .map_err(|b| broken(b, conn))?,
        );
        replies
    } else {
        let mut replies = Vec::with_capacity(rcpts.len() + 2);
        conn.send(mail.as_bytes(), t.mail, "sending MAIL FROM")
            .await
            .map_err(|b| broken(b, conn))?;
        let r = conn
            .reply(t.mail, "receiving the MAIL FROM response")
            .await
            .map_err(|b| broken(b, conn))?;
        let ok = r.code / 100 == 2;
        replies.push(r);
        if ok {
            let mut accepted = 0;
            for line in &rcpts {
                conn.send(line.as_bytes(), t.rcpt, "sending RCPT TO")
                    .await
                    .map_err(|b| broken(b, conn))?;
                let r = conn
                    .reply(t.rcpt, "receiving the RCPT TO response")
                    .await
                    .map_err(|b| broken(b, conn))?;
                accepted += usize::from(r.code / 100 == 2);
                replies.push(r);
            }
            if accepted > 0 {
                conn.send(b"DATA\r\n", t.data_init, "sending DATA command")
                    .await
                    .map_err(|b| broken(b, conn))?;
                replies.push(
                    conn.reply(t.data_init, "receiving the DATA response")
                        .await
                        .map_err(|b| broken(b, conn))?,
                );
            }
        }
        replies
    };
    let mail_reply = &replies[0];
    if mail_reply.code / 100 != 2 {
        let why = said(mail_reply, "MAIL FROM");
        let failure = remote(mail_reply, "5.1.0", why, conn);
        settle_all(states, &pending, failure);
        if ext.pipelining && replies.last().is_some_and(|r| r.code == 354) {
            // A server that took DATA all the same waits for a message:
            // the connection is dropped, without a final dot.
            return Ok(false);
        }
        // RSET leaves the connection usable for the next message.
        return Ok(reset(client, conn).await);
    }
    let mut accepted = Vec::new();
    for (n, &i) in pending.iter().enumerate() {
        let Some(r) = replies.get(n + 1) else { break };
        if r.code / 100 == 2 {
            accepted.push(i);
        } else {
            let f = remote(r, "5.1.1", said(r, "RCPT TO"), conn);
            states[i] = if r.code / 100 == 4 {
                State::Soft(f)
            } else {
                State::Done(Err(f))
            };
        }
    }
    let data_reply = replies.get(pending.len() + 1);
    if accepted.is_empty() {
        if data_reply.is_some_and(|r| r.code == 354) {
            // Nothing to send, but the server waits for a message.
            conn.send(b".\r\n", t.data_done, "sending end of data")
                .await
                .map_err(|b| broken(b, conn))?;
            let _ = conn
                .reply(t.data_done, "receiving the end of data response")
                .await;
        }
        return Ok(reset(client, conn).await);
    }
    let Some(data_reply) = data_reply else {
        return Err(HostFailed::soft(
            "4.4.2",
            format!("lost connection with {named} while sending DATA command"),
        ));
    };
    if data_reply.code != 354 {
        let f = remote(data_reply, "5.0.0", said(data_reply, "DATA"), conn);
        let soft = data_reply.code / 100 == 4;
        for &i in &accepted {
            states[i] = if soft {
                State::Soft(f.clone())
            } else {
                State::Done(Err(f.clone()))
            };
        }
        return Ok(reset(client, conn).await);
    }
    let mut bytes = Vec::new();
    data_bytes(body, &mut bytes);
    // smtp_data_xfer_timeout limits each write, not the whole message:
    // a big message over a slow link is not a timeout while it moves.
    for chunk in bytes.chunks(64 * 1024) {
        conn.send(chunk, t.data_xfer, "sending message body")
            .await
            .map_err(|b| broken(b, conn))?;
    }
    // One reply for the message (SMTP), or one per accepted recipient
    // (LMTP).
    let replies_due = if client.lmtp { accepted.len() } else { 1 };
    for n in 0..replies_due {
        let r = match conn
            .reply(
                t.data_done,
                "sending end of data -- message may be sent more than once",
            )
            .await
        {
            Ok(r) => r,
            Err(b) => {
                // What was not answered is settled by the next attempt.
                return Err(broken(b, conn));
            }
        };
        let targets: Vec<usize> = if client.lmtp {
            vec![accepted[n]]
        } else {
            accepted.clone()
        };
        for i in targets {
            states[i] = if r.code / 100 == 2 {
                State::Done(Ok(one_line(&r)))
            } else {
                let f = remote(&r, "5.0.0", said(&r, "end of DATA"), conn);
                if r.code / 100 == 4 {
                    State::Soft(f)
                } else {
                    State::Done(Err(f))
                }
            };
        }
    }
    Ok(true)
}

/// Every pending recipient fails the same way.
fn settle_all(states: &mut [State], pending: &[usize], f: Failure) {
    let soft = f.is_temporary();
    for &i in pending {
        states[i] = if soft {
            State::Soft(f.clone())
        } else {
            State::Done(Err(f.clone()))
        };
    }
}

/// RSET after a failed transaction: whether the connection is still
/// good for another.
async fn reset(client: &Client, conn: &mut Conn) -> bool {
    let t = client.timeouts.quit;
    if conn.send(b"RSET\r\n", t, "sending RSET").await.is_err() {
        return false;
    }
    matches!(conn.reply(t, "receiving the RSET response").await, Ok(r) if r.code / 100 == 2)
}

pub(super) async fn quit(conn: Conn, client: &Client) {
    quit_with(conn, client.timeouts.quit).await;
}

/// QUIT, without waiting for the reply (smtp_skip_quit_response).
pub(super) async fn quit_with(mut conn: Conn, timeout: Duration) {
    let _ = conn.send(b"QUIT\r\n", timeout, "sending QUIT").await;
}

fn io_text(e: &std::io::Error) -> String {
    rostfix_config::io_text(e)
}

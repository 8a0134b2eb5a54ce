//! SMTP AUTH for smtpd (RFC 4954): which mechanisms a session offers, and
//! the exchange with the authentication backend. `smtpd_sasl_type =
//! dovecot` talks Dovecot's authentication protocol (version 1) over the
//! UNIX socket smtpd_sasl_path names (relative paths are under the queue
//! directory: seed 004's `private/auth`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rostfix_config::{Config, ConfigError, value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// What a mechanism must not be (smtpd_sasl_security_options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Security {
    pub noplaintext: bool,
    pub noanonymous: bool,
}

impl Security {
    fn parse(list: &str) -> Security {
        let mut s = Security::default();
        for o in value::split_list(list) {
            match o.to_ascii_lowercase().as_str() {
                "noplaintext" => s.noplaintext = true,
                "noanonymous" => s.noanonymous = true,
                _ => {}
            }
        }
        s
    }

    fn allows(&self, flags: &[String]) -> bool {
        !(self.noplaintext && flags.iter().any(|f| f == "plaintext")
            || self.noanonymous && flags.iter().any(|f| f == "anonymous"))
    }
}

/// Where passwords are checked.
#[derive(Debug)]
enum Kind {
    /// Dovecot's auth socket.
    Dovecot(PathBuf),
    /// saslauthd's socket, and the realm it is told.
    Saslauthd { path: PathBuf, realm: String },
    /// A table of user names and stored passwords.
    Table(rostfix_maps::order::Maps),
}

/// A service's SASL settings.
#[derive(Debug)]
pub struct SaslServer {
    kind: Kind,
    /// smtpd_sasl_local_domain: the domain of user names given without
    /// one (the table is asked for both).
    local_domain: String,
    security: Security,
    tls_security: Security,
    /// smtpd_sasl_authenticated_header: `(Authenticated sender: user)`.
    pub authenticated_header: bool,
    /// broken_sasl_auth_clients: also the `AUTH=` EHLO line.
    pub broken_clients: bool,
    /// The mechanisms the backend offers, with their flags, as last asked.
    mechanisms: Mutex<Option<(Vec<Mechanism>, Instant)>>,
}

/// A mechanism the backend offers, with its flags (`plaintext`,
/// `anonymous`, ...).
type Mechanism = (String, Vec<String>);

/// How long the backend's list of mechanisms is believed.
const MECHANISMS_TTL: Duration = Duration::from_secs(60);
/// How long a backend may take to answer a line.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);

impl SaslServer {
    /// The SASL settings of a smtpd service, or `None` when AUTH is off.
    pub fn load(
        cf: &Config,
        queue_directory: &std::path::Path,
    ) -> Result<Option<Arc<SaslServer>>, String> {
        let e = |e: ConfigError| e.to_string();
        if !cf.bool("smtpd_sasl_auth_enable").map_err(e)? {
            return Ok(None);
        }
        let sasl_path = cf.string("smtpd_sasl_path").map_err(e)?;
        let local_domain = cf.string("smtpd_sasl_local_domain").map_err(e)?;
        let kind = match cf.string("smtpd_sasl_type").map_err(e)?.as_str() {
            "dovecot" => {
                let path = PathBuf::from(&sasl_path);
                Kind::Dovecot(if path.is_absolute() {
                    path
                } else {
                    queue_directory.join(path)
                })
            }
            "cyrus" => cyrus(cf, &sasl_path, &local_domain)?,
            "rostfix" => {
                let maps = crate::settings::maps(cf, "rostfix_sasl_password_maps")?;
                if maps.is_empty() {
                    return Err("smtpd_sasl_type = rostfix needs rostfix_sasl_password_maps".into());
                }
                Kind::Table(maps)
            }
            other => return Err(format!("smtpd_sasl_type: unknown type: {other}")),
        };
        Ok(Some(Arc::new(SaslServer {
            kind,
            local_domain,
            security: Security::parse(&cf.string("smtpd_sasl_security_options").map_err(e)?),
            tls_security: Security::parse(
                &cf.string("smtpd_sasl_tls_security_options").map_err(e)?,
            ),
            authenticated_header: cf.bool("smtpd_sasl_authenticated_header").map_err(e)?,
            broken_clients: cf.bool("broken_sasl_auth_clients").map_err(e)?,
            mechanisms: Mutex::default(),
        })))
    }

    /// The mechanisms to offer: the backend's, less those the security
    /// options (under TLS, the TLS ones) exclude. Empty when the backend
    /// cannot be reached (then AUTH is not offered).
    pub async fn mechanisms(&self, tls: bool) -> Vec<String> {
        let cached = self
            .mechanisms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(_, at)| at.elapsed() < MECHANISMS_TTL)
            .map(|(m, _)| m.clone());
        let all = match (cached, &self.kind) {
            (Some(m), _) => m,
            // Mechanisms that send the password itself, checked here.
            (None, Kind::Saslauthd { .. } | Kind::Table(_)) => ["PLAIN", "LOGIN"]
                .iter()
                .map(|m| (m.to_string(), vec!["plaintext".to_string()]))
                .collect(),
            (None, Kind::Dovecot(path)) => match Backend::connect(path).await {
                Ok(b) => {
                    *self
                        .mechanisms
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) =
                        Some((b.mechanisms.clone(), Instant::now()));
                    b.mechanisms
                }
                Err(_) => return Vec::new(),
            },
        };
        let security = if tls {
            self.tls_security
        } else {
            self.security
        };
        all.into_iter()
            .filter(|(_, flags)| security.allows(flags))
            .map(|(m, _)| m)
            .collect()
    }

    /// Starts an authentication with the backend.
    pub async fn start(
        &self,
        mechanism: &str,
        initial: Option<&str>,
        client: std::net::SocketAddr,
        local: Option<std::net::SocketAddr>,
        tls: bool,
    ) -> Result<Exchange<'_>, String> {
        let Kind::Dovecot(path) = &self.kind else {
            return Ok(Exchange::Here(Here {
                server: self,
                mechanism: mechanism.to_string(),
                response: initial.map(|r| {
                    if r == "=" {
                        String::new()
                    } else {
                        r.to_string()
                    }
                }),
                asked: 0,
                user: None,
            }));
        };
        let mut b = Backend::connect(path).await?;
        let mut line = format!("AUTH\t1\t{mechanism}\tservice=smtp\tnologin");
        if let Some(l) = local {
            line.push_str(&format!("\tlip={}", l.ip()));
        }
        line.push_str(&format!("\trip={}", client.ip()));
        if tls {
            line.push_str("\tsecured");
        }
        if let Some(r) = initial {
            // `=` is an empty initial response (RFC 4954 section 4).
            let r = if r == "=" { "" } else { r };
            line.push_str(&format!("\tresp={r}"));
        }
        line.push('\n');
        b.send(&line).await?;
        Ok(Exchange::Dovecot(b))
    }

    /// The name a user given as `name` is known by once authenticated (and
    /// logged as, when not): Cyrus SASL qualifies a bare name with its
    /// realm, smtpd_sasl_local_domain (observed with saslauthd -a sasldb).
    fn user_name(&self, name: &str) -> String {
        match &self.kind {
            Kind::Saslauthd { realm, .. } if !realm.is_empty() && !name.contains('@') => {
                format!("{name}@{realm}")
            }
            _ => name.to_string(),
        }
    }

    /// Checks a user's password (cyrus-saslauthd and rostfix types):
    /// `Err(detail)` when it does not match.
    async fn check(&self, user: &str, password: &str) -> Result<(), String> {
        match &self.kind {
            Kind::Saslauthd { path, realm } => saslauthd(path, user, password, realm).await,
            Kind::Table(maps) => {
                let mut keys = vec![user.to_string()];
                if !user.contains('@') && !self.local_domain.is_empty() {
                    keys.push(format!("{user}@{}", self.local_domain));
                }
                for k in keys {
                    match maps.find(&k, true) {
                        Ok(Some(stored)) => {
                            return if crate::sasl_password::verify(password, &stored) {
                                Ok(())
                            } else {
                                Err("Password verification failed".into())
                            };
                        }
                        Ok(None) => {}
                        Err(e) => return Err(format!("{}: {e}", maps.param)),
                    }
                }
                Err("Password verification failed".into())
            }
            Kind::Dovecot(_) => Err("not checked here".into()),
        }
    }
}

/// smtpd_sasl_type = cyrus: Cyrus SASL's application file (`smtpd.conf`,
/// after smtpd_sasl_path) in cyrus_sasl_config_path or the places Cyrus
/// and Debian's Postfix look; only `pwcheck_method: saslauthd` is done
/// here.
fn cyrus(cf: &Config, app: &str, realm: &str) -> Result<Kind, String> {
    let e = |e: ConfigError| e.to_string();
    let mut dirs: Vec<PathBuf> = cf
        .string("cyrus_sasl_config_path")
        .map_err(e)?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.push(cf.config_directory.join("sasl"));
    dirs.extend(["/etc/postfix/sasl", "/usr/lib/sasl2", "/etc/sasl2"].map(PathBuf::from));
    let file = dirs
        .iter()
        .map(|d| d.join(format!("{app}.conf")))
        .find(|f| f.is_file())
        .ok_or_else(|| {
            let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "smtpd_sasl_type = cyrus: no {app}.conf in {}",
                shown.join(", ")
            )
        })?;
    let text =
        std::fs::read_to_string(&file).map_err(|err| format!("{}: {err}", file.display()))?;
    let setting = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    match setting("pwcheck_method").as_deref() {
        Some("saslauthd") => Ok(Kind::Saslauthd {
            path: PathBuf::from(
                setting("saslauthd_path").unwrap_or_else(|| "/var/run/saslauthd/mux".into()),
            ),
            realm: realm.to_string(),
        }),
        other => Err(format!(
            "{}: pwcheck_method: {} is not supported (saslauthd is; or smtpd_sasl_type = dovecot or rostfix)",
            file.display(),
            other.unwrap_or("(none)")
        )),
    }
}

/// saslauthd's protocol: user, password, service and realm, each as a
/// length (two bytes, network order) and the bytes; the answer the same
/// way, `OK` or `NO reason`.
async fn saslauthd(
    path: &std::path::Path,
    user: &str,
    password: &str,
    realm: &str,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    for field in [user, password, "smtp", realm] {
        let len = u16::try_from(field.len()).map_err(|_| "credentials too long".to_string())?;
        request.extend_from_slice(&len.to_be_bytes());
        request.extend_from_slice(field.as_bytes());
    }
    let talk = async {
        let mut s = UnixStream::connect(path).await?;
        s.write_all(&request).await?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len)).min(1024)];
        s.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(BACKEND_TIMEOUT, talk).await {
        Ok(Ok(a)) if a.starts_with("OK") => Ok(()),
        Ok(Ok(_)) => Err("Password verification failed".into()),
        Ok(Err(err)) => Err(format!("cannot connect to saslauthd server: {err}")),
        Err(_) => Err("saslauthd: timed out".into()),
    }
}

/// What the backend said.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Authenticated as this user.
    Ok(String),
    /// A challenge for the client (base64, as it goes in the 334 reply).
    Continue(String),
    /// Refused: the reason (if the backend gave one), the user named, and
    /// what the checker said (logged as Cyrus logs it).
    Fail(Option<String>, Option<String>, Option<String>),
}

/// An authentication under way: with Dovecot, or here.
#[derive(Debug)]
pub enum Exchange<'a> {
    Dovecot(Backend),
    Here(Here<'a>),
}

/// PLAIN or LOGIN done here, the password checked by the server's kind.
#[derive(Debug)]
pub struct Here<'a> {
    server: &'a SaslServer,
    mechanism: String,
    /// The client's last answer (or initial response), not yet used.
    response: Option<String>,
    /// Challenges sent so far.
    asked: u8,
    user: Option<String>,
}

impl Exchange<'_> {
    /// The backend's next word.
    pub async fn next(&mut self) -> Result<Step, String> {
        match self {
            Exchange::Dovecot(backend) => {
                let line = backend.line().await?;
                parse_step(&line)
                    .ok_or_else(|| format!("unexpected reply from authentication server: {line}"))
            }
            Exchange::Here(h) => Ok(h.next().await),
        }
    }

    /// The client's answer to a challenge (base64).
    pub async fn answer(&mut self, response: &str) -> Result<(), String> {
        match self {
            Exchange::Dovecot(backend) => backend.send(&format!("CONT\t1\t{response}\n")).await,
            Exchange::Here(h) => {
                h.response = Some(response.to_string());
                Ok(())
            }
        }
    }
}

impl Here<'_> {
    async fn next(&mut self) -> Step {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let failed = |user: Option<String>, detail: &str| {
            Step::Fail(
                Some("authentication failure".into()),
                user,
                Some(detail.to_string()),
            )
        };
        let decode = |r: &str| {
            b64.decode(r.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        // A few challenges at most: a client that keeps answering
        // nonsense is not authenticating.
        if self.asked > 3 {
            return failed(self.user.clone(), "too many steps");
        }
        match (self.mechanism.as_str(), self.response.take()) {
            ("PLAIN", None) => {
                self.asked += 1;
                Step::Continue(String::new())
            }
            ("PLAIN", Some(r)) => {
                // authzid NUL authcid NUL password
                let Some(text) = decode(&r) else {
                    return failed(None, "malformed response");
                };
                let mut parts = text.split('\0');
                let (_authz, user, password) = (parts.next(), parts.next(), parts.next());
                let (Some(user), Some(password)) = (user, password) else {
                    return failed(None, "malformed response");
                };
                let name = self.server.user_name(user);
                match self.server.check(user, password).await {
                    Ok(()) => Step::Ok(name),
                    Err(detail) => failed(Some(name), &detail),
                }
            }
            ("LOGIN", None) => {
                self.asked += 1;
                let prompt = if self.user.is_none() {
                    "Username:"
                } else {
                    "Password:"
                };
                Step::Continue(b64.encode(prompt))
            }
            ("LOGIN", Some(r)) => {
                let Some(text) = decode(&r) else {
                    return failed(self.user.clone(), "malformed response");
                };
                match self.user.clone() {
                    None => {
                        self.user = Some(text);
                        self.asked += 1;
                        Step::Continue(b64.encode("Password:"))
                    }
                    Some(user) => {
                        let name = self.server.user_name(&user);
                        match self.server.check(&user, &text).await {
                            Ok(()) => Step::Ok(name),
                            Err(detail) => failed(Some(name), &detail),
                        }
                    }
                }
            }
            _ => failed(None, "mechanism not available"),
        }
    }
}

fn parse_step(line: &str) -> Option<Step> {
    let mut f = line.split('\t');
    let verb = f.next()?;
    let _id = f.next()?;
    let rest: Vec<&str> = f.collect();
    let field = |name: &str| {
        rest.iter()
            .find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
    };
    Some(match verb {
        "OK" => Step::Ok(field("user").unwrap_or_default()),
        "CONT" => Step::Continue(rest.first().map_or(String::new(), |c| c.to_string())),
        "FAIL" => Step::Fail(field("reason"), field("user"), None),
        _ => return None,
    })
}

/// A connection to Dovecot's auth socket, past the handshake.
#[derive(Debug)]
pub struct Backend {
    io: BufReader<UnixStream>,
    mechanisms: Vec<Mechanism>,
}

impl Backend {
    async fn connect(path: &std::path::Path) -> Result<Backend, String> {
        let s = tokio::time::timeout(BACKEND_TIMEOUT, UnixStream::connect(path))
            .await
            .map_err(|_| format!("connect to {}: timed out", path.display()))?
            .map_err(|e| {
                format!(
                    "connect to {}: {}",
                    path.display(),
                    rostfix_config::io_text(&e)
                )
            })?;
        let mut b = Backend {
            io: BufReader::new(s),
            mechanisms: Vec::new(),
        };
        b.send(&format!("VERSION\t1\t1\nCPID\t{}\n", std::process::id()))
            .await?;
        loop {
            let line = b.line().await?;
            let mut f = line.split('\t');
            match f.next() {
                Some("VERSION") if f.next() != Some("1") => {
                    return Err(format!("authentication server protocol version: {line}"));
                }
                Some("MECH") => {
                    if let Some(m) = f.next() {
                        b.mechanisms
                            .push((m.to_ascii_uppercase(), f.map(str::to_string).collect()));
                    }
                }
                Some("DONE") => return Ok(b),
                _ => {}
            }
        }
    }

    async fn send(&mut self, text: &str) -> Result<(), String> {
        let w = self.io.get_mut();
        tokio::time::timeout(BACKEND_TIMEOUT, w.write_all(text.as_bytes()))
            .await
            .map_err(|_| "authentication server: timed out".to_string())?
            .map_err(|e| format!("authentication server: {e}"))
    }

    /// One line, at most 64 KiB (a hostile backend is not expected, but
    /// nothing is read without a bound).
    async fn line(&mut self) -> Result<String, String> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut limited = (&mut self.io).take(65536);
        let read = limited.read_until(b'\n', &mut buf);
        match tokio::time::timeout(BACKEND_TIMEOUT, read).await {
            Err(_) => Err("authentication server: timed out".into()),
            Ok(Err(e)) => Err(format!("authentication server: {e}")),
            Ok(Ok(0)) => Err("authentication server: connection closed".into()),
            Ok(Ok(_)) => Ok(String::from_utf8_lossy(&buf).trim_end().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert_eq!(
            parse_step("OK\t1\tuser=alice"),
            Some(Step::Ok("alice".into()))
        );
        assert_eq!(
            parse_step("CONT\t1\tVXNlcm5hbWU6"),
            Some(Step::Continue("VXNlcm5hbWU6".into()))
        );
        assert_eq!(parse_step("CONT\t1\t"), Some(Step::Continue(String::new())));
        assert_eq!(
            parse_step("FAIL\t1\tuser=alice"),
            Some(Step::Fail(None, Some("alice".into()), None))
        );
        assert_eq!(
            parse_step("FAIL\t1\treason=Password expired\tuser=bob"),
            Some(Step::Fail(
                Some("Password expired".into()),
                Some("bob".into()),
                None
            ))
        );
        assert_eq!(parse_step("WHAT\t1"), None);
    }

    #[test]
    fn security_options() {
        let s = Security::parse("noanonymous, noplaintext");
        assert!(!s.allows(&["plaintext".into()]));
        assert!(s.allows(&["dictionary".into()]));
        let s = Security::parse("noanonymous");
        assert!(s.allows(&["plaintext".into()]) && !s.allows(&["anonymous".into()]));
    }
}

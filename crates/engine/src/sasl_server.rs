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

/// A service's SASL settings.
#[derive(Debug)]
pub struct SaslServer {
    /// The Dovecot auth socket.
    path: PathBuf,
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
        let kind = cf.string("smtpd_sasl_type").map_err(e)?;
        if kind != "dovecot" {
            return Err(format!(
                "smtpd_sasl_type: {kind} is not supported yet (dovecot is)"
            ));
        }
        let path = PathBuf::from(cf.string("smtpd_sasl_path").map_err(e)?);
        let path = if path.is_absolute() {
            path
        } else {
            queue_directory.join(path)
        };
        Ok(Some(Arc::new(SaslServer {
            path,
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
        let all = match cached {
            Some(m) => m,
            None => match Backend::connect(&self.path).await {
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
    ) -> Result<Exchange, String> {
        let mut b = Backend::connect(&self.path).await?;
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
        Ok(Exchange { backend: b })
    }
}

/// What the backend said.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Authenticated as this user.
    Ok(String),
    /// A challenge for the client (base64, as it goes in the 334 reply).
    Continue(String),
    /// Refused: the reason (if the backend gave one) and the user named.
    Fail(Option<String>, Option<String>),
}

/// An authentication under way.
#[derive(Debug)]
pub struct Exchange {
    backend: Backend,
}

impl Exchange {
    /// The backend's next word.
    pub async fn next(&mut self) -> Result<Step, String> {
        let line = self.backend.line().await?;
        parse_step(&line)
            .ok_or_else(|| format!("unexpected reply from authentication server: {line}"))
    }

    /// The client's answer to a challenge (base64).
    pub async fn answer(&mut self, response: &str) -> Result<(), String> {
        self.backend.send(&format!("CONT\t1\t{response}\n")).await
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
        "FAIL" => Step::Fail(field("reason"), field("user")),
        _ => return None,
    })
}

/// A connection to Dovecot's auth socket, past the handshake.
#[derive(Debug)]
struct Backend {
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
            Some(Step::Fail(None, Some("alice".into())))
        );
        assert_eq!(
            parse_step("FAIL\t1\treason=Password expired\tuser=bob"),
            Some(Step::Fail(
                Some("Password expired".into()),
                Some("bob".into())
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

//! TLS for smtpd (rustls): the certificate and key of a service, its
//! security level (STARTTLS offered, or required), implicit TLS
//! (smtpd_tls_wrappermode, port 465), and the byte stream a session
//! reads and writes, plain or under TLS.
//!
//! The key is read when the smtpd process starts, before it drops its
//! privileges (key files are root's), and again at every reload.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rostfix_config::{Config, ConfigError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// smtpd_tls_security_level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// STARTTLS offered.
    May,
    /// STARTTLS required before mail.
    Encrypt,
}

/// A service's TLS settings.
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub level: Level,
    /// smtpd_tls_wrappermode: TLS from the first byte.
    pub wrapper: bool,
    /// smtpd_tls_auth_only: AUTH only under TLS.
    pub auth_only: bool,
    /// smtpd_tls_received_header: the `(using TLSv1.3 ...)` comment.
    pub received_header: bool,
    /// smtpd_tls_loglevel: 1 and up log the session's TLS line.
    pub loglevel: u32,
    /// smtpd_starttls_timeout: the handshake's time limit.
    pub handshake_timeout: Duration,
    /// Our certificate, for the log's server-signature part.
    pub certificate: Vec<u8>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("level", &self.level)
            .field("wrapper", &self.wrapper)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The TLS settings of a smtpd service (its per-service view), or
    /// `None` when it offers no TLS. A level that needs TLS with a
    /// certificate or key that cannot be read is an error naming the file
    /// and the parameter.
    pub fn load(cf: &Config) -> Result<Option<Arc<ServerTls>>, String> {
        let e = |e: ConfigError| e.to_string();
        let text = |n: &str| cf.string(n).map_err(e);
        let wrapper = cf.bool("smtpd_tls_wrappermode").map_err(e)?;
        let mut level = text("smtpd_tls_security_level")?;
        if level.is_empty() {
            level = if cf.bool("smtpd_enforce_tls").map_err(e)? {
                "encrypt".into()
            } else if cf.bool("smtpd_use_tls").map_err(e)? {
                "may".into()
            } else {
                "none".into()
            };
        }
        let level = match level.to_ascii_lowercase().as_str() {
            "none" if !wrapper => return Ok(None),
            "none" | "may" => Level::May,
            "encrypt" => Level::Encrypt,
            other => return Err(format!("smtpd_tls_security_level: unknown level: {other}")),
        };
        let (certs, key) = match credentials(cf)? {
            Some(c) => c,
            None if level == Level::May && !wrapper => {
                eprintln!(
                    "warning: smtpd: no server certificate (smtpd_tls_cert_file): TLS is not offered"
                );
                return Ok(None);
            }
            None => {
                return Err(
                    "smtpd_tls_cert_file: no server certificate, but TLS is required".into(),
                );
            }
        };
        let protocols = crate::smtp::tls::protocol_versions(&text(if level == Level::Encrypt {
            "smtpd_tls_mandatory_protocols"
        } else {
            "smtpd_tls_protocols"
        })?)
        .map_err(|m| format!("smtpd_tls_protocols: {m}"))?;
        let certificate = certs.first().map(|c| c.to_vec()).unwrap_or_default();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&protocols)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("smtpd_tls_key_file: does not match smtpd_tls_cert_file: {e}"))?;
        Ok(Some(Arc::new(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            level,
            wrapper,
            auth_only: cf.bool("smtpd_tls_auth_only").map_err(e)?,
            received_header: cf.bool("smtpd_tls_received_header").map_err(e)?,
            loglevel: u32::try_from(cf.int("smtpd_tls_loglevel").map_err(e)?).unwrap_or(0),
            handshake_timeout: Duration::from_secs(
                cf.time("smtpd_starttls_timeout").map_err(e)?.max(1),
            ),
            certificate,
        })))
    }
}

type Credentials = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The certificate chain and key: smtpd_tls_chain_files (key first, then
/// the certificates, in one or more files), else smtpd_tls_cert_file and
/// smtpd_tls_key_file (which defaults to the cert file). `None` when
/// none is set.
fn credentials(cf: &Config) -> Result<Option<Credentials>, String> {
    let e = |e: ConfigError| e.to_string();
    let chain = rostfix_config::value::split_list(&cf.string("smtpd_tls_chain_files").map_err(e)?)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let (cert_files, key_file, param) = if !chain.is_empty() {
        (chain.clone(), chain[0].clone(), "smtpd_tls_chain_files")
    } else {
        let cert = cf.string("smtpd_tls_cert_file").map_err(e)?;
        if cert.is_empty() {
            return Ok(None);
        }
        let key = cf.string("smtpd_tls_key_file").map_err(e)?;
        let key = if key.is_empty() { cert.clone() } else { key };
        (vec![cert], key, "smtpd_tls_key_file")
    };
    let mut certs = Vec::new();
    for f in &cert_files {
        let found = CertificateDer::pem_file_iter(f)
            .map_err(|err| format!("smtpd_tls_cert_file: {f}: {}", pem_text(&err)))?;
        for c in found {
            certs.push(c.map_err(|err| format!("smtpd_tls_cert_file: {f}: {}", pem_text(&err)))?);
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "smtpd_tls_cert_file: {}: no certificate in the file",
            cert_files.join(", ")
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|err| format!("{param}: {key_file}: {}", pem_text(&err)))?;
    Ok(Some((certs, key)))
}

/// A PEM reading error as a person reads it.
fn pem_text(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => rostfix_config::io_text(io),
        rustls::pki_types::pem::Error::NoItemsFound => "no key or certificate found".into(),
        other => format!("{other:?}"),
    }
}

/// A session's connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// `TLSv1.3 with cipher ...`, once under TLS.
    pub fn describe(&self, certificate: &[u8]) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(crate::smtp::tls::describe(t.get_ref().1, Some(certificate))),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

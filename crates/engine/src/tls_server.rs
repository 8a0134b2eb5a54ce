//! TLS for smtpd (rustls): the certificate and key of a service, its
//! security level (STARTTLS offered, or required), implicit TLS
//! (smtpd_tls_wrappermode, port 465), and the byte stream a session
//! reads and writes, plain or under TLS.
//!
//! The key is read when the smtpd process starts, before it drops its
//! privileges (key files are root's), and again at every reload.
//!
//! With smtpd_tls_ask_ccert a client may present a certificate. Any that
//! parses completes the handshake (which proves the client holds its
//! key); it is Trusted when the CAs of smtpd_tls_CAfile/smtpd_tls_CApath
//! vouch for it (permit_tls_all_clientcerts, smtpd_tls_req_ccert), and
//! its fingerprint (smtpd_tls_fingerprint_digest) is what
//! relay_clientcerts and check_ccert_access look up either way.

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
    /// smtpd_tls_ask_ccert: a client certificate is asked for.
    pub ask_ccert: bool,
    /// smtpd_tls_req_ccert (under encrypt): a trusted one is required.
    pub req_ccert: bool,
    /// The CAs that make a client certificate trusted.
    roots: Vec<rustls::pki_types::TrustAnchor<'static>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    /// smtpd_tls_fingerprint_digest.
    pub fingerprint_digest: Digest,
}

/// A fingerprint digest (smtpd_tls_fingerprint_digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Md5,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn parse(name: &str) -> Result<Digest, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "md5" => Digest::Md5,
            "sha224" => Digest::Sha224,
            "sha256" => Digest::Sha256,
            "sha384" => Digest::Sha384,
            "sha512" => Digest::Sha512,
            other => {
                return Err(format!(
                    "smtpd_tls_fingerprint_digest: {other} is not supported (md5, sha224, sha256, sha384 and sha512 are)"
                ));
            }
        })
    }

    /// `AB:CD:...`, as Postfix writes fingerprints.
    pub fn fingerprint(self, der: &[u8]) -> String {
        use sha2::Digest as _;
        let sum: Vec<u8> = match self {
            Digest::Md5 => md5::Md5::digest(der).to_vec(),
            Digest::Sha224 => sha2::Sha224::digest(der).to_vec(),
            Digest::Sha256 => sha2::Sha256::digest(der).to_vec(),
            Digest::Sha384 => sha2::Sha384::digest(der).to_vec(),
            Digest::Sha512 => sha2::Sha512::digest(der).to_vec(),
        };
        sum.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A session's TLS, for the log, the Received header and the
/// restrictions.
#[derive(Debug, Clone)]
pub struct TlsSession {
    /// `TLSv1.3 with cipher ... server-digest SHA256`, and the client's
    /// signature when it presented a certificate.
    pub described: String,
    /// smtpd_tls_received_header: the Received header shows it.
    pub received_header: bool,
    /// A client certificate was asked for.
    pub asked: bool,
    pub client_cert: Option<ClientCert>,
}

/// What a client's certificate says, and its fingerprints.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The subject's and the issuer's CommonName.
    pub subject_cn: String,
    pub issuer_cn: String,
    /// The certificate's fingerprint, then its public key's: the keys
    /// relay_clientcerts and check_ccert_access are asked, in that order.
    pub fingerprints: [String; 2],
    /// A CA of smtpd_tls_CAfile/CApath vouches for it; else why not, in
    /// OpenSSL's words.
    pub trust: Result<(), &'static str>,
}

impl TlsSession {
    /// `Anonymous`; with a client certificate `Trusted` when a CA of
    /// smtpd_tls_CAfile/CApath vouches for it, else `Untrusted`.
    pub fn trust(&self) -> &'static str {
        match &self.client_cert {
            Some(c) if c.trust.is_ok() => "Trusted",
            Some(_) => "Untrusted",
            None => "Anonymous",
        }
    }

    /// Why smtpd_tls_req_ccert refuses the session, if it does.
    pub fn required_cert_missing(&self, tls: &ServerTls) -> Option<&'static str> {
        match &self.client_cert {
            _ if !tls.req_ccert => None,
            Some(c) if c.trust.is_ok() => None,
            Some(_) => Some("Client certificate not trusted"),
            None => Some("No client certificate presented"),
        }
    }

    /// The Received header's TLS comment, broken where Postfix breaks it.
    pub fn received_lines(&self) -> Vec<String> {
        let d = &self.described;
        let mut parts = vec![];
        let mut rest = d.as_str();
        for mark in [" key-exchange ", " client-signature "] {
            if let Some(i) = rest.find(mark) {
                parts.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
        }
        parts.push(rest);
        let last = parts.len() - 1;
        let mut lines: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (open, close) = (
                    if i == 0 { "(using " } else { " " },
                    if i == last { ")" } else { "" },
                );
                format!("\t{open}{p}{close}")
            })
            .collect();
        lines.push(match (&self.client_cert, self.asked) {
            (Some(c), _) => format!(
                "\t(Client CN \"{}\", Issuer \"{}\" ({}))",
                c.subject_cn,
                c.issuer_cn,
                if c.trust.is_ok() {
                    "verified OK"
                } else {
                    "not verified"
                }
            ),
            (None, true) => "\t(No client certificate presented)".into(),
            (None, false) => "\t(No client certificate requested)".into(),
        });
        lines
    }
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
        // smtpd_tls_req_ccert counts only where TLS is required.
        let req_ccert = level == Level::Encrypt && cf.bool("smtpd_tls_req_ccert").map_err(e)?;
        let ask_ccert = req_ccert || cf.bool("smtpd_tls_ask_ccert").map_err(e)?;
        let roots = trust_anchors(&text("smtpd_tls_CAfile")?, &text("smtpd_tls_CApath")?)?;
        let fingerprint_digest = Digest::parse(&text("smtpd_tls_fingerprint_digest")?)?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let provider_arc = Arc::new(provider.clone());
        let builder = rustls::ServerConfig::builder_with_provider(provider_arc)
            .with_protocol_versions(&protocols)
            .map_err(|e| e.to_string())?;
        let builder = if ask_ccert {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                algorithms: provider.signature_verification_algorithms,
            }))
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
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
            ask_ccert,
            req_ccert,
            roots,
            algorithms: provider.signature_verification_algorithms,
            fingerprint_digest,
        })))
    }
}

/// Takes any client certificate that parses, for its fingerprint; the
/// handshake's signature checks (done with the provider's algorithms)
/// prove the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The CAs in smtpd_tls_CAfile (PEM) and the PEM files of
/// smtpd_tls_CApath.
fn trust_anchors(
    file: &str,
    dir: &str,
) -> Result<Vec<rustls::pki_types::TrustAnchor<'static>>, String> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if !file.is_empty() {
        files.push(file.into());
    }
    if !dir.is_empty() {
        let entries = std::fs::read_dir(dir)
            .map_err(|err| format!("smtpd_tls_CApath: {dir}: {}", rostfix_config::io_text(&err)))?;
        let mut found: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        found.sort();
        files.extend(found.into_iter().filter(|p| p.is_file()));
    }
    let mut anchors = Vec::new();
    for f in files {
        let shown = f.display().to_string();
        let certs = CertificateDer::pem_file_iter(&f)
            .map_err(|err| format!("smtpd_tls_CAfile: {shown}: {}", pem_text(&err)))?;
        for c in certs {
            let c = c.map_err(|err| format!("smtpd_tls_CAfile: {shown}: {}", pem_text(&err)))?;
            let anchor = webpki::anchor_from_trusted_cert(&c)
                .map_err(|err| format!("smtpd_tls_CAfile: {shown}: {err}"))?;
            anchors.push(anchor.to_owned());
        }
    }
    Ok(anchors)
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
    /// The session's TLS, once under TLS.
    pub fn session(&self, tls: &ServerTls) -> Option<TlsSession> {
        let Stream::Tls(t) = self else {
            return None;
        };
        let conn = t.get_ref().1;
        let presented = conn.peer_certificates().and_then(|c| c.first());
        let mut described = crate::smtp::tls::describe(conn, Some(&tls.certificate));
        if let Some(sig) = presented.and_then(|c| crate::smtp::tls::key_signature(c, "client")) {
            described.push(' ');
            described.push_str(&sig);
        }
        let chain = conn
            .peer_certificates()
            .map_or(&[][..], |c| c.get(1..).unwrap_or(&[]));
        Some(TlsSession {
            described,
            received_header: tls.received_header,
            asked: tls.ask_ccert,
            client_cert: presented.and_then(|c| client_cert(c, chain, tls)),
        })
    }
}

/// The names, fingerprints and trust of a client's certificate (`chain`:
/// the intermediate certificates it came with).
fn client_cert(
    der: &CertificateDer<'_>,
    chain: &[CertificateDer<'_>],
    tls: &ServerTls,
) -> Option<ClientCert> {
    let cert = webpki::EndEntityCert::try_from(der).ok()?;
    let spki = cert.subject_public_key_info();
    let digest = tls.fingerprint_digest;
    let verified = cert.verify_for_usage(
        tls.algorithms.all,
        &tls.roots,
        chain,
        rustls::pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    );
    let trust = match verified {
        Ok(_) => Ok(()),
        Err(webpki::Error::CertExpired { .. }) => Err("certificate has expired"),
        Err(webpki::Error::CertNotValidYet { .. }) => Err("certificate is not yet valid"),
        Err(_) if cert.subject() == cert.issuer() => Err("self-signed certificate"),
        Err(webpki::Error::UnknownIssuer) => Err("unable to get local issuer certificate"),
        Err(_) => Err("certificate verification failed"),
    };
    Some(ClientCert {
        subject_cn: common_name(cert.subject()).unwrap_or_default(),
        issuer_cn: common_name(cert.issuer()).unwrap_or_default(),
        fingerprints: [digest.fingerprint(der), digest.fingerprint(spki.as_ref())],
        trust,
    })
}

/// The CommonName (2.5.4.3) in a DER Name's contents: a SEQUENCE of SETs
/// of SEQUENCE { OID, string }. The last one wins, as OpenSSL shows it.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    let mut found = None;
    let mut at = 0;
    while let Some(i) = name[at..].windows(CN.len()).position(|w| w == CN) {
        let start = at + i + CN.len();
        // The string: a tag, a short length, the bytes.
        let (tag, len) = (*name.get(start)?, usize::from(*name.get(start + 1)?));
        if len < 0x80 && matches!(tag, 0x0c | 0x13 | 0x14 | 0x16 | 0x1e) {
            let bytes = name.get(start + 2..start + 2 + len)?;
            found = Some(crate::log::printable(&String::from_utf8_lossy(bytes)));
        }
        at = start;
    }
    found
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

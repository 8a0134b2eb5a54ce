//! TLS for the SMTP client (rustls): security levels, the trust anchors
//! of smtp_tls_CAfile / smtp_tls_CApath, the protocol settings, and the
//! line the log shows for a session (`Untrusted TLS connection
//! established to ...`).
//!
//! At `may` and `encrypt` the server's certificate is not checked (RFC
//! 7435: opportunistic security); the log says whether it would have
//! been trusted. At `verify` and `secure` it must chain to a configured
//! anchor and name the server. At `dane` and `dane-only` the TLSA
//! records of the host decide (dane.rs).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// smtp_tls_security_level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    May,
    Encrypt,
    /// `dane` as configured (opportunistic DANE); for a connection, DANE
    /// in force: the server's certificates must match its TLSA records.
    Dane,
    /// `dane-only`: no delivery without usable TLSA records.
    DaneOnly,
    Verify,
    Secure,
}

impl Level {
    /// A level as main.cf or a policy table writes it; the name Postfix
    /// knows that Rostfix treats as another, with the reason.
    pub fn parse(s: &str) -> Result<(Level, Option<&'static str>), String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "" | "none" => (Level::None, None),
            "may" => (Level::May, None),
            "encrypt" => (Level::Encrypt, None),
            "fingerprint" => (
                Level::Encrypt,
                Some("fingerprint matching is not supported: using encrypt"),
            ),
            "verify" => (Level::Verify, None),
            "secure" => (Level::Secure, None),
            "dane" => (Level::Dane, None),
            "dane-only" => (Level::DaneOnly, None),
            other => return Err(format!("unknown TLS security level: {other}")),
        })
    }

    /// The name main.cf uses.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::May => "may",
            Level::Encrypt => "encrypt",
            Level::Dane => "dane",
            Level::DaneOnly => "dane-only",
            Level::Verify => "verify",
            Level::Secure => "secure",
        }
    }

    /// The server's certificate must be checked.
    pub fn verifies(self) -> bool {
        self >= Level::Verify
    }
}

/// The TLS protocol versions a `*_tls_protocols` value leaves (`!SSLv2,
/// !SSLv3`, `>=TLSv1.2`, `TLSv1.2 TLSv1.3`). rustls has TLS 1.2 and 1.3
/// only; a setting that leaves neither is an error.
pub fn protocol_versions(
    spec: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let all = [
        ("TLSv1.2", &rustls::version::TLS12),
        ("TLSv1.3", &rustls::version::TLS13),
    ];
    let rank = |v: &str| match v {
        "SSLv2" => Some(0),
        "SSLv3" => Some(1),
        "TLSv1" => Some(2),
        "TLSv1.1" => Some(3),
        "TLSv1.2" => Some(4),
        "TLSv1.3" => Some(5),
        _ => None,
    };
    let words: Vec<&str> = spec
        .split([',', ' ', '\t', ':'])
        .filter(|w| !w.is_empty())
        .collect();
    let mut keep = [true, true];
    let positive: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.starts_with('!') && !w.starts_with(">=") && !w.starts_with("<="))
        .collect();
    if !positive.is_empty() {
        keep = [false, false];
        for w in &positive {
            rank(w).ok_or_else(|| format!("unknown TLS protocol: {w}"))?;
            for (i, (name, _)) in all.iter().enumerate() {
                if name == w {
                    keep[i] = true;
                }
            }
        }
    }
    for w in &words {
        let (min, max, not) = if let Some(v) = w.strip_prefix(">=") {
            (rank(v), None, None)
        } else if let Some(v) = w.strip_prefix("<=") {
            (None, rank(v), None)
        } else if let Some(v) = w.strip_prefix('!') {
            (None, None, rank(v))
        } else {
            continue;
        };
        if min.is_none() && max.is_none() && not.is_none() {
            return Err(format!("unknown TLS protocol: {w}"));
        }
        for (i, (name, _)) in all.iter().enumerate() {
            let r = rank(name).unwrap_or(0);
            if min.is_some_and(|m| r < m) || max.is_some_and(|m| r > m) || not == Some(r) {
                keep[i] = false;
            }
        }
    }
    let out: Vec<_> = all
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|((_, v), _)| *v)
        .collect();
    if out.is_empty() {
        return Err(format!(
            "no TLS protocol left by \"{spec}\" (TLSv1.2 and TLSv1.3 are supported)"
        ));
    }
    Ok(out)
}

/// The trust anchors of a CAfile (PEM) and CApath (a directory of PEM
/// files); empty when neither is set.
pub fn anchors(ca_file: &str, ca_path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut add_file = |path: &std::path::Path| -> Result<(), String> {
        let certs =
            CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    };
    if !ca_file.is_empty() {
        add_file(std::path::Path::new(ca_file))?;
    }
    if !ca_path.is_empty() {
        let dir = std::fs::read_dir(ca_path).map_err(|e| format!("{ca_path}: {e}"))?;
        for entry in dir.filter_map(Result::ok) {
            let p = entry.path();
            if p.is_file() {
                // A CApath holds hash links and other files too: only
                // what parses counts.
                let _ = add_file(&p);
            }
        }
    }
    Ok(roots)
}

/// The client's TLS settings for one transport.
#[derive(Clone)]
pub struct Tls {
    /// Opportunistic: any certificate.
    pub any: Arc<ClientConfig>,
    /// encrypt: any certificate, the mandatory protocols.
    pub encrypt: Arc<ClientConfig>,
    /// DANE: any certificate for the handshake, the mandatory protocols
    /// and the TLSA base domain as SNI (RFC 7672 section 8.1); the chain
    /// is matched against the TLSA records after it.
    pub dane: Arc<ClientConfig>,
    /// For the DANE checks.
    algorithms: &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm],
    /// verify and secure: a certificate that chains to the anchors.
    pub checked: Arc<ClientConfig>,
    /// For the log: would the certificate have been trusted?
    webpki: Option<Arc<WebPkiServerVerifier>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Tls {
    pub fn new(
        roots: RootCertStore,
        opportunistic: &[&'static rustls::SupportedProtocolVersion],
        mandatory: &[&'static rustls::SupportedProtocolVersion],
        server_name: bool,
    ) -> Result<Tls, String> {
        let roots = Arc::new(roots);
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        let any_verifier = Arc::new(AnyCertificate(provider()));
        let mut any = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(opportunistic)
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(any_verifier)
            .with_no_client_auth();
        // Postfix sends no SNI unless smtp_tls_servername asks for it.
        any.enable_sni = server_name;
        let unchecked = |sni| -> Result<Arc<ClientConfig>, String> {
            let mut c = ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(mandatory)
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth();
            c.enable_sni = sni;
            Ok(Arc::new(c))
        };
        let mut checked = match &webpki {
            Some(v) => ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(mandatory)
                .map_err(|e| e.to_string())?
                .with_webpki_verifier(v.clone())
                .with_no_client_auth(),
            // Nothing to check against: every certificate fails.
            None => ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(mandatory)
                .map_err(|e| e.to_string())?
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        };
        checked.enable_sni = true;
        Ok(Tls {
            any: Arc::new(any),
            encrypt: unchecked(server_name)?,
            dane: unchecked(true)?,
            algorithms: provider().signature_verification_algorithms.all,
            checked: Arc::new(checked),
            webpki,
        })
    }

    /// The signature algorithms certificates may use.
    pub fn algorithms(
        &self,
    ) -> &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm] {
        self.algorithms
    }

    /// How far the server's certificate is trusted: `Verified` (chain
    /// and name), `Trusted` (chain), or `Untrusted`.
    pub fn trust(&self, conn: &rustls::ClientConnection, name: &ServerName<'_>) -> &'static str {
        let (Some(v), Some(certs)) = (&self.webpki, conn.peer_certificates()) else {
            return "Untrusted";
        };
        let Some((end, rest)) = certs.split_first() else {
            return "Untrusted";
        };
        match v.verify_server_cert(end, rest, name, &[], UnixTime::now()) {
            Ok(_) => "Verified",
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => "Trusted",
            Err(_) => "Untrusted",
        }
    }
}

/// `TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
/// key-exchange X25519 server-signature ...`, as Postfix's log says it
/// (OpenSSL's names); `server_cert` is the server's certificate (the
/// peer's for a client, our own for a server).
pub fn describe(conn: &rustls::CommonState, server_cert: Option<&[u8]>) -> String {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    };
    let (cipher, bits) = conn
        .negotiated_cipher_suite()
        .map(|s| openssl_name(s.suite()))
        .unwrap_or(("unknown".into(), 0));
    let mut out = format!("{version} with cipher {cipher} ({bits}/{bits} bits)");
    if let Some(kx) = conn.negotiated_key_exchange_group() {
        out.push_str(&format!(" key-exchange {:?}", kx.name()));
    }
    if let Some(sig) = server_cert.and_then(|c| key_signature(c, "server")) {
        out.push(' ');
        out.push_str(&sig);
    }
    out
}

/// `server-signature ECDSA (prime256v1) server-digest SHA256` (`role`
/// "server" or "client"): the key's kind, as OpenSSL names it, from the
/// certificate's public key (the digest is the one TLS pairs with that
/// key).
pub fn key_signature(cert: &[u8], role: &str) -> Option<String> {
    const EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    const RSA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    const ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let find = |needle: &[u8]| cert.windows(needle.len()).position(|w| w == needle);
    if find(EC).is_some() {
        if find(P256).is_some() {
            return Some(format!(
                "{role}-signature ECDSA (prime256v1) {role}-digest SHA256"
            ));
        }
        if find(P384).is_some() {
            return Some(format!(
                "{role}-signature ECDSA (secp384r1) {role}-digest SHA384"
            ));
        }
        return None;
    }
    if find(ED25519).is_some() {
        return Some(format!("{role}-signature ED25519"));
    }
    let at = find(RSA)?;
    // The key follows: NULL, BIT STRING { SEQUENCE { INTEGER modulus ...
    let rest = &cert[at + RSA.len()..];
    let bits = rsa_modulus_bits(rest)?;
    Some(format!(
        "{role}-signature RSA-PSS ({bits} bits) {role}-digest SHA256"
    ))
}

/// The modulus size of the RSA key whose DER follows its algorithm OID.
fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    // A DER length at `i`: (length, bytes it took).
    let len = |i: usize| -> Option<(usize, usize)> {
        let first = *der.get(i)?;
        if first < 0x80 {
            return Some((first as usize, 1));
        }
        let n = (first & 0x7f) as usize;
        if n > 4 {
            return None; // no key is that long; the shifts below stay in range
        }
        let mut v = 0usize;
        for k in 0..n {
            v = (v << 8) | *der.get(i + 1 + k)? as usize;
        }
        Some((v, 1 + n))
    };
    let mut i = 0;
    if der.get(i) == Some(&0x05) {
        i += 2; // NULL parameters
    }
    if der.get(i) != Some(&0x03) {
        return None;
    }
    let (_, l) = len(i + 1)?;
    i += 1 + l + 1; // BIT STRING tag, length, unused-bits byte
    if der.get(i) != Some(&0x30) {
        return None;
    }
    let (_, l) = len(i + 1)?;
    i += 1 + l;
    if der.get(i) != Some(&0x02) {
        return None;
    }
    let (n, l) = len(i + 1)?;
    i += 1 + l;
    // A leading zero keeps the integer positive; it is not a key bit.
    let n = if der.get(i) == Some(&0) {
        n.checked_sub(1)?
    } else {
        n
    };
    n.checked_mul(8)
}

/// OpenSSL's name of a cipher suite, and its key bits.
fn openssl_name(s: rustls::CipherSuite) -> (String, u32) {
    let name = format!("{s:?}");
    let bits = if name.contains("AES_128") { 128 } else { 256 };
    if let Some(rest) = name.strip_prefix("TLS13_") {
        return (format!("TLS_{rest}"), bits);
    }
    // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 -> ECDHE-RSA-AES256-GCM-SHA384
    let rest = name.trim_start_matches("TLS_");
    let (kx, cipher) = rest.split_once("_WITH_").unwrap_or(("", rest));
    let cipher = cipher
        .replace("AES_128", "AES128")
        .replace("AES_256", "AES256")
        .replace("CHACHA20_POLY1305", "CHACHA20-POLY1305");
    let cipher = cipher.replace('_', "-");
    let name = if kx.is_empty() {
        cipher
    } else {
        format!("{}-{cipher}", kx.replace('_', "-"))
    };
    // OpenSSL leaves out the hash of AEAD suites with CHACHA20.
    (
        name.replace("CHACHA20-POLY1305-SHA256", "CHACHA20-POLY1305"),
        bits,
    )
}

/// Accepts every certificate (opportunistic TLS) but still checks the
/// handshake signatures, so the session is with the key's owner.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        match rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms) {
            // A certificate webpki will not read (X.509 v1, as self-signed
            // DANE-EE servers have): the handshake is signed by its key
            // all the same, and that key is what is checked.
            Err(rustls::Error::InvalidCertificate(_)) => {
                let key = super::dane::spki(cert.as_ref()).ok_or(
                    rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding),
                )?;
                rustls::crypto::verify_tls13_signature_with_raw_key(
                    message,
                    &rustls::pki_types::SubjectPublicKeyInfoDer::from(key),
                    dss,
                    algorithms,
                )
            }
            other => other,
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<String> {
        protocol_versions(spec)
            .unwrap()
            .iter()
            .map(|v| format!("{:?}", v.version))
            .collect()
    }

    #[test]
    fn protocols() {
        assert_eq!(names("!SSLv2, !SSLv3"), ["TLSv1_2", "TLSv1_3"]);
        assert_eq!(
            names("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"),
            ["TLSv1_2", "TLSv1_3"]
        );
        assert_eq!(names(">=TLSv1.3"), ["TLSv1_3"]);
        assert_eq!(names("!TLSv1.3"), ["TLSv1_2"]);
        assert_eq!(names("TLSv1.2"), ["TLSv1_2"]);
        assert_eq!(names(""), ["TLSv1_2", "TLSv1_3"]);
        assert!(protocol_versions("!TLSv1.2 !TLSv1.3").is_err());
        assert!(protocol_versions("!TLSv9").is_err());
    }

    #[test]
    fn cipher_names() {
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384),
            ("TLS_AES_256_GCM_SHA384".into(), 256)
        );
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            ("ECDHE-RSA-AES128-GCM-SHA256".into(), 128)
        );
        assert_eq!(
            openssl_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            ("ECDHE-ECDSA-CHACHA20-POLY1305".into(), 256)
        );
    }

    #[test]
    fn server_keys() {
        // Certificates made with openssl req -x509 -newkey rsa:2048 / ec.
        assert_eq!(
            key_signature(include_bytes!("testdata/rsa2048.der"), "server").as_deref(),
            Some("server-signature RSA-PSS (2048 bits) server-digest SHA256")
        );
        assert_eq!(
            key_signature(include_bytes!("testdata/p256.der"), "server").as_deref(),
            Some("server-signature ECDSA (prime256v1) server-digest SHA256")
        );
    }

    #[test]
    fn levels() {
        assert_eq!(Level::parse("encrypt").unwrap().0, Level::Encrypt);
        assert_eq!(Level::parse("dane").unwrap(), (Level::Dane, None));
        assert!(Level::parse("bogus").is_err());
        assert!(Level::Secure.verifies() && !Level::Encrypt.verifies());
    }
}

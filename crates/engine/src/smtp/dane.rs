//! DANE for the SMTP client (RFC 7672, RFC 7671): what the TLSA records
//! of a host say about TLS to it, and whether the certificates a server
//! presented match them.
//!
//! Only DANE-TA(2) and DANE-EE(3) records are usable for SMTP (RFC 7672
//! section 3.1.3): PKIX-TA(0) and PKIX-EE(1) name public CAs an MTA has
//! no business trusting. A DANE-EE match stands alone (no name, no
//! expiry: the key is what DNS vouched for); a DANE-TA match is a trust
//! anchor the server's chain must lead to, and the server's certificate
//! must name the MX host or the next-hop domain.

use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use sha2::{Digest, Sha256, Sha512};

use super::dns::{Dns, Failed};
use hickory_resolver::proto::rr::{RData, RecordType};

/// One TLSA record (RFC 6698).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

const DANE_TA: u8 = 2;
const DANE_EE: u8 = 3;

impl Tlsa {
    /// Usable for SMTP, with a selector and matching type Rostfix knows.
    fn usable(&self) -> bool {
        matches!(self.usage, DANE_TA | DANE_EE)
            && self.selector <= 1
            && match self.matching {
                0 => !self.data.is_empty(),
                1 => self.data.len() == 32,
                2 => self.data.len() == 64,
                _ => false,
            }
    }

    /// Whether `cert` (DER) is what this record describes.
    fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert,
            _ => match spki(cert) {
                Some(key) => key,
                None => return false,
            },
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => Sha256::digest(selected).as_slice() == self.data.as_slice(),
            2 => Sha512::digest(selected).as_slice() == self.data.as_slice(),
            _ => false,
        }
    }
}

/// The SubjectPublicKeyInfo of a DER certificate, tag and length
/// included: walked to by hand because DANE-EE needs only the key, and
/// a certificate parser that insists on a valid certificate (X.509 v3,
/// known critical extensions) would refuse the bare self-signed ones
/// DANE-EE servers often have (RFC 7672 section 3.1.1).
pub fn spki(cert: &[u8]) -> Option<&[u8]> {
    // One DER element at the start of `der`: (tag, contents, element).
    fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *der.first()?;
        let first = *der.get(1)?;
        let (len, head) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for b in der.get(2..2 + n)? {
                len = (len << 8) | usize::from(*b);
            }
            (len, 2 + n)
        };
        let end = head.checked_add(len)?;
        Some((tag, der.get(head..end)?, der.get(..end)?))
    }
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] (absent in X.509 v1), serialNumber, signature, issuer,
    // validity, subject; then the key.
    let (tag, _, el) = element(rest)?;
    if tag == 0xa0 {
        rest = &rest[el.len()..];
    }
    for _ in 0..5 {
        let (_, _, el) = element(rest)?;
        rest = &rest[el.len()..];
    }
    match element(rest)? {
        (SEQUENCE, _, key) => Some(key),
        _ => None,
    }
}

/// What DNS says about TLS to one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No secure TLSA records: DANE does not apply.
    Absent,
    /// Secure TLSA records, none of them usable: TLS is mandatory, but
    /// the certificate is not checked (RFC 7672 section 2.2).
    Unusable,
    /// The usable records; the server's certificates must match one.
    Records(Vec<Tlsa>),
}

/// The TLSA records of `_port._tcp.host` (to be asked only where the
/// host's address was secure: an insecure name cannot vouch for its
/// keys). Records Rostfix cannot use are `warn`ed about as Postfix does.
pub async fn lookup(
    dns: &Dns,
    host: &str,
    port: u16,
    warn: &dyn Fn(&str),
) -> Result<Policy, Failed> {
    let name = format!("_{port}._tcp.{host}");
    let found = match dns.ask(&name, RecordType::TLSA).await {
        Ok(found) => found,
        Err(Failed::NoData | Failed::NotFound(_)) => return Ok(Policy::Absent),
        Err(e) => return Err(e),
    };
    if !found.secure {
        return Ok(Policy::Absent);
    }
    let records: Vec<Tlsa> = found
        .records
        .iter()
        .filter_map(|r| match r {
            RData::TLSA(t) => Some(Tlsa {
                usage: t.cert_usage().into(),
                selector: t.selector().into(),
                matching: t.matching().into(),
                data: t.cert_data().to_vec(),
            }),
            _ => None,
        })
        .filter(|t| {
            if !t.usable() {
                let what = match t.usage {
                    DANE_TA | DANE_EE if t.selector > 1 => "selector",
                    DANE_TA | DANE_EE => "matching type",
                    _ => "certificate usage",
                };
                let hex: String = t.data.iter().map(|b| format!("{b:02X}")).collect();
                warn(&format!(
                    "{name} unsupported TLSA {what}: {} {} {} {hex}",
                    t.usage, t.selector, t.matching
                ));
            }
            t.usable()
        })
        .collect();
    Ok(if records.is_empty() {
        Policy::Unusable
    } else {
        Policy::Records(records)
    })
}

/// Whether the server's `chain` (its certificate first) matches one of
/// `records`; `names` are the names a DANE-TA-anchored certificate may
/// have. The reason when it does not, in OpenSSL's words (Postfix logs
/// them).
pub fn verify(
    chain: &[CertificateDer<'_>],
    records: &[Tlsa],
    names: &[&str],
    algorithms: &[&dyn SignatureVerificationAlgorithm],
) -> Result<(), &'static str> {
    let Some(leaf) = chain.first() else {
        return Err("num=65:no matching DANE TLSA records");
    };
    if records
        .iter()
        .any(|r| r.usage == DANE_EE && r.matches(leaf.as_ref()))
    {
        return Ok(());
    }
    let Ok(ee) = webpki::EndEntityCert::try_from(leaf) else {
        return Err("num=65:no matching DANE TLSA records");
    };
    for (i, ca) in chain.iter().enumerate().skip(1) {
        if !records
            .iter()
            .any(|r| r.usage == DANE_TA && r.matches(ca.as_ref()))
        {
            continue;
        }
        let Ok(anchor) = webpki::anchor_from_trusted_cert(ca) else {
            continue;
        };
        let anchors = [anchor];
        let chained = ee.verify_for_usage(
            algorithms,
            &anchors,
            &chain[1..i],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        );
        if chained.is_err() {
            continue;
        }
        let named = names.iter().any(|n| {
            ServerName::try_from(*n)
                .is_ok_and(|sn| ee.verify_is_valid_for_subject_name(&sn).is_ok())
        });
        if named {
            return Ok(());
        }
        return Err("num=62:hostname mismatch");
    }
    Err("num=65:no matching DANE TLSA records")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa {
            usage,
            selector,
            matching,
            data,
        }
    }

    #[test]
    fn usable_records() {
        assert!(rec(3, 1, 1, vec![0; 32]).usable());
        assert!(rec(2, 0, 2, vec![0; 64]).usable());
        assert!(rec(3, 0, 0, vec![1]).usable());
        // PKIX usages, a digest of the wrong length, unknown types.
        assert!(!rec(1, 1, 1, vec![0; 32]).usable());
        assert!(!rec(0, 0, 1, vec![0; 32]).usable());
        assert!(!rec(3, 1, 1, vec![0; 31]).usable());
        assert!(!rec(3, 2, 1, vec![0; 32]).usable());
        assert!(!rec(3, 1, 3, vec![0; 32]).usable());
    }

    /// A certificate's DER: tbs holds the given version, five fields and
    /// the key; what follows tbs does not matter here.
    fn certificate(version: bool, key: &[u8]) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend_from_slice(&[0xa0, 0x03, 0x02, 0x01, 0x02]);
        }
        tbs.extend_from_slice(&[0x02, 0x01, 0x07]); // serial 7
        for _ in 0..4 {
            tbs.extend_from_slice(&[0x30, 0x00]); // algorithm, names, validity
        }
        tbs.extend_from_slice(key);
        let mut inner = vec![0x30, u8::try_from(tbs.len()).unwrap()];
        inner.extend_from_slice(&tbs);
        inner.extend_from_slice(&[0x30, 0x00, 0x03, 0x01, 0x00]);
        let mut out = vec![0x30, 0x81, u8::try_from(inner.len()).unwrap()];
        out.extend_from_slice(&inner);
        out
    }

    #[test]
    fn keys_of_v1_and_v3_certificates() {
        let key = [0x30, 0x03, 0x03, 0x01, 0x00];
        assert_eq!(spki(&certificate(true, &key)), Some(&key[..]));
        assert_eq!(spki(&certificate(false, &key)), Some(&key[..]));
        let digest = Sha256::digest(key).to_vec();
        assert!(rec(3, 1, 1, digest).matches(&certificate(false, &key)));
        // Cut short, or no key where one belongs.
        let whole = certificate(true, &key);
        assert_eq!(spki(&whole[..whole.len() - 12]), None);
        assert_eq!(spki(&certificate(true, &[0x02, 0x01, 0x00])), None);
    }

    #[test]
    fn full_certificate_digests() {
        let cert = b"not really DER, but selector 0 hashes the bytes".to_vec();
        let sha256 = Sha256::digest(&cert).to_vec();
        assert!(rec(3, 0, 1, sha256.clone()).matches(&cert));
        assert!(rec(3, 0, 0, cert.clone()).matches(&cert));
        let mut other = sha256;
        other[0] ^= 1;
        assert!(!rec(3, 0, 1, other).matches(&cert));
        // The SPKI of something that is no certificate matches nothing.
        assert!(!rec(3, 1, 1, vec![0; 32]).matches(&cert));
    }
}

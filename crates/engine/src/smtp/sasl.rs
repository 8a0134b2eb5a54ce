//! SASL as a client (smtp_sasl_*): which mechanism to use of those the
//! server offers, and the exchanges of PLAIN, LOGIN and CRAM-MD5.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};

/// smtp_sasl_security_options (or the TLS variant): what a mechanism
/// must not be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Security {
    pub noplaintext: bool,
    pub noanonymous: bool,
}

impl Security {
    pub fn parse(list: &[String]) -> Security {
        let mut s = Security::default();
        for o in list {
            match o.to_ascii_lowercase().as_str() {
                "noplaintext" => s.noplaintext = true,
                "noanonymous" => s.noanonymous = true,
                // noactive, nodictionary, mutual_auth: no mechanism here
                // is weaker in those ways than the ones these exclude.
                _ => {}
            }
        }
        s
    }
}

/// The mechanisms this client speaks, strongest first.
const OURS: &[&str] = &["CRAM-MD5", "PLAIN", "LOGIN"];

/// The mechanism to use: the strongest of ours the server offers that
/// the filter (smtp_sasl_mechanism_filter; empty: any) and the security
/// options allow.
pub fn choose(offered: &[String], filter: &[String], security: Security) -> Option<&'static str> {
    OURS.iter().copied().find(|m| {
        offered.iter().any(|o| o.eq_ignore_ascii_case(m))
            && (filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(m)))
            && !(security.noplaintext && matches!(*m, "PLAIN" | "LOGIN"))
    })
}

/// The first client message: the AUTH command line.
pub fn start(mechanism: &str, user: &str, password: &str) -> String {
    match mechanism {
        "PLAIN" => {
            let mut raw = Vec::with_capacity(user.len() + password.len() + 2);
            raw.push(0);
            raw.extend_from_slice(user.as_bytes());
            raw.push(0);
            raw.extend_from_slice(password.as_bytes());
            format!("AUTH PLAIN {}\r\n", B64.encode(raw))
        }
        other => format!("AUTH {other}\r\n"),
    }
}

/// The answer to a 334 challenge (base64 text), or `None` when the
/// mechanism has nothing more to say (the exchange is broken).
pub fn answer(
    mechanism: &str,
    step: usize,
    challenge: &str,
    user: &str,
    password: &str,
) -> Option<String> {
    let line = match (mechanism, step) {
        ("LOGIN", 0) => B64.encode(user),
        ("LOGIN", 1) => B64.encode(password),
        ("CRAM-MD5", 0) => {
            let challenge = B64.decode(challenge.trim()).ok()?;
            let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(password.as_bytes()).ok()?;
            mac.update(&challenge);
            let digest = mac.finalize().into_bytes();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            B64.encode(format!("{user} {hex}"))
        }
        _ => return None,
    };
    Some(format!("{line}\r\n"))
}

/// `user:password` from smtp_sasl_password_maps (the password may hold
/// colons).
pub fn credentials(value: &str) -> (String, String) {
    match value.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (value.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn choosing() {
        let none = Security::default();
        let noplain = Security {
            noplaintext: true,
            noanonymous: true,
        };
        assert_eq!(
            choose(&offered(&["PLAIN", "LOGIN"]), &[], none),
            Some("PLAIN")
        );
        assert_eq!(
            choose(&offered(&["LOGIN", "CRAM-MD5"]), &[], none),
            Some("CRAM-MD5")
        );
        assert_eq!(choose(&offered(&["PLAIN", "LOGIN"]), &[], noplain), None);
        assert_eq!(
            choose(&offered(&["PLAIN", "LOGIN"]), &offered(&["login"]), none),
            Some("LOGIN")
        );
        assert_eq!(choose(&offered(&["GSSAPI"]), &[], none), None);
    }

    #[test]
    fn exchanges() {
        assert_eq!(start("PLAIN", "user", "pw"), "AUTH PLAIN AHVzZXIAcHc=\r\n");
        assert_eq!(start("LOGIN", "user", "pw"), "AUTH LOGIN\r\n");
        assert_eq!(
            answer("LOGIN", 0, "VXNlcm5hbWU6", "user", "pw").unwrap(),
            "dXNlcg==\r\n"
        );
        assert_eq!(
            answer("LOGIN", 1, "UGFzc3dvcmQ6", "user", "pw").unwrap(),
            "cHc=\r\n"
        );
        // RFC 2195's example.
        let challenge = B64.encode("<1896.697170952@postoffice.reston.mci.net>");
        let a = answer("CRAM-MD5", 0, &challenge, "tim", "tanstaaftanstaaf").unwrap();
        assert_eq!(
            String::from_utf8(B64.decode(a.trim_end()).unwrap()).unwrap(),
            "tim b913a602c7eda7a495b4e6e7334d3890"
        );
        assert_eq!(credentials("u:p:q"), ("u".into(), "p:q".into()));
    }
}

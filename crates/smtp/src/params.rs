//! ESMTP parameters of MAIL FROM and RCPT TO: SIZE, BODY, RET, ENVID,
//! SMTPUTF8, AUTH (RFC 1870, 6152, 3461, 6531, 4954) and NOTIFY, ORCPT
//! (RFC 3461). Values are checked here; what they mean is smtpd's business.

/// MAIL FROM parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// RCPT TO parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// NOTIFY: never, or any of success/failure/delay.
    pub notify: Option<Notify>,
    /// ORCPT as `type;xtext`, decoded.
    pub orcpt: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// A parameter that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// An unknown keyword, or a value the keyword cannot have here
    /// (`BODY=BINARYMIME`, `SMTPUTF8=yes`): the parameter as written.
    Unsupported(String),
    /// A known keyword with a malformed value (or given twice).
    BadSyntax(&'static str),
    /// A SIZE too large to represent.
    SizeOverflow,
}

fn split(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text.split_ascii_whitespace()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes).
pub fn decode_xtext(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = text.get(i + 1..i + 3)?;
                let byte = u8::from_str_radix(hex, 16).ok()?;
                // Printable only, as Postfix requires: an ENVID or ORCPT
                // is copied into delivery status notifications, where a
                // line end would let the client write MIME parts.
                if !(32..=126).contains(&byte) {
                    return None;
                }
                out.push(byte);
                i += 3;
            }
            c if (33..=126).contains(&c) && c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The parameter as the client wrote it, for "Unsupported option".
fn as_written(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{key}={v}"),
        None => key.to_string(),
    }
}

pub fn parse_mail(text: &str) -> Result<MailParams, ParamError> {
    let mut p = MailParams::default();
    for (key, value) in split(text) {
        let unsupported = || ParamError::Unsupported(as_written(key, value));
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParamError::BadSyntax("SIZE"));
                }
                p.size = Some(v.parse().map_err(|_| ParamError::SizeOverflow)?);
            }
            ("BODY", Some(v)) => {
                p.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    _ => return Err(unsupported()),
                })
            }
            ("RET", Some(v)) => {
                if p.ret.is_some() {
                    return Err(ParamError::BadSyntax("RET"));
                }
                p.ret = Some(match v.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Hdrs,
                    _ => return Err(ParamError::BadSyntax("RET")),
                })
            }
            ("ENVID", Some(v)) => {
                if p.envid.is_some() {
                    return Err(ParamError::BadSyntax("ENVID"));
                }
                p.envid = Some(decode_xtext(v).ok_or(ParamError::BadSyntax("ENVID"))?)
            }
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("AUTH", Some(v)) => p.auth = Some(v.to_string()),
            _ => return Err(unsupported()),
        }
    }
    Ok(p)
}

pub fn parse_rcpt(text: &str) -> Result<RcptParams, ParamError> {
    let mut p = RcptParams::default();
    for (key, value) in split(text) {
        let upper = key.to_ascii_uppercase();
        let invalid = || ParamError::BadSyntax(if upper == "NOTIFY" { "NOTIFY" } else { "ORCPT" });
        match (upper.as_str(), value) {
            ("NOTIFY", Some(v)) => {
                let mut n = Notify::default();
                for word in v.split(',') {
                    match word.to_ascii_uppercase().as_str() {
                        "NEVER" => n.never = true,
                        "SUCCESS" => n.success = true,
                        "FAILURE" => n.failure = true,
                        "DELAY" => n.delay = true,
                        _ => return Err(invalid()),
                    }
                }
                if n.never && (n.success || n.failure || n.delay) {
                    return Err(invalid());
                }
                p.notify = Some(n);
            }
            ("ORCPT", Some(v)) => {
                let (kind, addr) = v.split_once(';').ok_or_else(invalid)?;
                if kind.is_empty() {
                    return Err(invalid());
                }
                p.orcpt = Some(format!(
                    "{kind};{}",
                    decode_xtext(addr).ok_or_else(invalid)?
                ));
            }
            _ => return Err(ParamError::Unsupported(as_written(key, value))),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_decodes_to_printable_text_only() {
        assert_eq!(decode_xtext("a+2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode_xtext("x+0Ay"), None);
        assert_eq!(decode_xtext("x+00"), None);
    }

    #[test]
    fn mail_params() {
        let p = parse_mail("SIZE=5000 BODY=8BITMIME RET=HDRS ENVID=QQ+2Bx SMTPUTF8").unwrap();
        assert_eq!(p.size, Some(5000));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("QQ+x"));
        assert!(p.smtputf8);
        assert_eq!(parse_mail("SIZE=abc"), Err(ParamError::BadSyntax("SIZE")));
        assert_eq!(
            parse_mail("SIZE=99999999999999999999"),
            Err(ParamError::SizeOverflow)
        );
        assert_eq!(
            parse_mail("FOO=1"),
            Err(ParamError::Unsupported("FOO=1".into()))
        );
        assert_eq!(
            parse_mail("BODY=BINARYMIME"),
            Err(ParamError::Unsupported("BODY=BINARYMIME".into()))
        );
        assert_eq!(
            parse_mail("SMTPUTF8=yes"),
            Err(ParamError::Unsupported("SMTPUTF8=yes".into()))
        );
        assert_eq!(
            parse_mail("RET=FULL RET=HDRS"),
            Err(ParamError::BadSyntax("RET"))
        );
    }

    #[test]
    fn rcpt_params() {
        let p = parse_rcpt("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b@c").unwrap();
        assert!(p.notify.unwrap().success && p.notify.unwrap().failure);
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a@b@c"));
        assert_eq!(
            parse_rcpt("NOTIFY=NEVER,DELAY"),
            Err(ParamError::BadSyntax("NOTIFY"))
        );
        assert_eq!(
            parse_rcpt("ORCPT=bogus"),
            Err(ParamError::BadSyntax("ORCPT"))
        );
    }
}

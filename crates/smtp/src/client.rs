//! The client side, sans IO: reading a server's replies (multi-line, with
//! limits), what an EHLO/LHLO reply offers, and the bytes of the commands
//! and of the message content the client sends. The smtp(8)/lmtp(8)
//! delivery agent drives these over its sockets.

use crate::reply::Reply;

/// Longest reply line kept (RFC 5321 allows 512; servers write longer
/// ones): the rest of the line is read and dropped.
pub const REPLY_LINE_LIMIT: usize = 2048;
/// Most lines of one reply kept (a hostile server could send forever).
pub const REPLY_LINES_LIMIT: usize = 100;

/// Why the server's bytes are not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line without a three-digit code (`ddd`, `ddd-`, `ddd text`).
    Malformed(String),
    /// More than REPLY_LINES_LIMIT lines.
    TooLong,
}

/// Collects the lines of one reply: feed each line (without CRLF) until
/// it returns the reply.
#[derive(Debug, Default)]
pub struct ReplyReader {
    code: u16,
    lines: Vec<String>,
}

impl ReplyReader {
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Takes one line; `Ok(Some(reply))` once the last line (`ddd text`)
    /// came. A continuation with another code ends nothing: Postfix's
    /// client reads such replies the same way, by the first code.
    pub fn line(&mut self, raw: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let raw = &raw[..raw.len().min(REPLY_LINE_LIMIT)];
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches(['\r', '\n']);
        let b = text.as_bytes();
        if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed(text.to_string()));
        }
        let code: u16 = text[..3].parse().unwrap_or(0);
        let more = match b.get(3) {
            None | Some(b' ') => false,
            Some(b'-') => true,
            Some(_) => return Err(ReplyError::Malformed(text.to_string())),
        };
        if self.lines.is_empty() {
            self.code = code;
        }
        if self.lines.len() >= REPLY_LINES_LIMIT {
            return Err(ReplyError::TooLong);
        }
        self.lines.push(text.get(4..).unwrap_or("").to_string());
        if more {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        Ok(Some(Reply::multi(self.code, lines)))
    }
}

/// What the server's EHLO (or LHLO) reply offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    /// SIZE, with the server's limit (0: none given).
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// AUTH mechanisms, upper case (`AUTH=LOGIN` lines of old servers
    /// count too).
    pub auth: Vec<String>,
}

impl Extensions {
    /// Reads an EHLO reply: the lines after the first (the greeting).
    pub fn parse(reply: &Reply) -> Extensions {
        let mut e = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => e.pipelining = true,
                "SIZE" => e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => e.eight_bit_mime = true,
                "DSN" => e.dsn = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "CHUNKING" => e.chunking = true,
                "STARTTLS" => e.starttls = true,
                "ENHANCEDSTATUSCODES" => e.enhanced_status_codes = true,
                "AUTH" => {
                    for m in words {
                        let m = m.to_ascii_uppercase();
                        if !e.auth.contains(&m) {
                            e.auth.push(m);
                        }
                    }
                }
                _ => {}
            }
        }
        e
    }
}

/// RFC 3461 xtext: `+XX` for `+`, `=`, and bytes outside `!`..`~`.
pub fn encode_xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The message content as DATA carries it: each `\n`-ended line with
/// CRLF, a leading dot doubled, and the final `.` line. `content` is the
/// queue file's form (lines ended by `\n`).
pub fn data_bytes(content: &[u8], out: &mut Vec<u8>) {
    out.reserve(content.len() + content.len() / 32 + 5);
    let mut rest = content;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        rest = next;
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &[&str]) -> Result<Option<Reply>, ReplyError> {
        let mut r = ReplyReader::new();
        let mut last = Ok(None);
        for l in lines {
            last = r.line(l.as_bytes());
        }
        last
    }

    #[test]
    fn replies_one_and_many_lines() {
        let r = read(&["250 2.0.0 Ok: queued as 4F2A"]).unwrap().unwrap();
        assert_eq!(
            (r.code, r.lines.clone()),
            (250, vec!["2.0.0 Ok: queued as 4F2A".into()])
        );
        let r = read(&["250-mx.example", "250-PIPELINING", "250 SIZE 1000"])
            .unwrap()
            .unwrap();
        assert_eq!(r.lines.len(), 3);
        assert_eq!(read(&["250-mx.example"]), Ok(None));
        let r = read(&["354"]).unwrap().unwrap();
        assert_eq!((r.code, r.lines.clone()), (354, vec![String::new()]));
    }

    #[test]
    fn malformed_replies() {
        assert!(matches!(read(&["hello"]), Err(ReplyError::Malformed(_))));
        assert!(matches!(read(&["25 ok"]), Err(ReplyError::Malformed(_))));
        assert!(matches!(read(&["250xok"]), Err(ReplyError::Malformed(_))));
        let many: Vec<String> = (0..=REPLY_LINES_LIMIT)
            .map(|_| "250-x".to_string())
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(read(&refs), Err(ReplyError::TooLong));
    }

    #[test]
    fn extensions() {
        let r = Reply::multi(
            250,
            [
                "mx.example",
                "PIPELINING",
                "SIZE 10240000",
                "AUTH PLAIN login",
                "AUTH=LOGIN CRAM-MD5",
                "STARTTLS",
                "8BITMIME",
                "DSN",
            ]
            .map(String::from)
            .to_vec(),
        );
        let e = Extensions::parse(&r);
        assert!(e.pipelining && e.starttls && e.eight_bit_mime && e.dsn);
        assert!(!e.smtputf8 && !e.chunking);
        assert_eq!(e.size, Some(10240000));
        assert_eq!(e.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
    }

    #[test]
    fn xtext() {
        assert_eq!(
            encode_xtext("rfc822;a+b=c@d é"),
            "rfc822;a+2Bb+3Dc@d+20+C3+A9"
        );
    }

    #[test]
    fn data_is_crlf_and_dot_stuffed() {
        let mut out = Vec::new();
        data_bytes(b"Subject: x\n\n.hidden\n..two\nend\n", &mut out);
        assert_eq!(
            out,
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n".to_vec()
        );
        out.clear();
        data_bytes(b"", &mut out);
        assert_eq!(out, b".\r\n".to_vec());
    }
}

//! SMTP replies: a code and one or more text lines, formatted with `-`
//! continuation (RFC 5321 section 4.2.1). The enhanced status code (RFC
//! 3463), when there is one, is part of each line's text, as Postfix
//! writes it.

use std::fmt;

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (EHLO).
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, lines }
    }

    /// 4xx.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The bytes on the wire: `250-first\r\n250 last\r\n`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 6).sum());
        self.write_to(&mut out);
        out
    }

    /// Appends the wire form to `out` (pipelined replies share a buffer).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{}\r\n", self.code).as_bytes());
            return;
        }
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{sep}{line}\r\n", self.code).as_bytes());
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(Reply::new(250, "2.0.0 Ok").to_bytes(), b"250 2.0.0 Ok\r\n");
        let ehlo = Reply::multi(
            250,
            vec![
                "mail.example.test".into(),
                "PIPELINING".into(),
                "CHUNKING".into(),
            ],
        );
        assert_eq!(
            ehlo.to_bytes(),
            b"250-mail.example.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
        );
        assert!(Reply::new(454, "4.7.1 x").is_temporary());
        assert!(Reply::new(554, "5.7.1 x").is_permanent());
    }
}

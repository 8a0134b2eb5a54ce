//! The DATA receiver (RFC 5321 section 4.1.1.4): message lines up to the
//! `.` line, dot-unstuffed, streamed out in the internal form (each line
//! ends in `\n`) so that no message is ever held whole in memory.
//!
//! SMTP smuggling is decided here. With `smtpd_forbid_bare_newline = no`
//! (Postfix before 3.9) a bare LF ends a line, so `\n.\r\n` ends the
//! message. With `normalize` (Rostfix's default, as in Postfix 3.9+) and
//! `reject`, a bare LF still ends a content line, but only `\r\n.\r\n`
//! ends the message; `reject` also remembers that a bare LF was seen so
//! smtpd can refuse the message after the end.

/// `smtpd_forbid_bare_newline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    Allow,
    Normalize,
    Reject,
}

impl BareNewline {
    pub fn parse(s: &str) -> Option<BareNewline> {
        Some(match s.to_ascii_lowercase().as_str() {
            "no" => BareNewline::Allow,
            "normalize" | "yes" => BareNewline::Normalize,
            "reject" => BareNewline::Reject,
            _ => return None,
        })
    }
}

/// What [`DataReceiver::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEvent {
    /// The input was used up; more is needed.
    More,
    /// The end-of-data line was seen; bytes after it are the next command.
    Done,
}

/// Lines longer than this are passed on in pieces: memory stays bounded
/// whatever the client sends (a line this long cannot be the end line).
const FLUSH_AT: usize = 64 * 1024;

/// Receives one DATA section.
#[derive(Debug)]
pub struct DataReceiver {
    mode: BareNewline,
    line: Vec<u8>,
    /// The previous line ended in CRLF (the DATA command itself did).
    prev_crlf: bool,
    /// Part of the current line was already passed on.
    continued: bool,
    bare_lf: bool,
    size: u64,
    limit: u64,
}

impl DataReceiver {
    /// `limit` is `message_size_limit` (0: none); content beyond it is
    /// read and dropped, so the client still gets a reply after its `.`.
    pub fn new(mode: BareNewline, limit: u64) -> DataReceiver {
        DataReceiver {
            mode,
            line: Vec::with_capacity(1024),
            prev_crlf: true,
            continued: false,
            bare_lf: false,
            size: 0,
            limit,
        }
    }

    /// Content bytes seen so far (internal form, as cleanup will count).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the content went over the size limit.
    pub fn too_big(&self) -> bool {
        self.limit > 0 && self.size > self.limit
    }

    /// Whether a bare LF was seen.
    pub fn saw_bare_lf(&self) -> bool {
        self.bare_lf
    }

    /// Consumes `input`, appending content to `out`; returns how many bytes
    /// were used and whether the message ended.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, DataEvent) {
        let mut i = 0;
        while i < input.len() {
            let Some(nl) = input[i..].iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(&input[i..]);
                if self.line.len() >= FLUSH_AT {
                    self.flush_partial(out);
                }
                return (input.len(), DataEvent::More);
            };
            self.line.extend_from_slice(&input[i..i + nl]);
            i += nl + 1;
            let crlf = self.line.last() == Some(&b'\r');
            if crlf {
                self.line.pop();
            } else {
                self.bare_lf = true;
            }
            let ends = !self.continued
                && self.line == b"."
                && match self.mode {
                    BareNewline::Allow => true,
                    BareNewline::Normalize | BareNewline::Reject => crlf && self.prev_crlf,
                };
            if ends {
                self.line.clear();
                return (i, DataEvent::Done);
            }
            // A lone dot that does not end the message (it follows a bare
            // LF) is dropped, as Postfix 3.9 drops it: it is never content
            // and never an end.
            if !self.continued && self.line == b"." && self.mode != BareNewline::Allow {
                self.line.clear();
                self.prev_crlf = crlf;
                continue;
            }
            self.emit_line(out);
            self.prev_crlf = crlf;
        }
        (input.len(), DataEvent::More)
    }

    fn emit_line(&mut self, out: &mut Vec<u8>) {
        let body = if !self.continued && self.line.first() == Some(&b'.') {
            &self.line[1..]
        } else {
            &self.line[..]
        };
        self.size += body.len() as u64 + 1;
        if !self.too_big() {
            out.extend_from_slice(body);
            out.push(b'\n');
        }
        self.line.clear();
        self.continued = false;
    }

    fn flush_partial(&mut self, out: &mut Vec<u8>) {
        // Keep a trailing CR: it may pair with the LF of the next read.
        let keep = usize::from(self.line.last() == Some(&b'\r'));
        let cut = self.line.len() - keep;
        let body_start = if !self.continued && self.line.first() == Some(&b'.') {
            1
        } else {
            0
        };
        self.size += (cut - body_start) as u64;
        if !self.too_big() {
            out.extend_from_slice(&self.line[body_start..cut]);
        }
        self.line.drain(..cut);
        self.continued = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(mode: BareNewline, chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>, bool) {
        let mut r = DataReceiver::new(mode, 0);
        let mut out = Vec::new();
        let mut offset = 0;
        for chunk in chunks {
            let (used, ev) = r.feed(chunk, &mut out);
            if ev == DataEvent::Done {
                return (out, Some(offset + used), r.saw_bare_lf());
            }
            offset += used;
        }
        (out, None, r.saw_bare_lf())
    }

    #[test]
    fn dot_unstuffing_and_end() {
        let (out, end, _) = receive(
            BareNewline::Normalize,
            &[b"From: a\r\n\r\n..dot\r\nIt works!\r\n.\r\nQUIT\r\n"],
        );
        assert_eq!(out, b"From: a\n\n.dot\nIt works!\n");
        assert_eq!(
            end,
            Some(b"From: a\r\n\r\n..dot\r\nIt works!\r\n.\r\n".len())
        );
    }

    #[test]
    fn end_split_across_reads() {
        let (out, end, _) = receive(BareNewline::Normalize, &[b"a\r", b"\n.", b"\r", b"\nMAIL"]);
        assert_eq!(out, b"a\n");
        assert_eq!(end, Some(6));
    }

    #[test]
    fn smuggling_needs_crlf_dot_crlf() {
        let attack: &[u8] = b"x\r\n\n.\r\nMAIL FROM:<evil@example>\r\n.\r\n";
        // Postfix 3.7's default: the bare-LF sequence ends the message early.
        let (_, end, _) = receive(BareNewline::Allow, &[attack]);
        assert_eq!(end, Some(b"x\r\n\n.\r\n".len()));
        // normalize (the default here): one message, smuggled text included.
        let (out, end, bare) = receive(BareNewline::Normalize, &[attack]);
        assert_eq!(end, Some(attack.len()));
        assert_eq!(out, b"x\n\nMAIL FROM:<evil@example>\n");
        assert!(bare);
        // A dot line after a bare LF is content; the next one ends it.
        let (out, end, bare) = receive(BareNewline::Reject, &[b"x\n.\r\n.\r\n"]);
        assert_eq!((out.as_slice(), end, bare), (&b"x\n"[..], Some(8), true));
    }

    #[test]
    fn size_limit_drops_content_but_finds_the_end() {
        let mut r = DataReceiver::new(BareNewline::Normalize, 10);
        let mut out = Vec::new();
        let (_, ev) = r.feed(b"0123456789abcdef\r\n.\r\n", &mut out);
        assert_eq!(ev, DataEvent::Done);
        assert!(r.too_big());
        assert!(out.is_empty());
    }

    #[test]
    fn long_lines_stream_in_pieces() {
        let long = vec![b'x'; FLUSH_AT * 3];
        let mut input = long.clone();
        input.extend_from_slice(b"\r\n.\r\n");
        let mut r = DataReceiver::new(BareNewline::Normalize, 0);
        let mut out = Vec::new();
        let mut used = 0;
        for chunk in input.chunks(4096) {
            let (n, ev) = r.feed(chunk, &mut out);
            used += n;
            if ev == DataEvent::Done {
                break;
            }
        }
        assert_eq!(used, input.len());
        assert_eq!(out.len(), long.len() + 1);
        assert!(r.line.capacity() < FLUSH_AT * 2, "memory stays bounded");
    }
}

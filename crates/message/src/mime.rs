//! 8BITMIME downgrade: a message with 8-bit MIME parts, made 7-bit for a
//! server that does not offer 8BITMIME (RFC 6152 section 3), as Postfix's
//! smtp client does it: each part (multipart/* and message/rfc822
//! nested) whose Content-Transfer-Encoding is 8bit or binary becomes
//! quoted-printable, its header says so, and everything else passes as
//! it is. 8-bit text outside any MIME declaration cannot be converted
//! and is left alone.

/// One MIME entity's header, as far as the downgrade cares.
#[derive(Debug, Default)]
struct Entity {
    boundary: Option<String>,
    message: bool,
    eight_bit: bool,
}

fn parse_header(lines: &[Vec<u8>]) -> Entity {
    let mut e = Entity::default();
    for l in lines {
        let text = String::from_utf8_lossy(l);
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if name == "content-transfer-encoding" {
            let v = value.to_ascii_lowercase();
            e.eight_bit = v == "8bit" || v == "binary";
        } else if name == "content-type" {
            let lower = value.to_ascii_lowercase();
            if lower.starts_with("multipart/") {
                e.boundary = boundary(value);
            } else if lower.starts_with("message/rfc822") {
                e.message = true;
            }
        }
    }
    e
}

/// The `boundary=` parameter of a Content-Type value.
fn boundary(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let at = lower.find("boundary=")? + "boundary=".len();
    let rest = &value[at..];
    let b = if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()?
    } else {
        rest.split([';', ' ', '\t']).next()?
    };
    (!b.is_empty()).then(|| b.to_string())
}

/// The message with its 8-bit parts quoted-printable, or `None` when no
/// part needed it. `content` is lines ending in `\n`.
pub fn downgrade(content: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 8);
    let mut changed = false;
    let mut boundaries: Vec<String> = Vec::new();
    // The header being read (lines with continuations joined), or None in
    // a body.
    let mut header: Option<Vec<Vec<u8>>> = Some(Vec::new());
    let mut raw_header: Vec<&[u8]> = Vec::new();
    let mut encode = false;
    for line in content.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(h) = header.as_mut() {
            if text.is_empty() {
                let e = parse_header(h);
                // The encoding header is replaced, with any continuation
                // lines it had: a container (multipart, message/rfc822)
                // is 7bit once its parts are (RFC 2045 section 6.4), a
                // leaf quoted-printable.
                let container = e.boundary.is_some() || e.message;
                let replacement: &[u8] = if container {
                    b"Content-Transfer-Encoding: 7bit\n"
                } else {
                    b"Content-Transfer-Encoding: quoted-printable\n"
                };
                let mut replaced = false;
                for raw in raw_header.drain(..) {
                    let continuation = matches!(raw.first(), Some(b' ' | b'\t'));
                    if e.eight_bit && is_cte(raw) {
                        out.extend_from_slice(replacement);
                        changed = true;
                        replaced = true;
                    } else if !(replaced && continuation) {
                        replaced = false;
                        out.extend_from_slice(raw);
                    }
                }
                out.push(b'\n');
                header = None;
                encode = false;
                if let Some(b) = e.boundary {
                    boundaries.push(b);
                } else if e.message {
                    header = Some(Vec::new());
                } else {
                    encode = e.eight_bit;
                }
                continue;
            }
            if matches!(text.first(), Some(b' ' | b'\t')) && !h.is_empty() {
                let last = h.len() - 1;
                h[last].extend_from_slice(text);
            } else {
                h.push(text.to_vec());
            }
            raw_header.push(line);
            continue;
        }
        // A boundary line ends the part (and starts the next, or closes
        // the multipart).
        if let Some(rest) = text.strip_prefix(b"--")
            && let Some(level) = boundaries
                .iter()
                .rposition(|b| rest.starts_with(b.as_bytes()))
        {
            let after = &rest[boundaries[level].len()..];
            let after = trim_end(after);
            if after.is_empty() || after == b"--" {
                boundaries.truncate(level + 1);
                encode = false;
                out.extend_from_slice(line);
                if after == b"--" {
                    boundaries.pop();
                } else {
                    header = Some(Vec::new());
                }
                continue;
            }
        }
        if encode {
            quoted_printable(text, &mut out);
        } else {
            out.extend_from_slice(line);
        }
    }
    // The last header section, if the content ended inside one.
    for raw in raw_header {
        out.extend_from_slice(raw);
    }
    changed.then_some(out)
}

fn trim_end(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t' | b'\r'))
        .map_or(0, |i| i + 1);
    &b[..end]
}

fn is_cte(line: &[u8]) -> bool {
    const NAME: &[u8] = b"content-transfer-encoding";
    line.len() > NAME.len()
        && line[..NAME.len()].eq_ignore_ascii_case(NAME)
        && trim_start(&line[NAME.len()..]).first() == Some(&b':')
}

fn trim_start(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    &b[start..]
}

/// One line as quoted-printable (RFC 2045 section 6.7): soft breaks keep
/// lines at most 76 characters (Postfix breaks once a line passes 72),
/// white space at the end of a line is encoded.
fn quoted_printable(line: &[u8], out: &mut Vec<u8>) {
    let mut len = 0;
    for (i, &b) in line.iter().enumerate() {
        if len > 72 {
            out.extend_from_slice(b"=\n");
            len = 0;
        }
        let last = i + 1 == line.len();
        let encode = b >= 0x80
            || b == b'='
            || (b < 0x20 && b != b'\t')
            || b == 0x7f
            || (last && (b == b' ' || b == b'\t'));
        if encode {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
            len += 3;
        } else {
            out.push(b);
            len += 1;
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_8bit_part_becomes_quoted_printable() {
        let msg = "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n\
--b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
Grüße aus Zürich, a line long enough to need a soft line break when it is converted to quoted-printable by the client.\n\
--b1\nContent-Type: text/plain\n\nPlain = part.\n--b1--\n";
        let out = String::from_utf8(downgrade(msg.as_bytes()).unwrap()).unwrap();
        // Recorded from Postfix 3.7 (tests/delivery/cases/relay-8bit-downgrade).
        assert!(out.contains(
            "Content-Transfer-Encoding: quoted-printable\n\n\
Gr=C3=BC=C3=9Fe aus Z=C3=BCrich, a line long enough to need a soft line b=\n\
reak when it is converted to quoted-printable by the client.\n--b1\n"
        ));
        assert!(out.contains("\n\nPlain = part.\n--b1--\n"));
    }

    #[test]
    fn containers_become_7bit() {
        let msg = "Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: 8bit\n\n\
--b\nContent-Transfer-Encoding: 8bit\n\nGr\u{fc}\n--b--\n";
        let out = String::from_utf8(downgrade(msg.as_bytes()).unwrap()).unwrap();
        assert!(out.starts_with(
            "Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: 7bit\n\n"
        ));
        assert!(out.contains("Content-Transfer-Encoding: quoted-printable\n\nGr=C3=BC\n--b--"));
    }

    #[test]
    fn nothing_to_convert() {
        assert_eq!(downgrade(b"Subject: x\n\nGr\xc3\xbc\xc3\x9fe\n"), None);
        assert_eq!(
            downgrade(b"Content-Transfer-Encoding: 7bit\n\nplain\n"),
            None
        );
    }

    #[test]
    fn single_part_and_trailing_space() {
        let out = downgrade(b"Content-Transfer-Encoding: 8BIT\n\nend \n=\n").unwrap();
        assert_eq!(
            out,
            b"Content-Transfer-Encoding: quoted-printable\n\nend=20\n=3D\n".to_vec()
        );
    }
}

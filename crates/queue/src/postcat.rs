//! postcat(1)'s view of a queue file: Rostfix's records shown the way
//! Postfix 3.7's postcat shows its own (section banners, `name: value`
//! envelope lines, the message as stored), so that what administrators
//! and their scripts read is the same. Observed from Postfix and
//! recorded in tests/golden (postcat).

use crate::file::Queued;

/// What to show (`-e`, `-h`, `-b`; none of them means all, with the
/// section banners), and how (`-v`: content record types).
#[derive(Debug, Clone, Copy, Default)]
pub struct Show {
    pub envelope: bool,
    pub header: bool,
    pub body: bool,
    pub verbose: bool,
}

impl Show {
    fn all(&self) -> bool {
        !(self.envelope || self.header || self.body)
    }
}

/// The text postcat prints for `queued`, named `label` in its banners
/// (`deferred/ID`, or the path given). `maildrop`: a file sendmail left,
/// which has no size or creation time yet.
pub fn render(queued: &Queued, label: &str, show: Show, maildrop: bool) -> String {
    let all = show.all();
    let (envelope, header, body) = if all {
        (true, true, true)
    } else {
        (show.envelope, show.header, show.body)
    };
    // Banners come with the envelope (as with Postfix: -h or -b alone
    // print the message text only).
    let banners = envelope;
    let env = &queued.envelope;
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    if banners {
        line(&format!("*** ENVELOPE RECORDS {label} ***"));
    }
    if envelope {
        let arrival = date_text(env.time.0);
        if !maildrop {
            let nrcpt = env.recipients.len();
            let fields = [
                env.content_size,
                env.content_offset,
                nrcpt as u64,
                0,
                env.content_size,
                0,
            ];
            let mut size = "message_size:".to_string();
            for f in fields {
                size.push_str(&format!(" {f:>15}"));
            }
            line(&size);
        }
        line(&format!("message_arrival_time: {arrival}"));
        if !maildrop {
            line(&format!("create_time: {arrival}"));
        }
        for (name, value) in &env.attrs {
            line(&format!("named_attribute: {name}={value}"));
        }
        line(&format!("sender: {}", env.sender));
        for r in &env.recipients {
            if !r.dsn.orcpt.is_empty() {
                line(&format!("named_attribute: dsn_orig_rcpt={}", r.dsn.orcpt));
            }
            if !r.original.is_empty() && !maildrop {
                line(&format!("original_recipient: {}", r.original));
            }
            let kind = if r.done {
                "done_recipient"
            } else {
                "recipient"
            };
            line(&format!("{kind}: {}", r.address));
        }
    }
    if banners {
        line(&format!("*** MESSAGE CONTENTS {label} ***"));
    }
    let mut in_header = true;
    for text in queued.lines() {
        let Ok(text) = text else { break };
        if in_header && text.is_empty() {
            in_header = false;
        }
        let wanted = if in_header { header } else { body };
        if !wanted {
            continue;
        }
        let shown = String::from_utf8_lossy(text);
        if show.verbose {
            line(&format!("regular_text: {shown}"));
        } else {
            line(&shown);
        }
    }
    if banners {
        line(&format!("*** HEADER EXTRACTED {label} ***"));
        line(&format!("*** MESSAGE FILE END {label} ***"));
    }
    out
}

/// asctime(3) in local time, as postcat prints times.
fn date_text(secs: u64) -> String {
    rostfix_message::date::asctime(&rostfix_message::date::local(secs as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{Dsn, QueueFile, QueueReader};

    #[test]
    fn shows_the_envelope_and_the_message_as_postfix_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = QueueFile::create(dir.path(), false).unwrap();
        f.sender("alice@example.test");
        f.attr("client_address", "127.0.0.1");
        f.recipient_dsn(
            "bob@remote.example",
            "bob@remote.example",
            &Dsn {
                notify: String::new(),
                orcpt: "rfc822;bob@remote.example".into(),
            },
        );
        f.content();
        for l in ["Subject: x", "", "From the start."] {
            f.line(l.as_bytes()).unwrap();
        }
        let path = f.path().to_path_buf();
        let id = f.finish().unwrap();
        let q = QueueReader::read(&path).unwrap();
        let label = format!("deferred/{id}");
        let text = render(&q, &label, Show::default(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("*** ENVELOPE RECORDS {label} ***"));
        assert!(lines[1].starts_with("message_size: "));
        assert_eq!(lines[1].len(), "message_size:".len() + 6 * 16);
        assert!(lines.contains(&"named_attribute: client_address=127.0.0.1"));
        assert!(lines.contains(&"named_attribute: dsn_orig_rcpt=rfc822;bob@remote.example"));
        assert!(lines.contains(&"recipient: bob@remote.example"));
        assert!(lines.contains(&"From the start."));
        assert_eq!(
            lines.last().copied(),
            Some(format!("*** MESSAGE FILE END {label} ***").as_str())
        );
        let body = render(
            &q,
            &label,
            Show {
                body: true,
                ..Show::default()
            },
            false,
        );
        assert_eq!(body, "\nFrom the start.\n");
        let header = render(
            &q,
            &label,
            Show {
                header: true,
                ..Show::default()
            },
            false,
        );
        assert_eq!(header, "Subject: x\n");
    }
}

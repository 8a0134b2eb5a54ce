//! postdrop(1): the one program that may write into the maildrop for a
//! user who may not, installed set-group-ID `setgid_group` (postdrop)
//! with the maildrop directory mode 1730 and group postdrop, as
//! Postfix's. sendmail runs it (see [`crate::maildrop`]).
//!
//! It trusts nothing it reads: the records must come in the order of a
//! maildrop file (sender, attributes, recipients, content, lines, end),
//! no record may be longer than a line may be, and the whole no bigger
//! than message_size_limit allows; only the attributes pickup knows are
//! copied, and the user is the one the kernel says (the file's owner),
//! never what the input claims. Set-group-ID, it reads only the default
//! configuration directory or one its `alternate_config_directories`
//! lists. An input that ends early leaves nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use rostfix_config::Config;
use rostfix_queue::QueueFile;
use rostfix_queue::maildrop::{ATTRS_FROM_USERS, MAILDROP_DIR, wake_pickup};
use rostfix_queue::record::{HEADER_LEN, RCPT_PENDING, RecordType};

use crate::msg::Getopt;
use crate::sendmail::{EX_TEMPFAIL, fatal_status};

const USAGE: &str = "[-c config_dir] [-r]";

/// The longest record accepted, whatever message_size_limit says (a
/// long line is one record, as from sendmail run by root).
const RECORD_LIMIT: usize = 1 << 26;

pub fn main() -> i32 {
    crate::msg::init("postdrop");
    crate::msg::set_usage_status(EX_TEMPFAIL);
    let g = Getopt::parse(std::env::args_os().skip(1), "c:rv", USAGE);
    let mut dir: Option<PathBuf> = None;
    for (c, v) in &g.options {
        if *c == 'c' {
            dir = Some(PathBuf::from(crate::msg::option_text(v)));
        }
    }
    let dir = trusted_config_dir(dir);
    let cf =
        Config::load(dir.as_deref()).unwrap_or_else(|e| fatal_status(EX_TEMPFAIL, &e.to_string()));
    let queue_directory = PathBuf::from(
        cf.string("queue_directory")
            .unwrap_or_else(|e| fatal_status(EX_TEMPFAIL, &e.to_string())),
    );
    let limit = cf.int("message_size_limit").unwrap_or(0).max(0) as u64;
    // Readable by pickup (another user); the directory keeps out the rest.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let mut file = QueueFile::create_mode(&queue_directory.join(MAILDROP_DIR), 0o644)
        .unwrap_or_else(|e| {
            fatal_status(
                EX_TEMPFAIL,
                &format!("create file in {}/maildrop: {e}", queue_directory.display()),
            )
        });
    println!("{}", file.id());
    let _ = std::io::stdout().flush();
    match copy(
        &mut BufReader::new(std::io::stdin().lock()),
        &mut file,
        limit,
    ) {
        Ok(()) => match file.finish() {
            Ok(_) => {
                wake_pickup(&queue_directory);
                0
            }
            Err(e) => fatal_status(EX_TEMPFAIL, &format!("queue file write error: {e}")),
        },
        Err(why) => {
            let _ = file.discard();
            fatal_status(EX_TEMPFAIL, &why)
        }
    }
}

/// The configuration directory a set-group-ID command (postdrop,
/// postqueue) may use: as given when not set-group-ID; else the caller's
/// environment (MAIL_CONFIG) counts for nothing, and `-c` only for a
/// directory the default configuration lists.
pub fn trusted_config_dir(dir: Option<PathBuf>) -> Option<PathBuf> {
    if nix::unistd::getegid() == nix::unistd::getgid() {
        return dir;
    }
    let default = PathBuf::from(rostfix_config::DEFAULT_CONFIG_DIRECTORY);
    let d = dir.unwrap_or_else(|| default.clone());
    if d != default {
        authorized(&default, &d);
    }
    Some(d)
}

/// Refuses a configuration directory the default configuration does not
/// list in alternate_config_directories.
fn authorized(default: &Path, dir: &Path) {
    let default =
        Config::load(Some(default)).unwrap_or_else(|e| fatal_status(EX_TEMPFAIL, &e.to_string()));
    let allowed = default
        .string("alternate_config_directories")
        .unwrap_or_default();
    if !rostfix_config::value::split_list(&allowed)
        .iter()
        .any(|d| Path::new(d) == dir)
    {
        fatal_status(
            EX_TEMPFAIL,
            &format!(
                "unauthorized configuration directory name: {}",
                dir.display()
            ),
        );
    }
}

/// Where the input is in a maildrop file's order.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum Stage {
    Start,
    Envelope,
    Content,
}

/// Copies the records from `input` into `file`, checking them.
fn copy(input: &mut impl BufRead, file: &mut QueueFile, limit: u64) -> Result<(), String> {
    let mut stage = Stage::Start;
    let mut total: u64 = 0;
    loop {
        let mut head = [0u8; HEADER_LEN];
        input
            .read_exact(&mut head)
            .map_err(|_| "premature end of input".to_string())?;
        let kind = RecordType::from_byte(head[0]).ok_or("bad record type")?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > RECORD_LIMIT {
            return Err("record too long".into());
        }
        // Counted before the record is read: nothing past the limit is
        // held in memory.
        total += (HEADER_LEN + len) as u64;
        if limit > 0 && total > limit.saturating_add(64 * 1024) {
            return Err("message file too big".into());
        }
        let mut payload = vec![0u8; len];
        input
            .read_exact(&mut payload)
            .map_err(|_| "premature end of input".to_string())?;
        let text = || String::from_utf8_lossy(&payload).into_owned();
        match (kind, stage) {
            (RecordType::Sender, Stage::Start) => {
                file.sender(&text());
                stage = Stage::Envelope;
            }
            (RecordType::Attr, Stage::Envelope) => {
                let t = text();
                if let Some((name, value)) = t.split_once('=')
                    && ATTRS_FROM_USERS.contains(&name)
                {
                    file.attr(name, value);
                }
            }
            (RecordType::Recipient, Stage::Envelope) => {
                let (status, rest) = payload.split_first().ok_or("empty recipient")?;
                if *status != RCPT_PENDING {
                    return Err("bad recipient record".into());
                }
                let t = String::from_utf8_lossy(rest);
                let address = t.split('\0').next().unwrap_or("");
                file.recipient(address, address);
            }
            (RecordType::Content, Stage::Envelope) => {
                file.content();
                stage = Stage::Content;
            }
            (RecordType::Line, Stage::Content) => {
                file.line(&payload)
                    .map_err(|e| format!("queue file write error: {e}"))?;
            }
            (RecordType::End, Stage::Content) => return Ok(()),
            (RecordType::Time, _) => {}
            _ => return Err(format!("unexpected {kind:?} record")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostfix_queue::QueueReader;
    use rostfix_queue::record::encode;

    fn records(list: &[(RecordType, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, p) in list {
            encode(*k, p, &mut out);
        }
        out
    }

    #[test]
    fn copies_a_maildrop_stream_and_drops_what_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = QueueFile::create(dir.path(), false).unwrap();
        let input = records(&[
            (RecordType::Sender, b"alice"),
            (RecordType::Attr, b"full_name=Alice A"),
            (RecordType::Attr, b"uid=0"),
            (RecordType::Recipient, b"-bob\0bob"),
            (RecordType::Content, b""),
            (RecordType::Line, b"Subject: x"),
            (RecordType::End, &[0; 8]),
        ]);
        copy(&mut &input[..], &mut file, 0).unwrap();
        let path = file.path().to_path_buf();
        file.finish().unwrap();
        let env = QueueReader::envelope(&path).unwrap();
        assert_eq!(env.sender, "alice");
        assert_eq!(env.attrs, vec![("full_name".into(), "Alice A".into())]);
        assert_eq!(env.recipients[0].address, "bob");
    }

    #[test]
    fn refuses_records_out_of_order_and_early_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = QueueFile::create(dir.path(), false).unwrap();
        let out_of_order = records(&[(RecordType::Line, b"x")]);
        assert!(copy(&mut &out_of_order[..], &mut file, 0).is_err());
        let mut file = QueueFile::create(dir.path(), false).unwrap();
        let short = records(&[(RecordType::Sender, b"a"), (RecordType::Content, b"")]);
        assert!(copy(&mut &short[..], &mut file, 0).is_err());
        let done = records(&[(RecordType::Recipient, b"+x\0x")]);
        let mut file = QueueFile::create(dir.path(), false).unwrap();
        file.sender("a");
        assert!(copy(&mut &done[..], &mut file, 0).is_err());
    }
}

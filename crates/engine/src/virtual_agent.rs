//! virtual(8): delivery to virtual mailboxes. The table result, under
//! `virtual_mailbox_base`, is a Maildir when it ends in `/`; the message
//! gets Return-Path, X-Original-To and Delivered-To prepended, is written to
//! `tmp/`, synced, and renamed into `new/` (only then is the recipient
//! done). A result that would leave the base (`..`, absolute paths) is
//! refused: Rostfix never writes outside `virtual_mailbox_base`.
//! (mbox files, uid/gid maps and size limits come with the rest of issue 3.)

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rostfix_maps::order;

use crate::settings::Settings;

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (4.x.x), with the reason.
    Defer(String, String),
    /// Give up (5.x.x), with the reason.
    Bounce(String, String),
}

/// The Maildir (or file) for `recipient`, checked to stay under the base.
fn mailbox(s: &Settings, recipient: &str) -> Result<PathBuf, Failure> {
    let keys = order::address_keys(recipient, &s.order, false);
    let found = match s.virtual_mailbox_maps.find_first(&keys) {
        Ok(Some(f)) => f.value,
        Ok(None) => {
            return Err(Failure::Bounce(
                "5.1.1".into(),
                "unknown user: \"".to_string() + recipient + "\"",
            ));
        }
        Err(e) => {
            return Err(Failure::Defer(
                "4.3.0".into(),
                format!("virtual_mailbox_maps lookup error: {e}"),
            ));
        }
    };
    let rel = Path::new(&found);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Failure::Defer(
            "4.3.0".into(),
            format!("mailbox \"{found}\" would leave virtual_mailbox_base: refused"),
        ));
    }
    let mut path = s.virtual_mailbox_base.join(rel);
    if found.ends_with('/') {
        path.push("");
    }
    Ok(path)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Delivers one message to one recipient. `lines` is the queued content.
pub fn deliver(
    s: &Settings,
    sender: &str,
    recipient: &str,
    original: &str,
    lines: &[Vec<u8>],
) -> Result<String, Failure> {
    let path = mailbox(s, recipient)?;
    let text = path.to_string_lossy();
    if !text.ends_with('/') {
        return Err(Failure::Defer(
            "4.3.0".into(),
            "mailbox files are not supported yet: use a Maildir".into(),
        ));
    }
    let io_fail = |what: &str, e: io::Error| Failure::Defer("4.2.0".into(), format!("{what}: {e}"));
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(path.join(sub)).map_err(|e| io_fail("create maildir", e))?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}.R{}M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_nanos(),
        now.subsec_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        s.myhostname
    );
    let tmp = path.join("tmp").join(&name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_fail("create maildir file", e))?;
    let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 256);
    buf.extend_from_slice(format!("Return-Path: <{sender}>\n").as_bytes());
    buf.extend_from_slice(format!("X-Original-To: {original}\n").as_bytes());
    buf.extend_from_slice(format!("Delivered-To: {recipient}\n").as_bytes());
    for l in lines {
        buf.extend_from_slice(l);
        buf.push(b'\n');
    }
    let written = f.write_all(&buf).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_fail("write maildir file", e));
    }
    fs::rename(&tmp, path.join("new").join(&name))
        .map_err(|e| io_fail("rename maildir file", e))?;
    fs::File::open(path.join("new"))
        .and_then(|d| d.sync_all())
        .map_err(|e| io_fail("sync maildir", e))?;
    Ok("delivered to maildir".to_string())
}

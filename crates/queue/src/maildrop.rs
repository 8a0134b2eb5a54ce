//! Maildrop files: how `sendmail` hands a message to pickup(8).
//!
//! A maildrop file is a queue file (the format of [`crate::file`]) written
//! in `$queue_directory/maildrop` by the submitting user: the sender as
//! given (unqualified, or empty for the null sender), the attributes
//! below, the command-line recipients and the message. It counts only
//! once complete (its end record written and synced); then the writer
//! wakes pickup through the `public/pickup` FIFO, as Postfix's postdrop
//! does. pickup trusts nothing in it but the file's owner: the user ID
//! is the owner's (the `uid` attribute counts only in a file the mail
//! system's own user or root wrote, see pickup).

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::file::QueueFile;
use crate::id::QueueId;
use crate::record::{self, RecordType};

/// The sender's full name (sendmail -F, $NAME, or the password file).
pub const ATTR_FULL_NAME: &str = "full_name";
/// `yes`: recipients are taken from the message headers too (sendmail -t).
pub const ATTR_EXTRACT: &str = "extract_recipients";
/// The submitting user, when root wrote the file for someone.
pub const ATTR_UID: &str = "uid";
/// sendmail -N (NOTIFY for every recipient), -R (RET), -V (ENVID).
pub const ATTR_NOTIFY: &str = "dsn_notify";
pub const ATTR_RET: &str = "dsn_ret";
pub const ATTR_ENVID: &str = "dsn_envid";
/// `yes`: sendmail -bv, a probe: tried, not delivered, and reported.
pub const ATTR_VERIFY: &str = "verify";
/// What postdrop copies from its input (the user ID it never takes).
pub const ATTRS_FROM_USERS: &[&str] = &[
    ATTR_FULL_NAME,
    ATTR_EXTRACT,
    ATTR_NOTIFY,
    ATTR_RET,
    ATTR_ENVID,
    ATTR_VERIFY,
];

/// The maildrop directory and pickup's FIFO under `queue_directory`.
pub const MAILDROP_DIR: &str = "maildrop";
pub const PICKUP_FIFO: &str = "public/pickup";
/// qmgr's FIFO: `F` asks it to deliver all deferred mail now (postqueue
/// -f, sendmail -q), `I ID` one message (postqueue -i).
pub const QMGR_FIFO: &str = "public/qmgr";

/// A message being written into the maildrop: directly, or through
/// `postdrop` (the set-group-ID program that may write there, for a
/// user who may not), as a stream of records it checks and copies.
pub struct MaildropFile {
    inner: Inner,
    id: QueueId,
}

enum Inner {
    File(QueueFile),
    Stream(Box<dyn Write>),
}

impl std::fmt::Debug for MaildropFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaildropFile({})", self.id)
    }
}

/// The envelope of a submission.
#[derive(Debug, Default)]
pub struct Submission<'a> {
    pub sender: &'a str,
    pub full_name: Option<&'a str>,
    pub extract_recipients: bool,
    pub uid: Option<u32>,
    pub recipients: &'a [String],
    /// sendmail -N, -R, -V, as the queue keeps them (see
    /// [`crate::file::Dsn`]); empty when not given.
    pub notify: &'a str,
    pub ret: &'a str,
    pub envid: &'a str,
    /// sendmail -bv.
    pub verify: bool,
}

impl Submission<'_> {
    /// The envelope records, in order.
    fn records(&self, out: &mut Vec<u8>) {
        record::encode(RecordType::Sender, self.sender.as_bytes(), out);
        let mut attr = |name: &str, value: &str| {
            record::encode(RecordType::Attr, format!("{name}={value}").as_bytes(), out);
        };
        if let Some(name) = self.full_name {
            attr(ATTR_FULL_NAME, name);
        }
        if self.extract_recipients {
            attr(ATTR_EXTRACT, "yes");
        }
        if let Some(uid) = self.uid {
            attr(ATTR_UID, &uid.to_string());
        }
        for (name, value) in [
            (ATTR_NOTIFY, self.notify),
            (ATTR_RET, self.ret),
            (ATTR_ENVID, self.envid),
        ] {
            if !value.is_empty() {
                attr(name, value);
            }
        }
        if self.verify {
            attr(ATTR_VERIFY, "yes");
        }
        for r in self.recipients {
            let mut p = Vec::with_capacity(2 * r.len() + 2);
            p.push(crate::record::RCPT_PENDING);
            p.extend_from_slice(r.as_bytes());
            p.push(0);
            p.extend_from_slice(r.as_bytes());
            record::encode(RecordType::Recipient, &p, out);
        }
        record::encode(RecordType::Content, b"", out);
    }
}

impl MaildropFile {
    /// Starts a maildrop file with the envelope of `sub`.
    pub fn create(queue_directory: &Path, sub: &Submission<'_>) -> io::Result<MaildropFile> {
        let mut file = QueueFile::create(&queue_directory.join(MAILDROP_DIR), false)?;
        let mut records = Vec::new();
        sub.records(&mut records);
        file.encoded(&records);
        let id = file.id().clone();
        Ok(MaildropFile {
            inner: Inner::File(file),
            id,
        })
    }

    /// Starts a submission through postdrop: `to` is its standard input,
    /// `id` the queue ID it said it made.
    pub fn through(
        mut to: Box<dyn Write>,
        id: QueueId,
        sub: &Submission<'_>,
    ) -> io::Result<MaildropFile> {
        let mut buf = Vec::new();
        sub.records(&mut buf);
        to.write_all(&buf)?;
        Ok(MaildropFile {
            inner: Inner::Stream(to),
            id,
        })
    }

    /// The file, when written directly.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::File(f) => Some(f.path()),
            Inner::Stream(_) => None,
        }
    }

    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// One line of the message, without its newline.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::File(f) => f.line(line),
            Inner::Stream(w) => {
                let mut buf = Vec::with_capacity(line.len() + record::HEADER_LEN);
                record::encode(RecordType::Line, line, &mut buf);
                w.write_all(&buf)
            }
        }
    }

    /// Completes the file and makes it durable, then wakes pickup (for a
    /// stream, postdrop does both once it has the end record).
    pub fn finish(self, queue_directory: &Path) -> io::Result<QueueId> {
        match self.inner {
            Inner::File(f) => {
                let id = f.finish()?;
                wake_pickup(queue_directory);
                Ok(id)
            }
            Inner::Stream(mut w) => {
                let mut buf = Vec::new();
                record::encode(RecordType::End, &0u64.to_le_bytes(), &mut buf);
                w.write_all(&buf)?;
                w.flush()?;
                Ok(self.id)
            }
        }
    }

    /// Gives up the submission.
    pub fn discard(self) -> io::Result<()> {
        match self.inner {
            Inner::File(f) => f.discard(),
            // postdrop removes its file when the stream ends early.
            Inner::Stream(_) => Ok(()),
        }
    }
}

/// Tells a running pickup to look into the maildrop. Nobody listening
/// (the mail system is down) is no error: pickup scans the maildrop when
/// it starts.
pub fn wake_pickup(queue_directory: &Path) {
    let _ = trigger(&queue_directory.join(PICKUP_FIFO), b"W");
}

/// Writes a request into a service's FIFO without waiting; fails when
/// nobody reads it (ENXIO: the mail system is down).
pub fn trigger(fifo: &Path, request: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(fifo)?;
    f.write_all(request)
}

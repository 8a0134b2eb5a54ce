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

/// The sender's full name (sendmail -F, $NAME, or the password file).
pub const ATTR_FULL_NAME: &str = "full_name";
/// `yes`: recipients are taken from the message headers too (sendmail -t).
pub const ATTR_EXTRACT: &str = "extract_recipients";
/// The submitting user, when root wrote the file for someone.
pub const ATTR_UID: &str = "uid";

/// The maildrop directory and pickup's FIFO under `queue_directory`.
pub const MAILDROP_DIR: &str = "maildrop";
pub const PICKUP_FIFO: &str = "public/pickup";
/// qmgr's FIFO: `F` asks it to deliver all deferred mail now (postqueue
/// -f, sendmail -q), `I ID` one message (postqueue -i).
pub const QMGR_FIFO: &str = "public/qmgr";

/// A message being written into the maildrop.
#[derive(Debug)]
pub struct MaildropFile {
    file: QueueFile,
}

/// The envelope of a submission.
#[derive(Debug, Default)]
pub struct Submission<'a> {
    pub sender: &'a str,
    pub full_name: Option<&'a str>,
    pub extract_recipients: bool,
    pub uid: Option<u32>,
    pub recipients: &'a [String],
}

impl MaildropFile {
    /// Starts a maildrop file with the envelope of `sub`.
    pub fn create(queue_directory: &Path, sub: &Submission<'_>) -> io::Result<MaildropFile> {
        let mut file = QueueFile::create(&queue_directory.join(MAILDROP_DIR), false)?;
        file.sender(sub.sender);
        if let Some(name) = sub.full_name {
            file.attr(ATTR_FULL_NAME, name);
        }
        if sub.extract_recipients {
            file.attr(ATTR_EXTRACT, "yes");
        }
        if let Some(uid) = sub.uid {
            file.attr(ATTR_UID, &uid.to_string());
        }

        for r in sub.recipients {
            file.recipient(r, r);
        }
        file.content();
        Ok(MaildropFile { file })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn id(&self) -> &QueueId {
        self.file.id()
    }

    /// One line of the message, without its newline.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.file.line(line)
    }

    /// Completes the file and makes it durable, then wakes pickup.
    pub fn finish(self, queue_directory: &Path) -> io::Result<QueueId> {
        let id = self.file.finish()?;
        wake_pickup(queue_directory);
        Ok(id)
    }

    /// Gives up the submission.
    pub fn discard(self) -> io::Result<()> {
        self.file.discard()
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

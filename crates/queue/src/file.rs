//! Writing and reading queue files.
//!
//! Durability (DESIGN.md section 4): a file is complete when its end
//! record is written ([`QueueFile::complete`]) and may be answered with
//! 250 only once it and its directory entry are durable: alone
//! ([`QueueFile::finish`]) or, as smtpd does, through the group committer
//! ([`crate::Syncer`]), sharing one sync with every other file finished
//! at the same moment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::id::QueueId;
use crate::record::{self, DecodeError, HEADER_LEN, RCPT_DONE, RCPT_PENDING, RecordType};

/// Size of the end record of a file named `id`: header, an 8-byte
/// length, the name.
fn end_len(id: &str) -> u64 {
    (HEADER_LEN + 8 + id.len()) as u64
}

/// Size of the end record of files written before it held their name.
const OLD_END_LEN: u64 = HEADER_LEN as u64 + 8;

/// The most filler written to end a reused file where the old content
/// ended (saving a truncate); beyond it the file is cut instead.
const MAX_PAD: u64 = 4096;

/// A queue file being written.
#[derive(Debug)]
pub struct QueueFile {
    file: File,
    path: PathBuf,
    id: QueueId,
    buf: Vec<u8>,
    written: u64,
    /// What the file held when taken from the pool: an earlier message,
    /// overwritten.
    prior: u64,
    /// Taken before the first write: what a group commit must vouch
    /// for since ([`crate::Syncer::wait`]).
    since: Instant,
}

impl QueueFile {
    /// Creates a new queue file in `dir` named by its queue ID. The name
    /// is taken with O_EXCL, so an ID is never reused while its file
    /// exists, and the file is made under its final name (no rename).
    pub fn create(dir: &Path, long_ids: bool) -> io::Result<QueueFile> {
        QueueFile::create_reusing(dir, long_ids, None)
    }

    /// [`QueueFile::create`], reusing an empty file from `pool` when it
    /// has one (see [`crate::pool`]).
    pub fn create_reusing(
        dir: &Path,
        long_ids: bool,
        pool: Option<&crate::Pool>,
    ) -> io::Result<QueueFile> {
        QueueFile::create_full(dir, long_ids, pool, 0o600)
    }

    /// [`QueueFile::create`] with a file mode of the caller's: postdrop's
    /// maildrop files must be readable by pickup, which runs as another
    /// user (the maildrop directory keeps everybody else out).
    pub fn create_mode(dir: &Path, mode: u32) -> io::Result<QueueFile> {
        QueueFile::create_full(dir, false, None, mode)
    }

    fn create_full(
        dir: &Path,
        long_ids: bool,
        pool: Option<&crate::Pool>,
        mode: u32,
    ) -> io::Result<QueueFile> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut micros = now.subsec_micros();
        loop {
            let serial = next_serial();
            let id = if long_ids {
                QueueId::long(now.as_secs(), micros, serial)
            } else {
                QueueId::short(micros, serial)
            };
            let path = dir.join(id.as_str());
            let reused = match pool.map(|p| p.take(&path)) {
                Some(Ok(f)) => f,
                Some(Err(e)) if e.kind() == io::ErrorKind::AlreadyExists => {
                    micros = (micros + 1) % 1_000_000;
                    continue;
                }
                Some(Err(_)) | None => None,
            };
            let created = match reused {
                Some(f) => Ok(f),
                None => OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&path)
                    .map(|f| (f, 0)),
            };
            let (file, prior) = match created {
                Ok(f) => f,
                // Taken (another process, or a file from an earlier run):
                // move the time part on and try the next serial.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    micros = (micros + 1) % 1_000_000;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut qf = QueueFile {
                file,
                path,
                id,
                // Enough for most messages, and under the 64 KB whose
                // free makes glibc consolidate the heap (smtpd's content).
                buf: Vec::with_capacity(16 * 1024),
                written: 0,
                prior,
                since: Instant::now(),
            };
            let mut t = now.as_secs().to_le_bytes().to_vec();
            t.extend_from_slice(&now.subsec_micros().to_le_bytes());
            qf.record(RecordType::Time, &t);
            return Ok(qf);
        }
    }

    pub fn id(&self) -> &QueueId {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, kind: RecordType, payload: &[u8]) {
        record::encode(kind, payload, &mut self.buf);
    }

    /// Records encoded already (by [`crate::maildrop`]), appended as they are.
    pub(crate) fn encoded(&mut self, records: &[u8]) {
        self.buf.extend_from_slice(records);
    }

    pub fn sender(&mut self, sender: &str) {
        self.record(RecordType::Sender, sender.as_bytes());
    }

    pub fn attr(&mut self, name: &str, value: &str) {
        let payload = format!("{name}={value}");
        self.record(RecordType::Attr, payload.as_bytes());
    }

    /// A recipient: the address to deliver to and the one the client gave.
    pub fn recipient(&mut self, address: &str, original: &str) {
        self.recipient_dsn(address, original, &Dsn::default());
    }

    /// A recipient with its RFC 3461 parameters.
    pub fn recipient_dsn(&mut self, address: &str, original: &str, dsn: &Dsn) {
        let mut p = Vec::with_capacity(address.len() + original.len() + 2);
        p.push(RCPT_PENDING);
        p.extend_from_slice(address.as_bytes());
        p.push(0);
        p.extend_from_slice(original.as_bytes());
        if !dsn.notify.is_empty() || !dsn.orcpt.is_empty() {
            p.push(0);
            p.extend_from_slice(dsn.notify.as_bytes());
            p.push(0);
            p.extend_from_slice(dsn.orcpt.as_bytes());
        }
        self.record(RecordType::Recipient, &p);
    }

    /// Ends the envelope; content lines follow.
    pub fn content(&mut self) {
        self.record(RecordType::Content, b"");
    }

    /// One content line, without its newline.
    pub fn line(&mut self, line: &[u8]) -> io::Result<()> {
        self.record(RecordType::Line, line);
        if self.buf.len() >= 60 * 1024 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the end record without syncing; the caller syncs (alone with
    /// [`QueueFile::finish`], or many together through a
    /// [`crate::Syncer`]). A file that cannot be completed is removed.
    ///
    /// In a reused file the record lands where the earlier message ended
    /// when filler can put it there (the file keeps its size and blocks),
    /// else the file is cut after it.
    pub fn complete(mut self) -> io::Result<Completed> {
        static ZEROS: [u8; MAX_PAD as usize] = [0; MAX_PAD as usize];
        let end_len = end_len(self.id.as_str());
        let mut total = self.written + self.buf.len() as u64;
        if let Some(gap) = self
            .prior
            .checked_sub(total + end_len)
            .filter(|g| (HEADER_LEN as u64..=MAX_PAD).contains(g))
        {
            self.record(RecordType::Pad, &ZEROS[..gap as usize - HEADER_LEN]);
            total += gap;
        }
        let mut end = total.to_le_bytes().to_vec();
        end.extend_from_slice(self.id.as_str().as_bytes());
        self.record(RecordType::End, &end);
        let done = self.flush().and_then(|()| {
            if self.prior > total + end_len {
                self.file.set_len(total + end_len)
            } else {
                Ok(())
            }
        });
        if let Err(e) = done {
            let _ = fs::remove_file(&self.path);
            return Err(e);
        }
        Ok(Completed {
            file: self.file,
            path: self.path,
            id: self.id,
            since: self.since,
        })
    }

    /// Completes the file and makes it durable, directory entry included.
    /// A file that cannot be made durable is removed: its writer reports
    /// a failure, and its sender will try again.
    pub fn finish(self) -> io::Result<QueueId> {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let done = self.complete()?;
        if let Err(e) = sync_batch(&[&done], &dir) {
            let _ = fs::remove_file(&done.path);
            return Err(e);
        }
        Ok(done.id)
    }

    /// Moves the file, still being written, into queue directory `dir`
    /// under the same name (`hold/`: it is complete only there, so qmgr
    /// never finds it in incoming/).
    pub fn move_into(&mut self, dir: &Path) -> io::Result<()> {
        let to = dir.join(self.id.as_str());
        fs::rename(&self.path, &to)?;
        self.path = to;
        Ok(())
    }

    /// Abandons the file (the message was refused).
    pub fn discard(self) -> io::Result<()> {
        fs::remove_file(&self.path)
    }
}

/// The second part of a queue ID: a counter per process, started from the
/// pid so that processes rarely meet (and O_EXCL settles it when they do).
fn next_serial() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let n = SERIAL.fetch_add(1, Ordering::Relaxed);
    (u64::from(std::process::id()) << 12).wrapping_add(n) & 0xff_ffff
}

/// A complete queue file that may not be durable yet.
#[derive(Debug)]
pub struct Completed {
    pub file: File,
    pub path: PathBuf,
    pub id: QueueId,
    /// When its writing began.
    pub since: Instant,
}

/// Makes complete files durable together: their data, then their names.
pub fn sync_batch(files: &[&Completed], dir: &Path) -> io::Result<()> {
    // The data syncs run side by side so the file system can fold them into
    // one journal commit.
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| s.spawn(|| f.file.sync_data()))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("sync thread panicked")))
        })
    })?;
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        // postdrop may create files in the maildrop but not read the
        // directory: the whole file system then, names included.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match files.first() {
            Some(f) => nix::unistd::syncfs(&f.file).map_err(io::Error::from),
            None => Ok(()),
        },
        Err(e) => Err(e),
    }
}

/// A recipient's delivery status notification parameters (RFC 3461),
/// as the client gave them: `notify` is empty (the default: failures and
/// delays), `never`, or a comma-separated list of `success`, `failure`,
/// `delay`; `orcpt` the ORCPT value (`rfc822;addr`), or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    pub notify: String,
    pub orcpt: String,
}

impl Dsn {
    /// Whether the sender wants to hear of this outcome (`failure`,
    /// `delay`, `success`).
    pub fn wants(&self, what: &str) -> bool {
        if self.notify.is_empty() {
            return what != "success";
        }
        self.notify.split(',').any(|n| n == what)
    }
}

/// A recipient as the envelope holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub original: String,
    pub dsn: Dsn,
    pub done: bool,
    /// Where the status byte is, for [`mark_done`].
    pub status_offset: u64,
}

/// The envelope of a queue file, read without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: QueueId,
    /// Arrival time: seconds and microseconds since the epoch.
    pub time: (u64, u32),
    pub sender: String,
    pub attrs: Vec<(String, String)>,
    pub recipients: Vec<Recipient>,
    /// Offset of the first content record.
    pub content_offset: u64,
    /// Bytes of content (lines with their newlines).
    pub content_size: u64,
}

impl Envelope {
    /// The value of attribute `name`, if the file has it.
    pub fn attr(&self, name: &str) -> Option<&str> {
        attr(&self.attrs, name)
    }
}

/// The value of attribute `name` in `attrs` (an envelope's `name=value`
/// attributes), if there.
pub fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// No valid end record: the file was being written when the system
    /// stopped, and no 250 was given for it.
    #[error("incomplete queue file")]
    Incomplete,
    #[error("corrupt queue file: {0}")]
    Corrupt(String),
}

/// The size Postfix counts for a line of content (qmgr's `size=`, the
/// size column of `postqueue -p`): what the line takes in a Postfix queue
/// file, where a line is a record (a type byte, its length in 7-bit
/// groups, the text without its newline) and a line longer than 2048
/// bytes (line_length_limit's default) is cut into records of 2048. Log
/// tools add these up (pflogsumm's bytes received and delivered), so
/// they count what they would under Postfix.
fn postfix_line_size(len: usize) -> u64 {
    const SEGMENT: usize = 2048;
    let record = |n: usize| {
        let mut groups = 1;
        while n >> (7 * groups) > 0 {
            groups += 1;
        }
        1 + groups + n
    };
    ((len / SEGMENT) * record(SEGMENT) + record(len % SEGMENT)) as u64
}

/// Reads queue files.
#[derive(Debug)]
pub struct QueueReader;

impl QueueReader {
    /// Whether `path` holds a complete queue file.
    pub fn is_complete(path: &Path) -> io::Result<bool> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let mut tail = vec![0u8; len.min(end_len(&name).max(OLD_END_LEN)) as usize];
        f.seek(SeekFrom::Start(len - tail.len() as u64))?;
        f.read_exact(&mut tail)?;
        Ok(ends_complete(&tail, len, &name).is_some())
    }

    /// Reads the envelope (and sizes the content) of a complete file.
    pub fn envelope(path: &Path) -> Result<Envelope, QueueError> {
        Ok(QueueReader::read(path)?.envelope)
    }

    /// Reads a complete file with one read: its envelope, and its content
    /// for [`Queued::lines`].
    pub fn read(path: &Path) -> Result<Queued, QueueError> {
        QueueReader::read_open(path, &mut File::open(path)?)
    }

    /// [`QueueReader::read`] from `file`, the queue file at `path` opened
    /// already (and perhaps locked).
    pub fn read_open(path: &Path, file: &mut File) -> Result<Queued, QueueError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id =
            QueueId::parse(&name).ok_or_else(|| QueueError::Corrupt(format!("bad name {name}")))?;
        let mut data = Vec::with_capacity(file.metadata().map_or(0, |m| m.len() as usize));
        // Through Take: File's own read_to_end asks the size again (statx
        // and lseek, on every message qmgr reads).
        Read::take(&mut *file, u64::MAX).read_to_end(&mut data)?;
        let Some(named) = ends_complete(&data, data.len() as u64, &name) else {
            return Err(QueueError::Incomplete);
        };
        let mut env = Envelope {
            id,
            time: (0, 0),
            sender: String::new(),
            attrs: Vec::new(),
            recipients: Vec::new(),
            content_offset: 0,
            content_size: 0,
        };
        let mut pos = 0usize;
        let mut in_content = false;
        while pos < data.len() {
            let offset = pos as u64;
            let (kind, payload, used) =
                record::decode_borrowed(&data[pos..]).map_err(|e| match e {
                    DecodeError::Truncated => QueueError::Incomplete,
                    DecodeError::BadType(b) => {
                        QueueError::Corrupt(format!("record type {b:#x} at {pos}"))
                    }
                })?;
            pos += used;
            let text = || String::from_utf8_lossy(payload).into_owned();
            match kind {
                RecordType::Time if payload.len() == 12 => {
                    let secs = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
                    let micros = u32::from_le_bytes(payload[8..].try_into().unwrap_or_default());
                    env.time = (secs, micros);
                }
                RecordType::Sender => env.sender = text(),
                RecordType::Attr => {
                    let t = text();
                    let (n, v) = t.split_once('=').unwrap_or((&t, ""));
                    env.attrs.push((n.to_string(), v.to_string()));
                }
                RecordType::Recipient => {
                    let (status, rest) = payload
                        .split_first()
                        .ok_or_else(|| QueueError::Corrupt("empty recipient".into()))?;
                    let t = String::from_utf8_lossy(rest);
                    let mut fields = t.split('\0');
                    let mut next = || fields.next().unwrap_or("").to_string();
                    let (address, original) = (next(), next());
                    let dsn = Dsn {
                        notify: next(),
                        orcpt: next(),
                    };
                    env.recipients.push(Recipient {
                        address,
                        original,
                        dsn,
                        done: *status == RCPT_DONE,
                        status_offset: offset + HEADER_LEN as u64,
                    });
                }
                RecordType::Content => {
                    in_content = true;
                    env.content_offset = pos as u64;
                }
                RecordType::Line if in_content => {
                    env.content_size += postfix_line_size(payload.len())
                }
                RecordType::Pad => {}
                RecordType::End => break,
                _ => {
                    return Err(QueueError::Corrupt(format!(
                        "unexpected {kind:?} record at {offset}"
                    )));
                }
            }
        }
        Ok(Queued {
            envelope: env,
            data,
            named,
        })
    }
}

/// Whether a file of `len` bytes named `name`, ending in `tail`, ends
/// with its end record: the length of what precedes it and the file's
/// name (`Some(true)`). The name is what keeps an earlier message's bytes
/// in a reused file ([`crate::pool`]) from passing for the new one's. A
/// file written before the record held the name (its length alone:
/// `Some(false)`) still counts; the pool never keeps such content
/// ([`Queued::reusable`]).
fn ends_complete(tail: &[u8], len: u64, name: &str) -> Option<bool> {
    let ends_with = |n: u64, payload: &[u8]| {
        n <= tail.len() as u64
            && record::decode_borrowed(&tail[tail.len() - n as usize..]).is_ok_and(
                |(kind, p, used)| kind == RecordType::End && used as u64 == n && p == payload,
            )
    };
    let n = end_len(name);
    let mut named = len.saturating_sub(n).to_le_bytes().to_vec();
    named.extend_from_slice(name.as_bytes());
    if ends_with(n, &named) {
        Some(true)
    } else {
        ends_with(OLD_END_LEN, &len.saturating_sub(OLD_END_LEN).to_le_bytes()).then_some(false)
    }
}

/// A complete queue file in memory.
#[derive(Debug)]
pub struct Queued {
    pub envelope: Envelope,
    data: Vec<u8>,
    /// Its end record names it.
    named: bool,
}

impl Queued {
    /// Whether the file may keep its content in the pool when freed
    /// ([`crate::Pool::free`]): its end record names it (so the content
    /// never passes for the next message's), and it is small.
    pub fn reusable(&self) -> bool {
        self.named && self.data.len() as u64 <= crate::pool::KEEP_MAX
    }

    /// The content lines, each without its newline, borrowed from the
    /// file's bytes. The file was checked complete when read, so only a
    /// corrupt record can end the iteration early (with an error).
    pub fn lines(&self) -> impl Iterator<Item = Result<&[u8], QueueError>> {
        let mut pos = self.envelope.content_offset as usize;
        std::iter::from_fn(move || {
            if pos >= self.data.len() {
                return None;
            }
            let (kind, payload, used) = match record::decode_borrowed(&self.data[pos..]) {
                Ok(r) => r,
                Err(_) => {
                    pos = self.data.len();
                    return Some(Err(QueueError::Incomplete));
                }
            };
            pos += used;
            match kind {
                RecordType::Line => Some(Ok(payload)),
                RecordType::Pad | RecordType::End => {
                    pos = self.data.len();
                    None
                }
                other => {
                    pos = self.data.len();
                    Some(Err(QueueError::Corrupt(format!(
                        "{other:?} record in content"
                    ))))
                }
            }
        })
    }
}

/// Marks a recipient delivered: one byte rewritten in place. The caller
/// syncs the file (alone or in a batch) before it relies on the mark.
pub fn mark_done(file: &File, recipient: &Recipient) -> io::Result<()> {
    file.write_all_at(&[RCPT_DONE], recipient.status_offset)
}

/// Whether `path` still names `file`: a queue file locked after it was
/// opened may have been moved or removed meanwhile (by postsuper, by the
/// qmgr that held the lock, or freed into the pool and taken again).
pub fn still_named(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path)
        .ok()
        .zip(file.metadata().ok())
        .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev())
}

/// Removes incomplete files from a queue directory (after a crash) and
/// returns the complete ones to deliver, oldest name first.
pub fn recover(dir: &Path) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut complete = Vec::new();
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        // The pool's empty files are not messages (crate::pool).
        if crate::pool::is_pooled(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        if !QueueReader::is_complete(&path)? {
            fs::remove_file(&path)?;
            removed.push(path);
        } else {
            complete.push(path);
        }
    }
    complete.sort();
    if !removed.is_empty() {
        File::open(dir)?.sync_all()?;
    }
    Ok((complete, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> QueueId {
        let mut q = QueueFile::create(dir, false).unwrap();
        q.sender("someone@somedomain.org");
        q.attr("client_address", "127.0.0.1");
        q.recipient(
            "d.mazzocchio@kernel-panic.it",
            "d.mazzocchio@kernel-panic.it",
        );
        q.recipient("info@kernel-panic.it", "abuse@kernel-panic.it");
        q.content();
        q.line(b"Subject: Test mail").unwrap();
        q.line(b"").unwrap();
        q.line(b"It works!").unwrap();
        q.finish().unwrap()
    }

    /// Postfix 3.7.11's qmgr logged size=410 for tests/delivery's
    /// maildir-basic message (11 lines, 399 bytes with their newlines),
    /// and size=9522 for it with lines of 5000, 2047 and 2048 bytes added.
    #[test]
    fn content_size_is_postfixs() {
        let lines: Vec<Vec<u8>> = [
            "Received: from client.example (unknown [127.0.0.1])",
            "\tby mail.example.test (Postfix) with ESMTP id 284C599C05A",
            "\tfor <alice@example.test>; Tue, 24 Nov 2026 07:18:29 +0000 (UTC)",
            "From: Sender <sender@example.test>",
            "To: Alice <alice@example.test>",
            "Subject: maildir basic",
            "Message-Id: <20261124071829.284C599C05A@mail.example.test>",
            "Date: Tue, 24 Nov 2026 07:18:29 +0000 (UTC)",
            "",
            "Hello Alice.",
            "This is the body.",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let long = [vec![b'y'; 5000], vec![b'z'; 2047], vec![b'w'; 2048]];
        let dir = tempfile::tempdir().unwrap();
        let size = |lines: &[Vec<u8>]| {
            let mut q = QueueFile::create(dir.path(), false).unwrap();
            q.sender("sender@example.test");
            q.recipient("alice@example.test", "alice@example.test");
            q.content();
            for l in lines {
                q.line(l).unwrap();
            }
            let id = q.finish().unwrap();
            QueueReader::envelope(&dir.path().join(id.as_str()))
                .unwrap()
                .content_size
        };
        assert_eq!(size(&lines), 410);
        assert_eq!(size(&[lines.clone(), long.to_vec()].concat()), 9522);
    }

    #[test]
    fn write_read_mark_done() {
        let dir = tempfile::tempdir().unwrap();
        let id = sample(dir.path());
        let path = dir.path().join(id.as_str());
        assert!(QueueReader::is_complete(&path).unwrap());
        let env = QueueReader::envelope(&path).unwrap();
        assert_eq!(env.id, id);
        assert_eq!(env.sender, "someone@somedomain.org");
        assert_eq!(
            env.attrs,
            [("client_address".to_string(), "127.0.0.1".to_string())]
        );
        assert_eq!(env.recipients.len(), 2);
        assert_eq!(env.recipients[1].original, "abuse@kernel-panic.it");
        // Postfix's count: a short line's record takes one byte more than
        // the line with its newline.
        assert_eq!(
            env.content_size,
            "Subject: Test mail\n\nIt works!\n".len() as u64 + 3
        );
        let queued = QueueReader::read(&path).unwrap();
        let lines: Vec<Vec<u8>> = queued.lines().map(|l| l.unwrap().to_vec()).collect();
        assert_eq!(
            lines,
            [
                b"Subject: Test mail".to_vec(),
                Vec::new(),
                b"It works!".to_vec()
            ]
        );
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        mark_done(&f, &env.recipients[0]).unwrap();
        let env = QueueReader::envelope(&path).unwrap();
        assert!(env.recipients[0].done && !env.recipients[1].done);
        assert!(
            QueueReader::is_complete(&path).unwrap(),
            "marking keeps the file complete"
        );
    }

    #[test]
    fn every_truncation_is_incomplete_and_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let id = sample(dir.path());
        let path = dir.path().join(id.as_str());
        let full = fs::read(&path).unwrap();
        for cut in 0..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            assert!(!QueueReader::is_complete(&path).unwrap(), "cut at {cut}");
            assert!(matches!(
                QueueReader::envelope(&path),
                Err(QueueError::Incomplete)
            ));
        }
        fs::write(&path, &full).unwrap();
        let other = dir.path().join("ABCDEF");
        fs::write(&other, &full[..full.len() / 2]).unwrap();
        let (complete, removed) = recover(dir.path()).unwrap();
        assert_eq!(complete, [path]);
        assert_eq!(removed, [other]);
    }

    /// A queue directory with incoming/ and its pool.
    fn pooled_queue() -> (tempfile::TempDir, PathBuf, crate::Pool) {
        let q = tempfile::tempdir().unwrap();
        let incoming = q.path().join("incoming");
        fs::create_dir(&incoming).unwrap();
        let pool = crate::Pool::new(q.path());
        (q, incoming, pool)
    }

    /// A message of `lines` lines of 70 bytes, through `pool`.
    fn message(dir: &Path, pool: &crate::Pool, lines: usize) -> PathBuf {
        let mut q = QueueFile::create_reusing(dir, false, Some(pool)).unwrap();
        q.sender("s@example.test");
        q.recipient("r@example.test", "r@example.test");
        q.content();
        for i in 0..lines {
            q.line(format!("{i:070}").as_bytes()).unwrap();
        }
        let path = q.path().to_path_buf();
        q.finish().unwrap();
        path
    }

    #[test]
    fn a_reused_file_holds_the_new_message_only() {
        let (_q, incoming, pool) = pooled_queue();
        // Shorter by a little (filler), by more than filler covers (cut),
        // then longer (grown).
        for (before, after) in [(60, 55), (300, 10), (10, 90)] {
            let old = message(&incoming, &pool, before);
            let queued = QueueReader::read(&old).unwrap();
            assert!(queued.reusable());
            pool.free(&old, true).unwrap();
            let new = message(&incoming, &pool, after);
            assert_ne!(old, new);
            assert_eq!(
                fs::read_dir(&incoming).unwrap().count(),
                1,
                "the pooled file was reused"
            );
            assert!(QueueReader::is_complete(&new).unwrap());
            let queued = QueueReader::read(&new).unwrap();
            let lines: Vec<_> = queued.lines().map(|l| l.unwrap().to_vec()).collect();
            let want: Vec<_> = (0..after)
                .map(|i| format!("{i:070}").into_bytes())
                .collect();
            assert_eq!(lines, want, "{before} then {after} lines");
            assert_eq!(queued.envelope.content_size, 72 * after as u64);
            pool.free(&new, true).unwrap();
            let _ = pool.take(&incoming.join("X")).unwrap();
            fs::remove_file(incoming.join("X")).unwrap();
        }
    }

    #[test]
    fn an_earlier_messages_bytes_never_pass_for_a_new_one() {
        let (_q, incoming, pool) = pooled_queue();
        let old = message(&incoming, &pool, 20);
        let old_bytes = fs::read(&old).unwrap();
        pool.free(&old, true).unwrap();
        // Taken, not written yet: the earlier message under the new name
        // (of the same length: only the name itself tells them apart).
        let mut name = old.file_name().unwrap().to_str().unwrap().to_string();
        let last = if name.ends_with('A') { "B" } else { "A" };
        name.replace_range(name.len() - 1.., last);
        let new = incoming.join(name);
        let (_, prior) = pool.take(&new).unwrap().unwrap();
        assert_eq!(prior, old_bytes.len() as u64);
        assert!(!QueueReader::is_complete(&new).unwrap());
        assert!(matches!(
            QueueReader::read(&new),
            Err(QueueError::Incomplete)
        ));
        // Half written over (a crash's mix): still incomplete.
        let mut mixed = old_bytes.clone();
        mixed[..old_bytes.len() / 2].fill(b'L');
        fs::write(&new, &mixed).unwrap();
        assert!(!QueueReader::is_complete(&new).unwrap());
        let (complete, removed) = recover(&incoming).unwrap();
        assert!(complete.is_empty());
        assert_eq!(removed, [new]);
    }

    #[test]
    fn files_without_their_name_in_the_end_record_still_read() {
        // As Rostfix wrote them before the end record named the file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("548D7286");
        let mut data = Vec::new();
        record::encode(RecordType::Time, &[0; 12], &mut data);
        record::encode(RecordType::Sender, b"s@example.test", &mut data);
        record::encode(
            RecordType::Recipient,
            b"-r@example.test\0r@example.test",
            &mut data,
        );
        record::encode(RecordType::Content, b"", &mut data);
        record::encode(RecordType::Line, b"hello", &mut data);
        let len = data.len() as u64;
        record::encode(RecordType::End, &len.to_le_bytes(), &mut data);
        fs::write(&path, &data).unwrap();
        assert!(QueueReader::is_complete(&path).unwrap());
        let queued = QueueReader::read(&path).unwrap();
        assert_eq!(queued.lines().next().unwrap().unwrap(), b"hello");
        assert!(!queued.reusable(), "the pool empties it");
    }

    #[test]
    fn ids_are_unique_for_many_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let q = QueueFile::create(dir.path(), false).unwrap();
            assert!(seen.insert(q.id().clone()));
        }
    }
}

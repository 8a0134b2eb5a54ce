//! Appending to an mbox file, as virtual(8) does for a mailbox path
//! without a trailing `/` (and local(8) will for the mail spool): the
//! `From sender  date` line, `>From ` quoting, a blank line at the end,
//! under the locks `*_mailbox_lock` names, made durable before the locks
//! are released, and cut back to its old size when anything fails, so a
//! reader never sees half a message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rostfix_config::io_text;
use rostfix_message::date;

use rostfix_queue::Syncer;

/// The locks to take (`virtual_mailbox_lock`, `mailbox_delivery_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockMethods {
    pub fcntl: bool,
    pub flock: bool,
    pub dotlock: bool,
}

impl LockMethods {
    /// Parses a lock list (`fcntl, dotlock`); `Err` names the bad word.
    pub fn parse(list: &[String]) -> Result<LockMethods, String> {
        let mut m = LockMethods::default();
        for word in list {
            match word.as_str() {
                "fcntl" => m.fcntl = true,
                "flock" => m.flock = true,
                "dotlock" => m.dotlock = true,
                other => return Err(format!("unknown lock method: {other}")),
            }
        }
        Ok(m)
    }
}

/// How long to keep trying for a lock, and when a dot-lock is stale.
#[derive(Debug, Clone, Copy)]
pub struct Locking {
    pub methods: LockMethods,
    /// deliver_lock_attempts
    pub attempts: u32,
    /// deliver_lock_delay
    pub delay: Duration,
    /// stale_lock_time
    pub stale: Duration,
}

/// Why an append failed: the reason text for the log, and whether the
/// mailbox hit its size limit (EFBIG: 5.2.2, mailbox full) or the error
/// is worth another try later.
#[derive(Debug)]
pub struct AppendError {
    pub full: bool,
    /// A lock that is busy, or a file handle gone stale: worth a retry.
    pub retry: bool,
    pub text: String,
}

/// One message for an mbox file.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The envelope sender (`From sender`).
    pub sender: &'a str,
    /// The prepended headers, lines ending in `\n`.
    pub prefix: &'a [u8],
    /// The queued content, lines ending in `\n`.
    pub body: &'a [u8],
}

/// Appends `entry` to the mbox at `path`, which must belong to `owner`
/// (a uid) when one is given. `limit` (bytes, 0 = none) caps the file's
/// size, as Postfix's RLIMIT_FSIZE does. Returns, with the open mailbox, when the message is on stable
/// storage.
pub fn append(
    path: &Path,
    entry: &Entry,
    owner: Option<u32>,
    limit: u64,
    locking: &Locking,
    syncer: &Syncer,
) -> Result<File, AppendError> {
    let fail = |what: &str, e: io::Error| AppendError {
        full: e.raw_os_error() == Some(libc::EFBIG),
        // A busy lock, a stale handle, or a file system that is full:
        // none of them the mailbox's fault, all worth a retry.
        retry: matches!(
            e.raw_os_error(),
            Some(libc::EAGAIN | libc::ESTALE | libc::EDEADLK | libc::ENOSPC)
        ) || e.kind() == io::ErrorKind::WouldBlock,
        text: format!("{what}: {}", io_text(&e)),
    };
    let _dotlock = if locking.methods.dotlock {
        let lock = DotLock::path(path);
        let taken = DotLock::take(&lock, locking);
        Some(
            taken
                .map_err(|e| fail(&format!("unable to create lock file {}", lock.display()), e))?,
        )
    } else {
        None
    };
    // Never through a symbolic link, never blocked on a FIFO: the file
    // must be a plain file with one name, owned by the mailbox's owner
    // (who may have put anything at that path).
    let open_fail = |e| fail(&format!("cannot open file {}", path.display()), e);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(open_fail)?;
    let meta = f.metadata().map_err(open_fail)?;
    let unsafe_file = if !meta.file_type().is_file() {
        Some("not a regular file")
    } else if meta.nlink() != 1 {
        Some("file has more than one hard link")
    } else if owner.is_some_and(|uid| meta.uid() != uid) {
        Some("file has the wrong owner")
    } else {
        None
    };
    if let Some(why) = unsafe_file {
        return Err(AppendError {
            full: false,
            retry: false,
            text: format!("cannot open file {}: {why}", path.display()),
        });
    }
    kernel_lock(&f, locking).map_err(|e| fail("unable to lock for exclusive access", e))?;
    let start = f
        .seek(SeekFrom::End(0))
        .map_err(|e| fail("cannot seek mailbox", e))?;
    let mut buf = Vec::with_capacity(entry.prefix.len() + entry.body.len() + 128);
    let from = if entry.sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        entry.sender
    };
    // The delivery time, as Postfix writes it.
    let date = date::asctime(&date::local(date::now()));
    buf.extend_from_slice(format!("From {from}  {date}\n").as_bytes());
    buf.extend_from_slice(entry.prefix);
    quote_from(entry.body, &mut buf);
    if !buf.ends_with(b"\n") {
        buf.push(b'\n');
    }
    buf.push(b'\n');
    let written = if limit > 0 && start + buf.len() as u64 > limit {
        Err(io::Error::from_raw_os_error(libc::EFBIG))
    } else {
        let since = std::time::Instant::now();
        f.write_all(&buf).and_then(|()| syncer.wait(&f, since))
    };
    if let Err(e) = written {
        // Cut the partial message off again; what was there stays.
        let _ = f.set_len(start);
        return Err(fail("error writing message", e));
    }
    Ok(f)
}

/// Copies `body`, quoting each line that begins with `From ` as `>From `.
fn quote_from(body: &[u8], out: &mut Vec<u8>) {
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
}

/// Takes the fcntl and/or flock locks on an open mailbox, trying
/// `attempts` times `delay` apart. They go with the descriptor.
fn kernel_lock(f: &File, locking: &Locking) -> io::Result<()> {
    let fd = f.as_raw_fd();
    let mut tries = 0;
    loop {
        let mut got = Ok(());
        if locking.methods.fcntl {
            let lock = libc::flock {
                l_type: libc::F_WRLCK as libc::c_short,
                l_whence: libc::SEEK_SET as libc::c_short,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            // SAFETY: fd is open for the whole call (borrowed from `f`),
            // and `lock` is a valid, initialized struct flock that
            // F_SETLK only reads.
            if unsafe { libc::fcntl(fd, libc::F_SETLK, &lock) } < 0 {
                got = Err(io::Error::last_os_error());
            }
        }
        if got.is_ok() && locking.methods.flock {
            // SAFETY: fd is open for the whole call; flock touches no
            // memory.
            if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } < 0 {
                got = Err(io::Error::last_os_error());
            }
        }
        match got {
            Ok(()) => return Ok(()),
            Err(e) if tries + 1 >= locking.attempts.max(1) => return Err(e),
            Err(_) => {
                tries += 1;
                std::thread::sleep(locking.delay);
            }
        }
    }
}

/// `MAILBOX.lock`, made with O_EXCL and removed when dropped; one older
/// than stale_lock_time is taken to be left over from a crash.
struct DotLock(PathBuf);

impl DotLock {
    fn path(mailbox: &Path) -> PathBuf {
        let mut name = mailbox.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    fn take(path: &Path, locking: &Locking) -> io::Result<DotLock> {
        let mut tries = 0;
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => return Ok(DotLock(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::symlink_metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > locking.stale);
                    if stale {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    tries += 1;
                    if tries >= locking.attempts.max(1) {
                        return Err(e);
                    }
                    std::thread::sleep(locking.delay);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(sender: &'a str, prefix: &'a [u8], body: &'a [u8]) -> Entry<'a> {
        Entry {
            sender,
            prefix,
            body,
        }
    }

    fn locking() -> Locking {
        Locking {
            methods: LockMethods::parse(&["fcntl".into(), "dotlock".into()]).unwrap(),
            attempts: 2,
            delay: Duration::from_millis(10),
            stale: Duration::from_secs(500),
        }
    }

    #[test]
    fn appends_quoted_with_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("u");
        let syncer = Syncer::start().unwrap();
        let body = b"Subject: x\n\nFrom here\n>From there\nend\n";
        let first = entry("a@b", b"Return-Path: <a@b>\n", body);
        append(&mbox, &first, None, 0, &locking(), &syncer).unwrap();
        append(&mbox, &entry("", b"", b"x\n"), None, 0, &locking(), &syncer).unwrap();
        let text = String::from_utf8(fs::read(&mbox).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("From a@b  "), "{text}");
        assert_eq!(
            lines[1..7],
            [
                "Return-Path: <a@b>",
                "Subject: x",
                "",
                ">From here",
                ">From there",
                "end"
            ]
        );
        assert_eq!(lines[7], "");
        assert!(lines[8].starts_with("From MAILER-DAEMON  "), "{text}");
        assert!(text.ends_with("x\n\n"));
        assert!(!dir.path().join("u.lock").exists());
    }

    #[test]
    fn over_the_limit_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("u");
        fs::write(&mbox, b"old\n").unwrap();
        let syncer = Syncer::start().unwrap();
        let err = append(
            &mbox,
            &entry("a@b", b"", &[b'x'; 100]),
            None,
            50,
            &locking(),
            &syncer,
        )
        .unwrap_err();
        assert!(err.full);
        assert_eq!(fs::read(&mbox).unwrap(), b"old\n");
    }

    #[test]
    fn a_fifo_or_a_second_link_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let syncer = Syncer::start().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = append(
            &fifo,
            &entry("a@b", b"", b"x\n"),
            None,
            0,
            &locking(),
            &syncer,
        );
        // Without a reader, opening it for writing fails (ENXIO); with
        // one, it is not a regular file. Either way: at once.
        assert!(err.unwrap_err().text.starts_with("cannot open file "));
        let linked = dir.path().join("linked");
        fs::write(&linked, b"").unwrap();
        fs::hard_link(&linked, dir.path().join("other")).unwrap();
        let err = append(
            &linked,
            &entry("a@b", b"", b"x\n"),
            None,
            0,
            &locking(),
            &syncer,
        );
        assert!(err.unwrap_err().text.ends_with("more than one hard link"));
    }

    #[test]
    fn a_held_dotlock_is_waited_for_then_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("u");
        fs::write(dir.path().join("u.lock"), b"").unwrap();
        let syncer = Syncer::start().unwrap();
        let err = append(
            &mbox,
            &entry("a@b", b"", b"x\n"),
            None,
            0,
            &locking(),
            &syncer,
        )
        .unwrap_err();
        assert!(!err.full);
        assert!(
            err.text.starts_with("unable to create lock file "),
            "{}",
            err.text
        );
        assert!(err.text.ends_with("u.lock: File exists"), "{}", err.text);
    }
}

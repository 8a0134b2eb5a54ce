//! virtual(8): delivery to virtual mailboxes. The table result, under
//! `virtual_mailbox_base`, is a Maildir when it ends in `/`; the message
//! gets Return-Path, X-Original-To and Delivered-To prepended, is written
//! to a file that has no name yet (or, where the file system cannot do
//! that, to `tmp/`), synced, named in `new/`, and the name synced (only
//! then is the recipient done); the syncs are group commits that qmgr
//! shares among all deliveries under way. Any other result is an mbox file
//! ([`crate::mbox`]), capped at `virtual_mailbox_limit`. A result that
//! would leave the base (`..`, absolute paths) is refused: Rostfix never
//! writes outside `virtual_mailbox_base`. Run as root, each delivery
//! writes as the mailbox's owner from virtual_uid_maps/virtual_gid_maps
//! (at least virtual_minimum_uid).
//! As in Postfix, virtual(8) makes no Delivered-To loop check (local(8)
//! does): loops through virtual mailboxes need another hop, where the
//! hop count stops them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rostfix_maps::order;

use rostfix_queue::Syncer;

use crate::mbox;
use crate::settings::Settings;

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later (4.x.x), with the reason.
    Defer(String, String),
    /// Give up (5.x.x), with the reason.
    Bounce(String, String),
    /// Give up, with the reason logged and the text the DSN reports as
    /// its `x-unix;` diagnostic (a mailbox file that is full reports an
    /// I/O error; a command, its exit status or output).
    BounceUnix(String, String, String),
    /// The next hop refused (or deferred: a 4.x.x code), with the reason
    /// logged, the server's name and its reply (the notification's
    /// Remote-MTA and `smtp;` diagnostic).
    Remote {
        dsn: String,
        why: String,
        mta: String,
        reply: String,
    },
}

impl Failure {
    /// The Diagnostic-Code of a bounce's delivery status.
    pub fn diagnostic(&self) -> String {
        match self {
            Failure::BounceUnix(_, _, text) => format!("x-unix; {text}"),
            Failure::Defer(_, why) | Failure::Bounce(_, why) => format!("X-Postfix; {why}"),
            Failure::Remote { reply, .. } => format!("smtp; {reply}"),
        }
    }

    /// The status code and the reason.
    pub fn parts(&self) -> (&str, &str) {
        match self {
            Failure::Defer(dsn, why)
            | Failure::Bounce(dsn, why)
            | Failure::BounceUnix(dsn, why, _)
            | Failure::Remote { dsn, why, .. } => (dsn, why),
        }
    }

    /// Whether the recipient is to be tried again later.
    pub fn is_temporary(&self) -> bool {
        match self {
            Failure::Defer(..) => true,
            Failure::Remote { dsn, .. } => dsn.starts_with('4'),
            _ => false,
        }
    }

    /// The next hop's name, for the notification's Remote-MTA field.
    pub fn remote_mta(&self) -> Option<&str> {
        match self {
            Failure::Remote { mta, .. } => Some(mta),
            _ => None,
        }
    }
}

/// What delivery to `recipient` would do (sendmail -bv), without doing it.
pub fn would_deliver(s: &Settings, recipient: &str) -> Result<String, Failure> {
    let path = mailbox(s, recipient)?;
    Ok(mailbox_kind(&path).to_string())
}

/// `delivers to maildir` or `delivers to mailbox`, by the path's form.
pub(crate) fn mailbox_kind(path: &Path) -> &'static str {
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        "delivers to maildir"
    } else {
        "delivers to mailbox"
    }
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

/// The uid and gid `recipient`'s mailbox is written as, from
/// virtual_uid_maps and virtual_gid_maps; a uid below
/// virtual_minimum_uid (root's above all) is a configuration error and
/// the mail waits.
fn owner(s: &Settings, recipient: &str) -> Result<(u32, u32), Failure> {
    let keys = order::address_keys(recipient, &s.order, false);
    let id = |maps: &rostfix_maps::order::Maps, name: &str| -> Result<u32, Failure> {
        let broken = |why: String| {
            Failure::Defer(
                "4.3.5".into(),
                format!("mail system configuration error: {name}: {why}"),
            )
        };
        match maps.find_first(&keys) {
            Ok(Some(f)) => f
                .value
                .trim()
                .parse()
                .map_err(|_| broken(format!("bad result \"{}\" for {recipient}", f.value))),
            Ok(None) => Err(broken(format!("no result for {recipient}"))),
            Err(e) => Err(Failure::Defer(
                "4.3.0".into(),
                format!("{name} lookup error: {e}"),
            )),
        }
    };
    let uid = id(&s.virtual_uid_maps, "virtual_uid_maps")?;
    let gid = id(&s.virtual_gid_maps, "virtual_gid_maps")?;
    if uid < s.virtual_minimum_uid {
        return Err(Failure::Defer(
            "4.3.5".into(),
            format!(
                "mail system configuration error: virtual_uid_maps: uid {uid} for {recipient} is below virtual_minimum_uid {}",
                s.virtual_minimum_uid
            ),
        ));
    }
    Ok((uid, gid))
}

/// The delivering thread's file-system identity, switched for one
/// delivery and switched back (to root) when dropped. Linux keeps the
/// fsuid and fsgid per thread, so the other threads of the process keep
/// theirs; only file access checks and the owner of created files change.
pub(crate) struct FsIdentity;

impl FsIdentity {
    pub(crate) fn switch(uid: u32, gid: u32) -> Result<FsIdentity, Failure> {
        // SAFETY: setfsgid/setfsuid change only this thread's file-system
        // credentials; they touch no memory. The second call of each
        // returns the value now in force, which proves the switch.
        let ok = unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
            libc::setfsgid(gid) as u32 == gid && libc::setfsuid(uid) as u32 == uid
        };
        let identity = FsIdentity;
        if ok {
            Ok(identity)
        } else {
            Err(Failure::Defer(
                "4.3.0".into(),
                format!("cannot write as uid {uid} gid {gid}"),
            ))
        }
    }
}

impl FsIdentity {
    /// [`FsIdentity::switch`] to `owner` when there is one (a process
    /// that may not change identity writes as itself).
    pub(crate) fn maybe(owner: Option<(u32, u32)>) -> Result<Option<FsIdentity>, Failure> {
        owner
            .map(|(uid, gid)| FsIdentity::switch(uid, gid))
            .transpose()
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: as in `switch`; back to the process's own identity.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A delivery whose data is written but not yet durable. After a group
/// commit covering `file`, [`Written::publish`] names it in the mailbox;
/// after the next one the recipient is done.
#[derive(Debug)]
pub struct Written {
    pub file: fs::File,
    /// What the log says (`delivered to maildir`).
    pub what: &'static str,
    /// How the file gets its name in the mailbox.
    naming: Naming,
    /// The mailbox owner the naming runs as (when privileged).
    owner: Option<(u32, u32)>,
}

/// How a written file is named in the mailbox.
#[derive(Debug)]
enum Naming {
    /// An mbox file: in place, and durable, already.
    InPlace,
    /// A Maildir file without a name (O_TMPFILE in new/), linked there
    /// under this name.
    Link(PathBuf),
    /// A Maildir file in tmp/, renamed into new/ (where the file system
    /// has no O_TMPFILE).
    Rename(PathBuf, PathBuf),
}

impl Written {
    /// Whether the file waits for [`Written::publish`] (a Maildir file);
    /// an mbox delivery is complete and durable.
    pub fn unpublished(&self) -> bool {
        !matches!(self.naming, Naming::InPlace)
    }

    /// Makes the (durable) message visible: a Maildir file gets its name
    /// in new/, where readers see it. This runs as the mailbox's owner,
    /// as the write did: the owner controls the Maildir, and root must
    /// not follow what it points to. Returns whether a name changed,
    /// which becomes durable with the next group commit.
    pub fn publish(&self) -> Result<bool, Failure> {
        if let Naming::InPlace = self.naming {
            return Ok(false);
        }
        let _identity = FsIdentity::maybe(self.owner)?;
        match &self.naming {
            Naming::InPlace => Ok(false),
            // The file's own /proc link names it: linkat(AT_EMPTY_PATH)
            // would need a capability that a switched fsuid drops.
            Naming::Link(new) => nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                format!("/proc/self/fd/{}", self.file.as_raw_fd()).as_str(),
                nix::fcntl::AT_FDCWD,
                new.as_path(),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map(|()| true)
            .map_err(|e| {
                // Refused (a security module guarding /proc, say): this
                // delivery is tried again, and from now on through tmp/.
                UNNAMED_REFUSED.store(true, Ordering::Relaxed);
                Failure::Defer("4.2.0".into(), format!("link maildir file: {e}"))
            }),
            Naming::Rename(tmp, new) => fs::rename(tmp, new).map(|()| true).map_err(|e| {
                let _ = fs::remove_file(tmp);
                Failure::Defer("4.2.0".into(), format!("rename maildir file: {e}"))
            }),
        }
    }
}

/// A file without a name could not be named: Maildir files go through
/// tmp/ from then on.
static UNNAMED_REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether a file without a name can be named through /proc (not in a
/// chroot without /proc, say).
fn can_link_unnamed() -> bool {
    static PROC: OnceLock<bool> = OnceLock::new();
    !UNNAMED_REFUSED.load(Ordering::Relaxed)
        && *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Opens a Maildir file for writing: a file without a name in new/ where
/// the file system makes one (O_TMPFILE), else a new file in tmp/.
/// Naming the first takes a link in one directory; the second, a rename
/// between two, which on Linux holds a lock of the whole file system and
/// so waits for every other such rename (the queue's own among them).
fn open_maildir_file(
    maildir: &Path,
    tmp: impl FnOnce() -> PathBuf,
) -> io::Result<(fs::File, Option<PathBuf>)> {
    if can_link_unnamed() {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(maildir.join("new"))
        {
            Ok(f) => return Ok((f, None)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
            // No O_TMPFILE on this file system (or kernel): tmp/.
            Err(_) => {}
        }
    }
    let tmp = tmp();
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map(|f| (f, Some(tmp)))
}

/// The message as queued.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub sender: &'a str,
    /// The queue file's attributes (client_address, helo_name, ...).
    pub attrs: &'a [(String, String)],
    /// The content, lines ending in `\n`.
    pub body: &'a [u8],
}

/// Writes one message for one recipient. A Maildir file is written and
/// not waited for: the caller makes it durable in a group commit and then
/// calls [`Written::publish`]. An mbox file is appended under its locks
/// and is durable when this returns.
pub fn deliver(
    s: &Settings,
    syncer: &Syncer,
    m: &Message,
    recipient: &str,
    original: &str,
) -> Result<Written, Failure> {
    let path = mailbox(s, recipient)?;
    // Written as the mailbox's owner; an unprivileged process writes as
    // itself.
    let owner = if s.privileged {
        Some(owner(s, recipient)?)
    } else {
        None
    };
    let _identity = FsIdentity::maybe(owner)?;
    let prefix = prepended(m.sender, original, recipient);
    let mailbox = Mailbox {
        user: None,
        path: &path,
        owner,
        limit: s.virtual_mailbox_limit,
        lock: &s.virtual_mailbox_lock,
    };
    store(s, syncer, &mailbox, m, &prefix)
}

/// The headers a delivery agent puts on top: Return-Path, X-Original-To
/// (the address the client gave), Delivered-To (the final address).
pub fn prepended(sender: &str, original: &str, recipient: &str) -> Vec<u8> {
    format!("Return-Path: <{sender}>\nX-Original-To: {original}\nDelivered-To: {recipient}\n")
        .into_bytes()
}

/// Where a message is stored, and how.
#[derive(Debug)]
pub struct Mailbox<'a> {
    /// A Maildir when it ends in `/`, else an mbox file.
    pub path: &'a Path,
    /// The user local(8) delivers for (None: virtual(8)), for its wording
    /// of a failure.
    pub user: Option<&'a str>,
    /// The owner written as (when privileged); the caller has switched
    /// to it already.
    pub owner: Option<(u32, u32)>,
    /// Size limit of an mbox file (0: none).
    pub limit: u64,
    pub lock: &'a mbox::Locking,
}

/// Stores `prefix` and the message in `mailbox`: an mbox file is appended
/// to (and durable), a Maildir file written without a name (or into tmp/)
/// to be made durable and published by the caller.
pub fn store(
    s: &Settings,
    syncer: &Syncer,
    mailbox: &Mailbox,
    m: &Message,
    prefix: &[u8],
) -> Result<Written, Failure> {
    let (path, owner) = (mailbox.path, mailbox.owner);
    if !path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        let entry = mbox::Entry {
            sender: m.sender,
            prefix,
            body: m.body,
        };
        return mbox::append(
            path,
            &entry,
            owner.map(|(uid, _)| uid),
            mailbox.limit,
            mailbox.lock,
            syncer,
        )
        .map(|file| Written {
            file,
            what: "delivered to mailbox",
            naming: Naming::InPlace,
            owner,
        })
        .map_err(|e| match mailbox.user {
            // local(8) words it its own way, and gives up unless the
            // mailbox was only busy.
            Some(user) => {
                let text = format!(
                    "cannot update mailbox {} for user {user}. {}",
                    path.display(),
                    e.text
                );
                if e.full {
                    Failure::BounceUnix("5.2.2".into(), text, "input/output error".into())
                } else if e.retry {
                    Failure::Defer("4.2.0".into(), text)
                } else {
                    Failure::Bounce("5.2.0".into(), text)
                }
            }
            None => {
                let text = format!("delivery failed to mailbox {}: {}", path.display(), e.text);
                if e.full {
                    Failure::BounceUnix("5.2.2".into(), text, "input/output error".into())
                } else {
                    Failure::Defer("4.2.0".into(), text)
                }
            }
        });
    }
    let io_fail = |what: &str, e: io::Error| Failure::Defer("4.2.0".into(), format!("{what}: {e}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Names as Postfix makes them: `time.Ppid.host` in tmp/ (a serial
    // added, as one process delivers many at once), and the unique
    // `time.VdevIino.Mmicros.host` in new/.
    // Named only when the file goes through tmp/.
    let tmp = || {
        path.join("tmp").join(format!(
            "{}.P{}Q{}.{}",
            now.as_secs(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            s.maildir_host
        ))
    };
    let create = || open_maildir_file(path, tmp);
    // The Maildir is made on first delivery, not checked on every one.
    // tmp/ comes last: a delivery running beside the first one can write
    // into tmp/ as soon as it exists, and its rename needs new/ (a file
    // without a name needs only new/).
    let (mut f, in_tmp) = match create() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            for sub in ["cur", "new", "tmp"] {
                // Private to the mailbox's owner, as Postfix makes them.
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path.join(sub))
                    .map_err(|e| io_fail("create maildir", e))?;
            }
            create()
        }
        other => other,
    }
    .map_err(|e| io_fail("create maildir file", e))?;
    let mut buf = Vec::with_capacity(m.body.len() + prefix.len());
    buf.extend_from_slice(prefix);
    buf.extend_from_slice(m.body);
    if let Err(e) = f.write_all(&buf) {
        if let Some(tmp) = &in_tmp {
            let _ = fs::remove_file(tmp);
        }
        return Err(io_fail("write maildir file", e));
    }
    let meta = f.metadata().map_err(|e| io_fail("stat maildir file", e))?;
    let name = format!(
        "{}.V{:x}I{:x}M{}.{}",
        now.as_secs(),
        meta.dev(),
        meta.ino(),
        now.subsec_micros(),
        s.maildir_host
    );
    let new = path.join("new").join(name);
    Ok(Written {
        file: f,
        what: "delivered to maildir",
        naming: match in_tmp {
            Some(tmp) => Naming::Rename(tmp, new),
            None => Naming::Link(new),
        },
        owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deliveries racing into a Maildir that does not exist yet all land:
    /// none may find tmp/ made while new/ is still missing.
    #[test]
    fn first_deliveries_race_to_make_the_maildir() {
        race_into_new_maildirs();
    }

    /// The same through tmp/ and a rename, as where a file without a name
    /// cannot be made or named. (Other tests of this binary may take this
    /// way too from then on: both are correct.)
    #[test]
    fn first_deliveries_race_through_tmp() {
        UNNAMED_REFUSED.store(true, Ordering::Relaxed);
        race_into_new_maildirs();
    }

    fn race_into_new_maildirs() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("main.cf"), "").unwrap();
        let cf = rostfix_config::Config::load(Some(dir.path())).unwrap();
        let s = Settings::resolve(&cf).unwrap();
        let syncer = Syncer::start().unwrap();
        let lock = mbox::Locking {
            methods: mbox::LockMethods::default(),
            attempts: 1,
            delay: std::time::Duration::from_secs(1),
            stale: std::time::Duration::from_secs(500),
        };
        for round in 0..50 {
            let path = dir.path().join(format!("box{round}/"));
            std::thread::scope(|t| {
                for _ in 0..8 {
                    t.spawn(|| {
                        let mailbox = Mailbox {
                            path: &path,
                            user: None,
                            owner: None,
                            limit: 0,
                            lock: &lock,
                        };
                        let m = Message {
                            sender: "s@example.test",
                            attrs: &[],
                            body: b"Subject: x\n\nx\n",
                        };
                        let written = store(&s, &syncer, &mailbox, &m, b"").ok().unwrap();
                        assert!(written.publish().ok().unwrap());
                    });
                }
            });
            let new: Vec<_> = fs::read_dir(path.join("new")).unwrap().collect();
            assert_eq!(new.len(), 8);
            for f in new {
                assert_eq!(fs::read(f.unwrap().path()).unwrap(), b"Subject: x\n\nx\n");
            }
            assert_eq!(fs::read_dir(path.join("tmp")).unwrap().count(), 0);
        }
    }
}

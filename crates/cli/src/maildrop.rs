//! How sendmail (and `sendmail -bs`) reaches the maildrop: directly when
//! it may write there (root, or the mail system's own user), else through
//! postdrop(1), the set-group-ID program that may (Postfix's
//! `setgid_group` model: maildrop is mode 1730, group postdrop).
//!
//! postdrop's protocol: it creates the file, prints its queue ID on a
//! line of its own, then reads the records of [`rostfix_queue::maildrop`]
//! on its standard input up to the end record, and exits 0 once the file
//! is on stable storage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rostfix_config::Config;
use rostfix_queue::QueueId;
use rostfix_queue::maildrop::{MaildropFile, Submission};

/// A submission under way.
#[derive(Debug)]
pub struct Drop {
    file: MaildropFile,
    postdrop: Option<Child>,
}

/// Starts a maildrop file for `sub`.
pub fn open(cf: &Config, queue_directory: &Path, sub: &Submission<'_>) -> Result<Drop, String> {
    match MaildropFile::create(queue_directory, sub) {
        Ok(file) => {
            // Given away at once: pickup, finding it unfinished, must be
            // able to read it and wait, not set it aside.
            if let (Some((uid, gid)), Some(path)) = (handed_to(cf), file.path()) {
                let path = path.to_path_buf();
                if let Err(e) = nix::unistd::chown(&path, Some(uid), Some(gid)) {
                    let _ = file.discard();
                    return Err(format!("chown {}: {e}", path.display()));
                }
            }
            Ok(Drop {
                file,
                postdrop: None,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => through_postdrop(cf, sub),
        Err(e) => Err(format!(
            "cannot create a file in {}/maildrop: {e}",
            queue_directory.display()
        )),
    }
}

/// A file root writes goes to the mail system's user, whose pickup must
/// read it (the user ID travels in the file).
fn handed_to(cf: &Config) -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let owner = cf.string("mail_owner").ok()?;
    let u = nix::unistd::User::from_name(&owner).ok()??;
    Some((u.uid, u.gid))
}

/// postdrop beside this program, else in command_directory.
fn postdrop_path(cf: &Config) -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("postdrop"));
    match beside {
        Some(p) if p.exists() => p,
        _ => PathBuf::from(cf.string("command_directory").unwrap_or_default()).join("postdrop"),
    }
}

fn through_postdrop(cf: &Config, sub: &Submission<'_>) -> Result<Drop, String> {
    let path = postdrop_path(cf);
    let mut cmd = Command::new(&path);
    cmd.arg("-c")
        .arg(&cf.config_directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("unable to execute {}: {e}", path.display()))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let Some(id) = QueueId::parse(line.trim()) else {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!("{}: {status}", path.display()));
    };
    let stdin = child.stdin.take().ok_or("postdrop: no input")?;
    let file = MaildropFile::through(Box::new(std::io::BufWriter::new(stdin)), id, sub)
        .map_err(|e| format!("postdrop: {e}"))?;
    Ok(Drop {
        file,
        postdrop: Some(child),
    })
}

impl Drop {
    pub fn id(&self) -> &QueueId {
        self.file.id()
    }

    pub fn line(&mut self, line: &[u8]) -> Result<(), String> {
        self.file
            .line(line)
            .map_err(|e| format!("queue file write error: {e}"))
    }

    /// Completes the file, durably.
    pub fn finish(self, queue_directory: &Path) -> Result<QueueId, String> {
        let id = self
            .file
            .finish(queue_directory)
            .map_err(|e| format!("queue file write error: {e}"))?;
        if let Some(mut child) = self.postdrop {
            let status = child.wait().map_err(|e| format!("postdrop: {e}"))?;
            if !status.success() {
                return Err(format!("postdrop {status}"));
            }
        }
        Ok(id)
    }

    /// Gives up the submission (postdrop, seeing its input end early,
    /// removes its file).
    pub fn discard(self) {
        let _ = self.file.discard();
        if let Some(mut child) = self.postdrop {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

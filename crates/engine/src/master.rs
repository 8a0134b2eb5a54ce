//! master(8): the process `postfix start` leaves running (DESIGN.md
//! section 2). It holds the pid file's lock and the listening sockets,
//! starts two children and restarts either when it dies:
//!
//! * **smtpd**: the network-facing side (smtpd, cleanup, the queue's
//!   group commit). Started as root, it drops to `mail_owner` before it
//!   reads a byte from the network.
//! * **qmgr**: qmgr and the delivery agents. It keeps root's uid (when
//!   started as root) so that virtual(8) can write each mailbox as its
//!   owner, switching only the delivering thread's file-system identity.
//!
//! smtpd tells qmgr about each new queue file with one datagram carrying
//! its queue ID over a socket pair the master keeps, so nothing is lost
//! while one side restarts. The master itself never starts a thread (its
//! log lines are written directly), which is what makes fork safe here.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use crate::log::Log;

/// The two children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Smtpd,
    Qmgr,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Smtpd => "smtpd",
            Role::Qmgr => "qmgr",
        }
    }
}

/// What a child is given: the descriptors it keeps, and how it reports
/// that it started (`Ok`) or why it could not.
#[derive(Debug)]
pub struct Child<'a> {
    pub role: Role,
    /// Its end of the queue-ID socket pair.
    pub notify: &'a UnixDatagram,
    /// The first start of qmgr (it takes over the queue the master
    /// recovered), or a restart.
    pub first: bool,
    /// Where the master waits for `started`; closed once said.
    status: Option<std::io::PipeWriter>,
}

impl Child<'_> {
    /// Tells the master the child is serving (or why it cannot).
    pub fn started(&mut self, outcome: Result<(), String>) {
        let text = match outcome {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        };
        // Said once; dropping the writer ends what the master reads.
        if let Some(mut w) = self.status.take() {
            let _ = w.write_all(text.as_bytes());
        }
    }
}

/// The signals the master handles synchronously with sigwait.
fn master_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Closes every descriptor but the standard ones and `keep`, so a child
/// holds nothing of the master's it was not given (the pid file, the
/// pipe `postfix start` waits on, the other child's status pipe).
fn close_other_fds(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: called in a freshly forked, single-threaded child before
        // it builds anything that owns these descriptors; closing one it
        // was not given (the directory listing's own, at worst) cannot
        // invalidate a live Rust owner that is used afterwards.
        unsafe {
            libc::close(fd);
        }
    }
}

/// What the master runs: the descriptors its children keep, the body of a
/// child, and a reload (configuration read again).
pub trait Supervised {
    /// Descriptors a child keeps (the listening sockets).
    fn keep(&self) -> Vec<RawFd>;
    /// A child's life, in the child process; the exit code.
    fn child(&self, child: Child<'_>) -> i32;
    /// Reads the configuration again; the line to log.
    fn reload(&mut self) -> Result<String, String>;
}

/// The socket pair smtpd and qmgr talk over, and the signals the master
/// waits for.
struct Master<'a> {
    log: &'a Log,
    signals: SigSet,
    smtpd_end: UnixDatagram,
    qmgr_end: UnixDatagram,
    children: Vec<(Role, Pid)>,
}

impl Master<'_> {
    /// Forks a child for `role` and waits until it serves (or says why it
    /// cannot).
    fn spawn(&mut self, what: &dyn Supervised, role: Role, first: bool) -> Result<(), String> {
        let (mut reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let notify = match role {
            Role::Smtpd => &self.smtpd_end,
            Role::Qmgr => &self.qmgr_end,
        };
        // SAFETY: the master is single-threaded (see the module comment),
        // so the child may run any code after fork.
        match unsafe { fork() } {
            Err(e) => return Err(format!("fork: {e}")),
            Ok(ForkResult::Parent { child }) => self.children.push((role, child)),
            Ok(ForkResult::Child) => {
                drop(reader);
                let mut kept = what.keep();
                kept.push(notify.as_raw_fd());
                kept.push(writer.as_raw_fd());
                close_other_fds(&kept);
                // A child must not outlive the master (kill -9 of the
                // master takes the whole mail system with it).
                // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag
                // of this process.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                }
                if nix::unistd::getppid() == Pid::from_raw(1) {
                    std::process::exit(1);
                }
                set_process_name(role.name());
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&self.signals), None);
                let code = what.child(Child {
                    role,
                    notify,
                    first,
                    status: Some(writer),
                });
                std::process::exit(code);
            }
        }
        drop(writer);
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        match text.as_str() {
            "ok" => Ok(()),
            "" => Err(format!(
                "the {} process exited before it was ready",
                role.name()
            )),
            e => Err(e.to_string()),
        }
    }

    /// Takes `role`'s child off the list: its exit is expected now.
    fn retire(&mut self, role: Role) -> Option<Pid> {
        let i = self.children.iter().position(|(r, _)| *r == role)?;
        Some(self.children.remove(i).1)
    }

    /// Reaps exited children and replaces those still wanted.
    fn reap(&mut self, what: &dyn Supervised) {
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exit status {code}")),
                Ok(WaitStatus::Signaled(pid, s, _)) => (pid, format!("killed by signal {s}")),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            // A retired child (after reload) is not on the list.
            let Some(i) = self.children.iter().position(|(_, p)| *p == pid) else {
                continue;
            };
            let role = self.children.remove(i).0;
            self.log.warning(
                "master",
                &format!("process {} pid {pid} {how}", role.name()),
            );
            // A child that dies at once must not spin the master.
            std::thread::sleep(Duration::from_secs(1));
            if let Err(e) = self.spawn(what, role, false) {
                self.log
                    .warning("master", &format!("restart {}: {e}", role.name()));
            }
        }
    }

    /// New children for a new configuration: qmgr is stopped first (it
    /// finishes the deliveries under way, so the new one cannot start
    /// them again), smtpd is replaced at once and the old one finishes its
    /// sessions without taking new ones.
    fn reload(&mut self, what: &mut dyn Supervised) {
        let line = match what.reload() {
            Ok(line) => line,
            Err(e) => {
                self.log.warning(
                    "master",
                    &format!("reload failed, the old configuration stays: {e}"),
                );
                return;
            }
        };
        self.log.info("master", &line);
        if let Some(pid) = self.retire(Role::Qmgr) {
            let _ = kill(pid, Signal::SIGUSR1);
            let _ = waitpid(pid, None);
        }
        if let Err(e) = self.spawn(what, Role::Qmgr, false) {
            self.log.warning("master", &format!("reload qmgr: {e}"));
        }
        let old = self.retire(Role::Smtpd);
        if let Err(e) = self.spawn(what, Role::Smtpd, false) {
            self.log.warning("master", &format!("reload smtpd: {e}"));
        }
        if let Some(pid) = old {
            let _ = kill(pid, Signal::SIGUSR1);
        }
    }
}

/// Runs `check` in a short-lived child and returns its verdict, so that
/// what it opens (tables above all) never lives in the master, whose
/// children must start clean.
pub fn in_child(check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (mut reader, mut writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the master is single-threaded (see the module comment).
    match unsafe { fork() } {
        Err(e) => Err(format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(reader);
            let text = match check() {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            };
            let _ = writer.write_all(text.as_bytes());
            std::process::exit(0);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(writer);
            let mut text = String::new();
            let _ = reader.read_to_string(&mut text);
            let _ = waitpid(child, None);
            match text.as_str() {
                "ok" => Ok(()),
                "" => Err("the configuration check died".into()),
                e => Err(e.to_string()),
            }
        }
    }
}

/// Runs the master: starts both children, reports readiness, then
/// supervises until SIGTERM or SIGINT; SIGHUP reloads.
pub fn supervise(log: &Log, ready: impl FnOnce(), what: &mut dyn Supervised) -> Result<(), String> {
    set_process_name("master");
    let signals = master_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let (smtpd_end, qmgr_end) = UnixDatagram::pair().map_err(|e| format!("socketpair: {e}"))?;
    let mut m = Master {
        log,
        signals,
        smtpd_end,
        qmgr_end,
        children: Vec::new(),
    };
    for role in [Role::Qmgr, Role::Smtpd] {
        if let Err(e) = m.spawn(what, role, true) {
            stop_children(&m.children);
            return Err(e);
        }
    }
    ready();
    loop {
        let sig = m.signals.wait().map_err(|e| format!("sigwait: {e}"))?;
        match sig {
            Signal::SIGCHLD => m.reap(what),
            Signal::SIGHUP => m.reload(what),
            _ => {
                log.info("master", &format!("terminating on signal {}", sig as i32));
                stop_children(&m.children);
                return Ok(());
            }
        }
    }
}

/// The name `ps` and `top` show (the command name, as Postfix's
/// processes are named `master`, `smtpd`, `qmgr`).
pub fn set_process_name(name: &str) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16
    // bytes (longer ones are cut) that `name` keeps alive for the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
    }
}

/// Stops the children and waits for them.
fn stop_children(children: &[(Role, Pid)]) {
    for (_, pid) in children {
        let _ = kill(*pid, Signal::SIGTERM);
    }
    for (_, pid) in children {
        let _ = waitpid(*pid, None);
    }
}

/// The mail owner a root master hands the network-facing side to.
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub uid: nix::unistd::Uid,
    pub gid: nix::unistd::Gid,
    /// setgid_group (postdrop), when the group exists: the group of the
    /// maildrop and public directories, which postdrop and postqueue
    /// (set-group-ID) may enter.
    pub setgid_group: Option<nix::unistd::Gid>,
}

/// `mail_owner`, when this process runs as root (otherwise there is no
/// privilege to give up and everything runs as the invoking user).
pub fn mail_owner(cf: &rostfix_config::Config) -> Result<Option<Owner>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let name = cf.string("mail_owner").map_err(|e| e.to_string())?;
    match nix::unistd::User::from_name(&name) {
        Ok(Some(u)) if u.uid.is_root() => Err(format!(
            "file {}/main.cf: parameter mail_owner: user {name} has privileged user ID",
            cf.config_directory.display()
        )),
        Ok(Some(u)) => Ok(Some(Owner {
            name,
            uid: u.uid,
            gid: u.gid,
            setgid_group: cf
                .string("setgid_group")
                .ok()
                .and_then(|g| nix::unistd::Group::from_name(&g).ok().flatten())
                .map(|g| g.gid),
        })),
        _ => Err(format!(
            "file {}/main.cf: parameter mail_owner: unknown user name value: {name}",
            cf.config_directory.display()
        )),
    }
}

/// Gives up root for good: groups, gid, then uid; and proves it.
pub fn drop_privileges(owner: &Owner) -> Result<(), String> {
    nix::unistd::setgroups(&[owner.gid]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(owner.gid).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(owner.uid).map_err(|e| format!("setuid: {e}"))?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        return Err("privileges were not dropped: setuid(0) succeeded".into());
    }
    Ok(())
}

/// Makes the queue directories the network-facing side writes its own.
pub fn chown_queue(queue_directory: &std::path::Path, owner: &Owner) -> Result<(), String> {
    let fail = |path: &PathBuf, e: &dyn std::fmt::Display| format!("chown {}: {e}", path.display());
    // Through descriptors opened without following links: mail_owner
    // may have put a link where a FIFO was (see cleanup::open_entry).
    for (d, dir) in crate::cleanup::QUEUE_DIRS
        .iter()
        .map(|d| (*d, true))
        .chain(crate::cleanup::FIFOS.iter().map(|f| (*f, false)))
    {
        if d == "pid" {
            continue;
        }
        let path: PathBuf = queue_directory.join(d);
        let fd = crate::cleanup::open_entry(&path, dir).map_err(|e| fail(&path, &e))?;
        nix::unistd::fchown(&fd, Some(owner.uid), Some(owner.gid)).map_err(|e| fail(&path, &e))?;
    }
    // Postfix's setgid_group model: users reach maildrop/ and public/
    // only through the set-group-ID postdrop and postqueue; without the
    // group, only root and mail_owner submit.
    let private = queue_directory.join("private");
    let fd = crate::cleanup::open_entry(&private, true).map_err(|e| fail(&private, &e))?;
    nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(0o700))
        .map_err(|e| fail(&private, &e))?;
    for (d, mode) in [("maildrop", 0o1730), ("public", 0o710)] {
        let path: PathBuf = queue_directory.join(d);
        let (group, mode) = match owner.setgid_group {
            Some(g) => (g, mode),
            None => (owner.gid, 0o700),
        };
        let fd = crate::cleanup::open_entry(&path, true).map_err(|e| fail(&path, &e))?;
        nix::unistd::fchown(&fd, Some(owner.uid), Some(group)).map_err(|e| fail(&path, &e))?;
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))
            .map_err(|e| fail(&path, &e))?;
    }
    Ok(())
}

//! The engine: one process hosting smtpd, cleanup, qmgr and the delivery
//! agents as tasks that call each other directly (DESIGN.md section 2).
//!
//! This stage runs the receive path of issue 3: smtpd services from
//! master.cf, cleanup into the durable queue, qmgr, and virtual(8) Maildir
//! delivery, logging in Postfix's format. `postfix start` forks it into the
//! background; `postfix start-fg` runs it in the foreground. The process
//! model (a master and two children, and who runs as whom) is described
//! in [`master`].

pub mod bounce;
pub mod cleanup;
pub mod local_agent;
pub mod local_command;
pub mod log;
pub mod master;
pub mod mbox;
pub mod pickup;
pub mod pipe_agent;
pub mod qmgr;
pub mod resolve;
pub mod rewrite;
pub mod sasl_password;
pub mod sasl_server;
pub mod settings;
pub mod showq;
pub mod smtp;
pub mod smtpd;
pub mod smtpd_check;
pub mod tls_server;
pub mod virtual_agent;

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use rostfix_config::{Config, ServiceType};
use rostfix_maillog::Logger;

use rostfix_queue::Syncer;

use crate::log::Log;
use crate::master::{Child, Role};
use crate::settings::Settings;

/// The pid file, as Postfix keeps it.
pub fn pid_file(queue_directory: &Path) -> PathBuf {
    queue_directory.join("pid").join("master.pid")
}

/// Takes the pid file's lock and writes this process's pid into it. The
/// lock, not the pid, says the mail system runs: it goes away with the
/// process however that dies, where a pid can outlive it (a zombie nobody
/// reaps) or be reused.
fn lock_pid_file(queue_directory: &Path) -> Result<Flock<File>, String> {
    let path = pid_file(queue_directory);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| "the Postfix mail system is already running".to_string())?;
    lock.set_len(0)
        .and_then(|()| lock.write_all(format!("{:>10}\n", std::process::id()).as_bytes()))
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(lock)
}

/// The pid of the running mail system, if one holds the pid file's lock.
pub fn running(queue_directory: &Path) -> Option<u32> {
    let file = File::open(pid_file(queue_directory)).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err((mut file, _)) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            text.trim().parse().ok()
        }
    }
}

/// The port of a master.cf service name (`smtp`, `2525`, `127.0.0.1:2525`).
fn service_port(name: &str) -> Option<u16> {
    match name {
        "smtp" => Some(25),
        "submission" => Some(587),
        "smtps" | "submissions" => Some(465),
        "lmtp" => Some(24),
        other => other.parse().ok(),
    }
}

/// The addresses an inet service binds: its own host, else inet_interfaces.
fn bind_addresses(cf: &Config, service: &str) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = match service.rsplit_once(':') {
        Some((h, p)) => (Some(h.trim_start_matches('[').trim_end_matches(']')), p),
        None => (None, service),
    };
    let port =
        service_port(port).ok_or_else(|| format!("master.cf: unknown service port: {service}"))?;
    let hosts: Vec<String> = match host {
        Some(h) => vec![h.to_string()],
        None => {
            let v = cf.string("inet_interfaces").map_err(|e| e.to_string())?;
            rostfix_config::value::split_list(&v)
                .into_iter()
                .map(str::to_string)
                .collect()
        }
    };
    let mut out = Vec::new();
    for h in hosts {
        match h.as_str() {
            "all" => out.push(SocketAddr::from(([0, 0, 0, 0], port))),
            "localhost" | "loopback-only" => out.push(SocketAddr::from(([127, 0, 0, 1], port))),
            ip => out.push(SocketAddr::new(
                ip.parse().map_err(|_| format!("cannot bind to \"{ip}\""))?,
                port,
            )),
        }
    }
    Ok(out)
}

/// A listening socket with a backlog deep enough for a burst of
/// connections (the kernel caps it at net.core.somaxconn): one task per
/// session costs little, so queueing in the kernel is not the limit here
/// that a process limit is for Postfix.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket,
        sockopt,
    };
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    nix::sys::socket::listen(&fd, Backlog::new(4096).unwrap_or(Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}

/// What the master prepares before it starts its children: all of it
/// plain data and descriptors (tables are opened in each child, after
/// fork).
struct Plan {
    cf: Config,
    queue_directory: PathBuf,
    syslog_name: String,
    myhostname: String,
    maillog_file: Option<PathBuf>,
    foreground: bool,
    owner: Option<master::Owner>,
    /// smtpd services: their configuration view and listening sockets.
    services: Vec<(Config, Vec<(SocketAddr, std::net::TcpListener)>)>,
    /// The pickup service (master.cf): its configuration view and wakeup
    /// time. Without one, the maildrop is not read (as in Postfix).
    pickup: Option<(Config, std::time::Duration)>,
    /// Complete queue files found at start, for qmgr's first run.
    recovered: Vec<PathBuf>,
}

impl Plan {
    /// The log for a process: `threaded` for the children (a writer
    /// thread), direct for the master (which must not start threads).
    fn logger(&self, threaded: bool) -> Result<Logger, String> {
        let host = &self.myhostname;
        match &self.maillog_file {
            Some(path) if threaded => Logger::to_file(path, host),
            Some(path) => Logger::to_file_direct(path, host),
            None if self.foreground => return Ok(Logger::to_stderr(host)),
            None => return Ok(Logger::to_syslog(host).unwrap_or_else(|_| Logger::to_stderr(host))),
        }
        .map_err(|e| {
            format!(
                "open {}: {e}",
                self.maillog_file
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            )
        })
    }
}

impl Plan {
    /// Reads the configuration and binds the smtpd services' sockets;
    /// those `old` already has for the same address are kept (a reload
    /// does not close a listening socket that stays).
    fn load(
        config_dir: Option<&Path>,
        foreground: bool,
        old: Option<&Plan>,
    ) -> Result<Plan, String> {
        let cf = Config::load(config_dir).map_err(|e| e.to_string())?;
        let text = |name: &str| cf.string(name).map_err(|e| e.to_string());
        let queue_directory = PathBuf::from(text("queue_directory")?);
        if let Some(old) = old
            && old.queue_directory != queue_directory
        {
            return Err("queue_directory changed: stop and start the mail system".into());
        }
        let maillog_file = Some(text("maillog_file")?)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let owner = master::mail_owner(&cf)?;
        let master_cf = cf
            .master
            .as_ref()
            .ok_or("open master.cf: No such file or directory")?;
        let mut services = Vec::new();
        let mut pickup = None;
        for svc in &master_cf.services {
            if svc.command == "pickup" {
                // "60" or "60?" (wake only when in use: the same here).
                let secs = svc.wakeup.trim_end_matches('?').parse().unwrap_or(60);
                pickup = Some((cf.for_service(svc), std::time::Duration::from_secs(secs)));
            }
            if svc.kind == ServiceType::Inet && svc.command == "smtpd" {
                let view = cf.for_service(svc);
                let mut socks = Vec::new();
                for addr in bind_addresses(&view, &svc.name)? {
                    let kept = old.and_then(|o| {
                        o.services
                            .iter()
                            .flat_map(|(_, socks)| socks)
                            .find(|(a, _)| *a == addr)
                    });
                    let sock = match kept {
                        Some((_, s)) => s.try_clone().map_err(|e| format!("{addr}: {e}"))?,
                        None => listen(addr).map_err(|e| format!("bind {addr}: {e}"))?,
                    };
                    socks.push((addr, sock));
                }
                services.push((view, socks));
            }
        }
        Ok(Plan {
            syslog_name: text("syslog_name")?,
            myhostname: text("myhostname")?,
            maillog_file,
            foreground,
            owner,
            services,
            pickup,
            recovered: Vec::new(),
            queue_directory,
            cf,
        })
    }

    /// `configuration DIR`, as the master's log lines say it.
    fn configuration(&self) -> String {
        format!(
            "version {}, configuration {}",
            env!("CARGO_PKG_VERSION"),
            self.cf.config_directory.display()
        )
    }
}

/// The master's view of the mail system: the current plan, and where the
/// configuration comes from (for reload).
struct System {
    plan: Plan,
    config_dir: Option<PathBuf>,
}

impl master::Supervised for System {
    fn keep(&self) -> Vec<std::os::fd::RawFd> {
        self.plan
            .services
            .iter()
            .flat_map(|(_, socks)| socks.iter().map(|(_, s)| s.as_raw_fd()))
            .collect()
    }

    fn child(&self, mut child: Child<'_>) -> i32 {
        let outcome = match child.role {
            Role::Smtpd => smtpd_process(&self.plan, &mut child),
            Role::Qmgr => qmgr_process(&self.plan, &mut child),
        };
        match outcome {
            Ok(()) => 0,
            Err(e) => {
                child.started(Err(e));
                1
            }
        }
    }

    fn reload(&mut self) -> Result<String, String> {
        let plan = Plan::load(
            self.config_dir.as_deref(),
            self.plan.foreground,
            Some(&self.plan),
        )?;
        if let Some(o) = &plan.owner {
            master::chown_queue(&plan.queue_directory, o)?;
        }
        // Checked first (in a child, see master::in_child), so a bad table
        // or parameter keeps the running configuration instead of failing
        // the new children.
        master::in_child(|| {
            Settings::resolve(&plan.cf)?;
            for (view, _) in &plan.services {
                Settings::resolve(view)?;
            }
            Ok(())
        })?;
        self.plan = plan;
        Ok(format!("reload -- {}", self.plan.configuration()))
    }
}

/// Loads everything and runs until SIGTERM or SIGINT. `ready` is called
/// once every socket is bound and both children serve (the parent of
/// `postfix start` waits for it).
pub fn run(
    config_dir: Option<&Path>,
    foreground: bool,
    ready: impl FnOnce(),
) -> Result<(), String> {
    rostfix_maps::set_warning_sink(|_| {});
    let mut plan = Plan::load(config_dir, foreground, None)?;
    let queue_directory = plan.queue_directory.clone();
    cleanup::make_queue_dirs(&queue_directory)
        .map_err(|e| format!("{}: {e}", queue_directory.display()))?;
    if let Some(o) = &plan.owner {
        master::chown_queue(&queue_directory, o)?;
    }
    // Held until the process ends.
    let pid_lock = lock_pid_file(&queue_directory)?;
    let log = Log::new(plan.logger(false)?, &plan.syslog_name);
    // Before any smtpd accepts: see qmgr::recover.
    plan.recovered = qmgr::recover(&queue_directory, &log);
    log.info(
        "master",
        &format!("daemon started -- {}", plan.configuration()),
    );
    let mut system = System {
        plan,
        config_dir: config_dir.map(Path::to_path_buf),
    };
    let result = master::supervise(&log, ready, &mut system);
    let _ = std::fs::remove_file(pid_file(&queue_directory));
    log.flush();
    drop(pid_lock);
    result
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// How a child is asked to end.
enum Stop {
    /// SIGTERM or SIGINT: at once.
    Now,
    /// SIGUSR1 (a reload replaces this child): finish what is under way.
    Drain,
}

/// Waits for the master to end this child.
async fn until_stopped() -> Result<Stop, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
    // SIGHUP goes to the master; a child ignores a stray one.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(Stop::Now),
            _ = tokio::signal::ctrl_c() => return Ok(Stop::Now),
            _ = usr1.recv() => return Ok(Stop::Drain),
            _ = hup.recv() => {}
        }
    }
}

/// The group commit of a child, with the queue's file system known
/// from the start (rostfix_queue::Syncer::know), its batches `spacing`
/// apart at least.
fn start_syncer(
    queue_directory: &std::path::Path,
    spacing: std::time::Duration,
) -> Result<Syncer, String> {
    let syncer = Syncer::start_spaced(spacing).map_err(|e| format!("start group commit: {e}"))?;
    syncer
        .know(queue_directory)
        .map_err(|e| format!("{}: {e}", queue_directory.display()))?;
    Ok(syncer)
}

/// The network-facing child: smtpd services, cleanup, the queue's group
/// commit. Gives up root before it serves.
fn smtpd_process(plan: &Plan, child: &mut Child<'_>) -> Result<(), String> {
    // The log file is opened while the process may still open it. Lines
    // are written as they are logged, not by a gathering thread: a
    // message's client= and message-id= lines must be in the file before
    // qmgr (another process, another writer) logs its from= line.
    let logger = plan.logger(false)?;
    // TLS keys are read before the privileges go (they are root's).
    let mut tls = Vec::new();
    for (view, _) in &plan.services {
        tls.push(crate::tls_server::ServerTls::load(view)?);
    }
    if let Some(o) = &plan.owner {
        master::drop_privileges(o)?;
        // Said now, at start, rather than as a 451 to every client.
        let incoming = plan.queue_directory.join("incoming");
        nix::unistd::access(
            &incoming,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .map_err(|e| {
            format!(
                "{}: not writable by mail_owner {}: {e}",
                incoming.display(),
                o.name
            )
        })?;
    }
    let log = Log::new(logger, &plan.syslog_name);
    let mut listeners = Vec::new();
    for ((view, socks), tls) in plan.services.iter().zip(tls) {
        let settings = Settings::with_tls(view, tls)?;
        for (_, s) in socks {
            let s = s.try_clone().map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            listeners.push((s, settings.clone()));
        }
    }
    let pickup = match &plan.pickup {
        Some((view, wakeup)) => Some((Settings::resolve(view)?, *wakeup)),
        None => None,
    };
    let notify = child.notify.try_clone().map_err(|e| e.to_string())?;
    notify.set_nonblocking(true).map_err(|e| e.to_string())?;
    runtime()?.block_on(async {
        // Clients wait for each commit: no spacing.
        let syncer = start_syncer(&plan.queue_directory, std::time::Duration::ZERO)?;
        let notify = tokio::net::UnixDatagram::from_std(notify).map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        // One datagram per queue ID; while qmgr restarts they wait in the
        // socket (the master holds its end).
        tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                let _ = notify.send(id.as_bytes()).await;
            }
        });
        let intake = cleanup::Intake { syncer, qmgr: tx };
        let alive = std::sync::Arc::new(());
        let mut serving = Vec::new();
        for (sock, settings) in listeners {
            let sock = tokio::net::TcpListener::from_std(sock).map_err(|e| e.to_string())?;
            let log = log.for_smtpd(&settings.syslog_name);
            serving.push(tokio::spawn(smtpd::serve(
                sock,
                settings,
                log,
                intake.clone(),
                alive.clone(),
            )));
        }
        if let Some((settings, wakeup)) = pickup {
            serving.push(tokio::spawn(pickup::serve(
                settings,
                log.clone(),
                intake.clone(),
                wakeup,
            )));
        }
        child.started(Ok(()));
        if let Stop::Drain = until_stopped().await? {
            // Replaced by a reload: take no new sessions, let the ones
            // under way finish (for a while).
            for task in &serving {
                task.abort();
            }
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::sync::Arc::strong_count(&alive) > 1 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        Ok(())
    })
}

/// The delivering child: qmgr and the delivery agents.
fn qmgr_process(plan: &Plan, child: &mut Child<'_>) -> Result<(), String> {
    let log = Log::new(plan.logger(true)?, &plan.syslog_name);
    // What delivery commands start with, as under Postfix's local(8).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if plan.owner.is_some() {
        // Deliveries switch a thread's file-system uid and gid; no
        // supplementary group of root's may add to them.
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    }
    let base = Settings::resolve(&plan.cf)?;
    let todo = if child.first {
        plan.recovered.clone()
    } else {
        qmgr::resume(&base.queue_directory)
    };
    let notify = child.notify.try_clone().map_err(|e| e.to_string())?;
    notify.set_nonblocking(true).map_err(|e| e.to_string())?;
    runtime()?.block_on(async {
        let syncer = start_syncer(&base.queue_directory, qmgr::COMMIT_SPACING)?;
        let notify = tokio::net::UnixDatagram::from_std(notify).map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let announce = tx.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = notify.recv(&mut buf).await {
                if let Ok(id) = std::str::from_utf8(&buf[..n])
                    && tx.send(id.to_string()).is_err()
                {
                    break;
                }
            }
        });
        let active = qmgr::Active::default();
        showq::serve(&base.queue_directory, &log, active.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(qmgr::run(
            base.clone(),
            log.clone(),
            syncer,
            active,
            todo,
            announce,
            rx,
            stopped,
        ));
        child.started(Ok(()));
        if let Stop::Drain = until_stopped().await? {
            let _ = stop.send(true);
            let _ = running.await;
        }
        Ok(())
    })
}

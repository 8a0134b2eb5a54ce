//! The engine: one process hosting smtpd, cleanup, qmgr and the delivery
//! agents as tasks that call each other directly (DESIGN.md section 2).
//!
//! This stage runs the receive path of issue 3: smtpd services from
//! master.cf, cleanup into the durable queue, qmgr, and virtual(8) Maildir
//! delivery, logging in Postfix's format. `postfix start` forks it into the
//! background; `postfix start-fg` runs it in the foreground.

pub mod cleanup;
pub mod log;
pub mod qmgr;
pub mod resolve;
pub mod settings;
pub mod smtpd;
pub mod virtual_agent;

use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use rostfix_config::{Config, ServiceType};
use rostfix_maillog::Logger;

use crate::log::Log;
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

/// A listening smtpd service.
#[derive(Debug)]
struct Listener {
    addrs: Vec<SocketAddr>,
    settings: Arc<Settings>,
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
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let sock = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(4096)
}

/// Loads everything and runs until SIGTERM or SIGINT. `ready` is called
/// once every socket is bound (the parent of `postfix start` waits for it).
pub fn run(
    config_dir: Option<&Path>,
    foreground: bool,
    ready: impl FnOnce(),
) -> Result<(), String> {
    rostfix_maps::set_warning_sink(|_| {});
    let cf = Config::load(config_dir).map_err(|e| e.to_string())?;
    let base = Settings::resolve(&cf)?;
    let logger = match cf.string("maillog_file").unwrap_or_default() {
        path if !path.is_empty() => Logger::to_file(Path::new(&path), &base.myhostname)
            .map_err(|e| format!("open {path}: {e}"))?,
        _ if foreground => Logger::to_stderr(&base.myhostname),
        _ => Logger::to_syslog(&base.myhostname)
            .unwrap_or_else(|_| Logger::to_stderr(&base.myhostname)),
    };
    let log = Log::new(logger, &base.syslog_name);
    cleanup::make_queue_dirs(&base.queue_directory)
        .map_err(|e| format!("{}: {e}", base.queue_directory.display()))?;
    // Held until the process ends.
    let pid_lock = lock_pid_file(&base.queue_directory)?;
    let master = cf
        .master
        .as_ref()
        .ok_or("open master.cf: No such file or directory")?;
    let mut listeners = Vec::new();
    for svc in &master.services {
        if svc.kind == ServiceType::Inet && svc.command == "smtpd" {
            let view = cf.for_service(svc);
            listeners.push(Listener {
                addrs: bind_addresses(&view, &svc.name)?,
                settings: Settings::resolve(&view)?,
            });
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let syncer = rostfix_queue::Syncer::start().map_err(|e| format!("start group commit: {e}"))?;
        let intake = cleanup::Intake { syncer: syncer.clone(), qmgr: tx };
        let mut bound = Vec::new();
        for l in listeners {
            for addr in &l.addrs {
                let sock = listen(*addr).map_err(|e| format!("bind {addr}: {e}"))?;
                bound.push((sock, l.settings.clone()));
            }
        }
        let recovered = qmgr::recover(&base, &log);
        log.info(
            "master",
            &format!(
                "daemon started -- version {}, configuration {}",
                env!("CARGO_PKG_VERSION"),
                cf.config_directory.display()
            ),
        );
        ready();
        tokio::spawn(qmgr::run(base.clone(), log.clone(), syncer, recovered, rx));
        for (sock, settings) in bound {
            tokio::spawn(smtpd::serve(sock, settings, log.clone(), intake.clone()));
        }
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = hup.recv() => {
                    // Re-reading configuration and tables on reload comes
                    // with the rest of issue 3; until then it is logged.
                    log.warning("master", "reload is not implemented yet: restart to apply changes");
                }
            }
        }
        log.info("master", "terminating on signal 15");
        let _ = std::fs::remove_file(pid_file(&base.queue_directory));
        log.flush();
        drop(pid_lock);
        Ok::<(), String>(())
    })
}

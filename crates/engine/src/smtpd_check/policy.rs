//! check_policy_service: the client side of Postfix's SMTPD policy
//! delegation protocol (SMTPD_POLICY_README). smtpd sends `name=value`
//! lines and an empty line; the server answers `action=...` and an empty
//! line, an action as an access(5) table would give it.
//!
//! The check itself is synchronous ([`super::check_recipient`]): when it
//! reaches a policy service it has no answer from, it stops and names the
//! server; the caller asks it here and checks again from the start with
//! the answer known. So a server is asked exactly when the restrictions
//! reach it, as in Postfix, and never for what an earlier one decided.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::log::Log;

/// Lines and bytes an answer may have: a policy server answers with one
/// attribute, a broken one must not make smtpd read forever.
const MAX_ANSWER_LINES: usize = 100;
const MAX_LINE: usize = 4096;

/// How a policy server is reached and tried.
#[derive(Debug, Clone)]
pub struct Settings {
    /// smtpd_policy_service_timeout, for the whole exchange.
    pub timeout: Duration,
    /// smtpd_policy_service_try_limit, smtpd_policy_service_retry_delay.
    pub tries: u32,
    pub retry_delay: Duration,
}

/// Asks `server` (`inet:host:port`, `unix:path` or a path; relative paths
/// are under the queue directory) about a request: its action, or `None`
/// (logged as Postfix logs it) when no server answered.
pub async fn ask(
    server: &str,
    attrs: &[(&str, String)],
    queue_directory: &Path,
    cfg: &Settings,
    log: &Log,
) -> Option<String> {
    let mut request = String::new();
    for (name, value) in attrs {
        // A value cannot end the request early or add an attribute.
        let value: String = value.chars().filter(|c| *c != '\n').collect();
        request.push_str(&format!("{name}={value}\n"));
    }
    request.push('\n');
    let shown = server.strip_prefix("inet:").unwrap_or(server);
    for attempt in 0..cfg.tries.max(1) {
        if attempt > 0 {
            tokio::time::sleep(cfg.retry_delay).await;
        }
        let exchange = async {
            if let Some(addr) = server.strip_prefix("inet:") {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| Failure::Connect(rostfix_config::io_text(&e)))?;
                talk(stream, &request).await
            } else {
                let path = server.strip_prefix("unix:").unwrap_or(server);
                let stream = tokio::net::UnixStream::connect(queue_directory.join(path))
                    .await
                    .map_err(|e| Failure::Connect(rostfix_config::io_text(&e)))?;
                talk(stream, &request).await
            }
        };
        let why = match tokio::time::timeout(cfg.timeout, exchange).await {
            Ok(Ok(action)) => return Some(action),
            Ok(Err(Failure::Connect(why))) => {
                log.warning("smtpd", &format!("connect to {shown}: {why}"));
                why
            }
            Ok(Err(Failure::Talk(why))) => why,
            Err(_) => "timeout".to_string(),
        };
        log.warning(
            "smtpd",
            &format!("problem talking to server {shown}: {why}"),
        );
    }
    None
}

enum Failure {
    Connect(String),
    Talk(String),
}

/// One request and its answer's action.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &str,
) -> Result<String, Failure> {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| Failure::Talk(rostfix_config::io_text(&e)))?;
    let mut action = None;
    for _ in 0..MAX_ANSWER_LINES {
        let mut line = Vec::new();
        let n = (&mut stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Failure::Talk(rostfix_config::io_text(&e)))?;
        if n == 0 {
            return Err(Failure::Talk("lost connection".into()));
        }
        if !line.ends_with(b"\n") {
            return Err(Failure::Talk("reply line too long".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return action.ok_or_else(|| Failure::Talk("no action in the reply".into()));
        }
        if let Some(value) = text.strip_prefix("action=") {
            action = Some(value.to_string());
        }
    }
    Err(Failure::Talk("reply too long".into()))
}

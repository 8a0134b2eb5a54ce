//! One connection to a server: the byte stream (TCP, UNIX socket, or
//! either under TLS), reading replies with a deadline, writing commands.

use std::time::Duration;

use rostfix_smtp::Reply;
use rostfix_smtp::client::{REPLY_LINE_LIMIT, ReplyReader};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// A byte stream the client talks over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The server's name as reasons give it: `mx.example[192.0.2.1]` (with
/// `:port` in the log's relay field), or a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub addr: String,
    pub port: Option<u16>,
}

impl Peer {
    /// `name[addr]`, as reasons say it.
    pub fn named(&self) -> String {
        if self.addr.is_empty() {
            self.name.clone()
        } else {
            format!("{}[{}]", self.name, self.addr)
        }
    }

    /// `name[addr]:port`, as the log's relay field says it.
    pub fn relay(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.named()),
            None => self.named(),
        }
    }
}

/// What went wrong with the connection itself.
#[derive(Debug)]
pub enum Broken {
    /// No reply within the time: `stage` says what was waited for.
    Timeout(&'static str),
    /// The server closed the connection (or it failed).
    Lost(&'static str),
    /// The server's bytes are not SMTP.
    Malformed(&'static str, String),
}

impl Broken {
    /// Postfix's reason text for it.
    pub fn reason(&self, peer: &Peer) -> String {
        match self {
            Broken::Timeout(stage) => {
                format!("conversation with {} timed out while {stage}", peer.named())
            }
            Broken::Lost(stage) => format!("lost connection with {} while {stage}", peer.named()),
            Broken::Malformed(stage, line) => format!(
                "malformed reply from {} while {stage}: {line}",
                peer.named()
            ),
        }
    }
}

pub struct Conn {
    io: BufReader<Box<dyn Stream>>,
    pub peer: Peer,
    /// `TLSv1.3 with cipher ...` once TLS is on.
    pub tls: Option<String>,
    /// What the server's EHLO offered.
    pub ext: rostfix_smtp::client::Extensions,
    line: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Conn {
    pub fn new(stream: Box<dyn Stream>, peer: Peer) -> Conn {
        Conn {
            io: BufReader::with_capacity(8192, stream),
            peer,
            tls: None,
            ext: Default::default(),
            line: Vec::with_capacity(256),
        }
    }

    /// Reads one reply within `timeout`.
    pub async fn reply(&mut self, timeout: Duration, stage: &'static str) -> Result<Reply, Broken> {
        let mut reader = ReplyReader::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.line.clear();
            let mut limited = (&mut self.io).take(REPLY_LINE_LIMIT as u64 + 2);
            let read = limited.read_until(b'\n', &mut self.line);
            match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return Err(Broken::Timeout(stage)),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(Broken::Lost(stage)),
                Ok(Ok(_)) => {}
            }
            if self.line.last() != Some(&b'\n') {
                // An overlong line: the rest is read and dropped.
                let kept = std::mem::take(&mut self.line);
                loop {
                    self.line.clear();
                    let mut limited = (&mut self.io).take(REPLY_LINE_LIMIT as u64);
                    let more = limited.read_until(b'\n', &mut self.line);
                    match tokio::time::timeout_at(deadline, more).await {
                        Err(_) => return Err(Broken::Timeout(stage)),
                        Ok(Err(_)) | Ok(Ok(0)) => return Err(Broken::Lost(stage)),
                        Ok(Ok(_)) if self.line.last() == Some(&b'\n') => break,
                        Ok(Ok(_)) => {}
                    }
                }
                self.line = kept;
            }
            match reader.line(&self.line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(Broken::Malformed(stage, format!("{e:?}")));
                }
            }
        }
    }

    /// Writes `bytes` within `timeout`.
    pub async fn send(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
        stage: &'static str,
    ) -> Result<(), Broken> {
        let io = self.io.get_mut();
        let write = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Err(_) => Err(Broken::Timeout(stage)),
            Ok(Err(_)) => Err(Broken::Lost(stage)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Whether the server sent bytes nobody asked for yet (after 220 to
    /// STARTTLS they would be injected into the TLS session's plaintext
    /// start).
    pub fn has_buffered(&self) -> bool {
        !self.io.buffer().is_empty()
    }

    /// The stream, to be wrapped in TLS.
    pub fn into_stream(self) -> (Box<dyn Stream>, Peer) {
        (self.io.into_inner(), self.peer)
    }
}

/// `code text` of a reply on one line (continuation lines joined by a
/// space), as reasons quote it.
pub fn one_line(r: &Reply) -> String {
    let mut out = r.code.to_string();
    for l in &r.lines {
        out.push(' ');
        out.push_str(l);
    }
    out
}

/// The reply's enhanced status code, or `default` with the reply's class.
pub fn status_code(r: &Reply, default: &str) -> String {
    if let Some(first) = r.lines.first()
        && let Some(word) = first.split_whitespace().next()
    {
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && parts[0].len() == 1
            && parts[0].as_bytes()[0] == b'0' + (r.code / 100) as u8
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return word.to_string();
        }
    }
    let class = (r.code / 100).to_string();
    format!("{class}{}", &default[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        let r = Reply::new(550, "5.1.1 <bob@x>: Recipient address rejected");
        assert_eq!(status_code(&r, "5.0.0"), "5.1.1");
        let r = Reply::new(451, "Try later");
        assert_eq!(status_code(&r, "5.0.0"), "4.0.0");
        // A code of the other class is not believed.
        let r = Reply::new(451, "5.1.1 odd");
        assert_eq!(status_code(&r, "5.0.0"), "4.0.0");
        assert_eq!(
            one_line(&Reply::multi(250, vec!["a".into(), "b".into()])),
            "250 a b"
        );
    }

    #[tokio::test]
    async fn replies_over_a_stream() {
        let (client, mut server) = tokio::io::duplex(1024);
        let peer = Peer {
            name: "mx".into(),
            addr: "192.0.2.1".into(),
            port: Some(25),
        };
        let mut c = Conn::new(Box::new(client), peer);
        server
            .write_all(b"220-mx ESMTP\r\n220 ready\r\n")
            .await
            .unwrap();
        let r = c.reply(Duration::from_secs(1), "x").await.unwrap();
        assert_eq!((r.code, r.lines.len()), (220, 2));
        drop(server);
        let e = c
            .reply(
                Duration::from_secs(1),
                "receiving the initial server greeting",
            )
            .await;
        assert_eq!(
            e.unwrap_err().reason(&c.peer),
            "lost connection with mx[192.0.2.1] while receiving the initial server greeting"
        );
    }
}

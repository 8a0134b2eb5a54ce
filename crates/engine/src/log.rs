//! The engine's log: one [`Logger`] for every component, each writing
//! under its Postfix program name (`postfix/smtpd`, `postfix/qmgr`, ...).

use std::sync::Arc;

use rostfix_maillog::{Level, Logger};

#[derive(Debug, Clone)]
pub struct Log {
    logger: Arc<Logger>,
    syslog_name: String,
    /// A smtpd service's own syslog_name (`-o
    /// syslog_name=postfix/submission`): its smtpd lines carry it, the
    /// lines of the components it calls (cleanup) the mail system's.
    smtpd_name: Option<Arc<str>>,
    pid: u32,
}

impl Log {
    pub fn new(logger: Logger, syslog_name: &str) -> Log {
        Log {
            logger: Arc::new(logger),
            syslog_name: syslog_name.to_string(),
            smtpd_name: None,
            pid: std::process::id(),
        }
    }

    /// This log for a smtpd service whose syslog_name is `name`.
    pub fn for_smtpd(&self, name: &str) -> Log {
        let mut l = self.clone();
        l.smtpd_name = (name != self.syslog_name).then(|| Arc::from(name));
        l
    }

    /// `syslog_name/service`, the program name of a line.
    fn program(&self, service: &str) -> String {
        match &self.smtpd_name {
            Some(name) if service == "smtpd" => format!("{name}/smtpd"),
            _ => format!("{}/{service}", self.syslog_name),
        }
    }

    pub fn info(&self, service: &str, text: &str) {
        self.logger
            .log(Level::Info, &self.program(service), self.pid, text);
    }

    /// A line under a program name of its own (`postfix/relay/smtp`:
    /// a service with its own syslog_name).
    pub fn tagged(&self, tag: &str, text: &str) {
        self.logger.log(Level::Info, tag, self.pid, text);
    }

    /// A warning under a program name of its own.
    pub fn tagged_warning(&self, tag: &str, text: &str) {
        self.logger.log(Level::Warning, tag, self.pid, text);
    }

    /// Waits until every line logged so far is written.
    pub fn flush(&self) {
        self.logger.flush();
    }

    pub fn fatal(&self, service: &str, text: &str) {
        self.logger
            .log(Level::Fatal, &self.program(service), self.pid, text);
    }

    pub fn warning(&self, service: &str, text: &str) {
        self.logger
            .log(Level::Warning, &self.program(service), self.pid, text);
    }
}

/// Text from outside (a client, a certificate, a DNS record, a local
/// user's ENVID) as it may stand in a header field, a reply or a log
/// line: line ends and other controls become `?`, as Postfix prints them.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Postfix's delay figures: two significant digits below ten seconds
/// (`0.08`, `1.2`), whole seconds above.
pub fn delay(secs: f64) -> String {
    if secs >= 10.0 {
        format!("{}", secs.round() as u64)
    } else if secs >= 1.0 {
        trim(format!("{secs:.1}"))
    } else if secs >= 0.01 {
        trim(format!("{secs:.2}"))
    } else {
        "0".to_string()
    }
}

fn trim(s: String) -> String {
    let t = s.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(delay(15.4), "15");
        assert_eq!(delay(0.28), "0.28");
        assert_eq!(delay(0.001), "0");
        assert_eq!(delay(1.25), "1.2");
        assert_eq!(delay(0.1), "0.1");
    }
}

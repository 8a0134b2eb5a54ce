//! master.cf: the service table (master(5)).
//!
//! Each logical line is `service type private unpriv chroot wakeup maxproc
//! command [args...]`; lines that start with white space continue the
//! previous one; `#` comment lines and blank lines are skipped and do not end
//! a logical line. Arguments are separated by white space; `{ text }` is one
//! argument with the braces and the white space just inside them removed,
//! which is how `-o { name = value with spaces }` works.

use std::path::{Path, PathBuf};

/// The second column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    Inet,
    Unix,
    UnixDgram,
    Fifo,
    Pass,
}

impl ServiceType {
    pub fn parse(s: &str) -> Option<ServiceType> {
        Some(match s {
            "inet" => ServiceType::Inet,
            "unix" => ServiceType::Unix,
            "unix-dgram" => ServiceType::UnixDgram,
            "fifo" => ServiceType::Fifo,
            "pass" => ServiceType::Pass,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Inet => "inet",
            ServiceType::Unix => "unix",
            ServiceType::UnixDgram => "unix-dgram",
            ServiceType::Fifo => "fifo",
            ServiceType::Pass => "pass",
        }
    }
}

/// One service line. Column texts are kept as written (`-` included) because
/// `postconf -M/-F` print them so; the typed accessors apply the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub kind: ServiceType,
    pub private: String,
    pub unpriv: String,
    pub chroot: String,
    pub wakeup: String,
    pub maxproc: String,
    pub command: String,
    /// The arguments after the command, `{ }` groups already unwrapped.
    pub args: Vec<String>,
    /// 1-based line where the entry starts.
    pub line: usize,
    /// 0-based index just past the entry's last physical line.
    pub end: usize,
}

/// Field names in `postconf -F` order.
pub const FIELDS: &[&str] = &[
    "service",
    "type",
    "private",
    "unprivileged",
    "chroot",
    "wakeup",
    "process_limit",
    "command",
];

impl Service {
    /// `service/type`, the name postconf -M and -P use.
    pub fn id(&self) -> String {
        format!("{}/{}", self.name, self.kind.as_str())
    }

    /// The `-o name=value` overrides, in order: those among the daemon
    /// options, before the first non-option argument.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut it = self.args.iter();
        while let Some(arg) = it.next() {
            if !arg.starts_with('-') || arg == "--" {
                break;
            }
            if arg == "-o"
                && let Some(setting) = it.next()
                && let Some((n, v)) = setting.split_once('=')
                && !n.is_empty()
            {
                out.push((n.to_string(), v.to_string()));
            }
        }
        out
    }

    /// `private` with its default (`y`).
    pub fn is_private(&self) -> bool {
        flag(&self.private, true)
    }

    /// `unpriv` with its default (`y`).
    pub fn is_unprivileged(&self) -> bool {
        flag(&self.unpriv, true)
    }

    /// The process limit: `None` for `-` (use `default_process_limit`),
    /// `Some(0)` for no limit.
    pub fn process_limit(&self) -> Option<u32> {
        self.maxproc.parse().ok()
    }

    /// The command line as `postconf -M` prints it: command, then each
    /// argument, with `{}` put back around arguments holding white space.
    pub fn command_line(&self) -> String {
        let mut s = self.command.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(&quote_arg(a));
        }
        s
    }
}

fn flag(s: &str, default: bool) -> bool {
    match s {
        "y" => true,
        "n" => false,
        _ => default,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterCfError {
    #[error("open {}: {}", path.display(), crate::io_text(source))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file {}: line {line}: {what}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        what: String,
    },
    /// A bad column value; the text names the field and quotes the entry.
    #[error("{0}")]
    Field(String),
}

/// Why one entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// Fewer than the eight required fields.
    FieldCount,
    /// `invalid <field> field "<value>" in "<entry>"`.
    Field(String),
}

/// Parses one logical master.cf line (also a `postconf -Me` value).
/// `line`/`end` say where it came from (0 for command-line input).
pub fn parse_entry(text: &str, line: usize, end: usize) -> Result<Service, EntryError> {
    parse_entry_noting(text, line, end, &mut |_| {})
}

/// [`parse_entry`], reporting recoverable oddities (an unclosed `{`).
pub fn parse_entry_noting(
    text: &str,
    line: usize,
    end: usize,
    note: &mut dyn FnMut(String),
) -> Result<Service, EntryError> {
    let words = tokenize(text, note);
    if words.len() < 8 {
        return Err(EntryError::FieldCount);
    }
    let bad = |field: &str, value: &str| {
        EntryError::Field(format!("invalid {field} field \"{value}\" in \"{text}\""))
    };
    let kind = ServiceType::parse(&words[1]).ok_or_else(|| bad("type", &words[1]))?;
    for (idx, field) in [(2, "private"), (3, "unprivileged"), (4, "chroot")] {
        if !matches!(words[idx].as_str(), "y" | "n" | "-") {
            return Err(bad(field, &words[idx]));
        }
    }
    let wakeup = words[5].strip_suffix('?').unwrap_or(&words[5]);
    if wakeup != "-" && wakeup.parse::<u32>().is_err() {
        return Err(bad("wakeup", &words[5]));
    }
    if words[6] != "-" && words[6].parse::<u32>().is_err() {
        return Err(bad("process_limit", &words[6]));
    }
    let mut it = normalize_options(words).into_iter();
    let mut next = || it.next().unwrap_or_default();
    let name = next();
    next();
    let service = Service {
        name,
        kind,
        private: next(),
        unpriv: next(),
        chroot: next(),
        wakeup: next(),
        maxproc: next(),
        command: next(),
        args: Vec::new(),
        line,
        end,
    };
    Ok(Service {
        args: it.collect(),
        ..service
    })
}

/// A parsed master.cf.
#[derive(Debug, Clone, Default)]
pub struct MasterCf {
    pub path: PathBuf,
    pub services: Vec<Service>,
    /// Non-fatal diagnostics, worded as Postfix words them.
    pub warnings: Vec<String>,
}

impl MasterCf {
    pub fn read(path: &Path) -> Result<MasterCf, MasterCfError> {
        let text = std::fs::read(path).map_err(|source| MasterCfError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        MasterCf::parse(path, &String::from_utf8_lossy(&text))
    }

    pub fn parse(path: &Path, text: &str) -> Result<MasterCf, MasterCfError> {
        let mut services = Vec::new();
        let mut warnings = Vec::new();
        let lines = crate::lines::physical_lines(text);
        for l in crate::lines::logical_lines(&lines) {
            let (line, end) = (l.line(), l.end);
            if crate::lines::starts_with_space(&l.text) {
                warnings.push(format!(
                    "{}: logical line must not start with whitespace: \"{}\"",
                    path.display(),
                    crate::lines::printable(l.text.as_bytes())
                ));
                continue;
            }
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let service = parse_entry_noting(&l.text, line, end, &mut |w| {
                warnings.push(format!("{file}: {w}"))
            })
            .map_err(|e| match e {
                EntryError::FieldCount => MasterCfError::Syntax {
                    path: path.to_path_buf(),
                    line,
                    what: "bad field count".to_string(),
                },
                EntryError::Field(what) => MasterCfError::Field(what),
            })?;
            services.push(service);
        }
        Ok(MasterCf {
            path: path.to_path_buf(),
            services,
            warnings,
        })
    }

    /// The service `name/type`, or the first one called `name`.
    pub fn find(&self, name: &str, kind: Option<ServiceType>) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.name == name && kind.is_none_or(|k| s.kind == k))
    }
}

/// An argument as master.cf would need it written: `{text}` when it holds
/// white space or is empty.
pub fn quote_arg(a: &str) -> String {
    if a.is_empty() || a.contains(char::is_whitespace) {
        format!("{{{a}}}")
    } else {
        a.to_string()
    }
}

/// Daemon options as Postfix normalises them: `-oname=value` becomes `-o`
/// `name=value`, and `-o { name = value }` loses the white space around
/// its `=`. Only the options before the first non-option argument count.
fn normalize_options(words: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(words.len() + 2);
    let mut in_options = true;
    let mut words = words.into_iter().enumerate();
    while let Some((i, w)) = words.next() {
        if i < 8 || !in_options {
            out.push(w);
            continue;
        }
        if !w.starts_with('-') || w == "--" {
            in_options = false;
            out.push(w);
            continue;
        }
        let setting = if w == "-o" {
            out.push(w);
            match words.next() {
                Some((_, v)) => v,
                None => continue,
            }
        } else if let Some(attached) = w.strip_prefix("-o") {
            out.push("-o".to_string());
            attached.to_string()
        } else {
            out.push(w);
            continue;
        };
        match setting.split_once('=') {
            Some((n, v)) => out.push(format!("{}={}", n.trim(), v.trim())),
            None => out.push(setting),
        }
    }
    out
}

/// Splits on white space; `{ ... }` (balanced) is one token without its
/// braces and the white space just inside them. An unclosed `{` takes the
/// rest of the line, with a note.
pub fn tokenize(text: &str, note: &mut dyn FnMut(String)) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if bytes[i] == b'{' {
            let start = i;
            let mut level = 0usize;
            let mut end = None;
            for (j, &b) in bytes.iter().enumerate().skip(start) {
                if b == b'{' {
                    level += 1;
                } else if b == b'}' {
                    level -= 1;
                    if level == 0 {
                        end = Some(j);
                        break;
                    }
                }
            }
            match end {
                Some(end) => {
                    out.push(
                        text[start + 1..end]
                            .trim_matches(|c: char| c.is_ascii_whitespace())
                            .to_string(),
                    );
                    i = end + 1;
                }
                None => {
                    let rest = text[start..].trim_end_matches(|c: char| c.is_ascii_whitespace());
                    note(format!("missing '}}' in \"{rest}\""));
                    out.push(
                        rest[1..]
                            .trim_matches(|c: char| c.is_ascii_whitespace())
                            .to_string(),
                    );
                    i = bytes.len();
                }
            }
        } else {
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push(text[start..i].to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_004: &str = "\
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o smtpd_tls_wrappermode=no
  -o smtpd_tls_security_level=encrypt
# a comment inside
  -o smtpd_recipient_restrictions=permit_mynetworks,permit_sasl_authenticated,reject
smtps     inet  n       -       n       -       -       smtpd
  -o { smtpd_tls_wrappermode = yes }
dovecot   unix -        n       n       -       -       pipe
  argv=/usr/libexec/dovecot/dovecot-lda -f ${sender} -d ${recipient}
";

    #[test]
    fn seed_004_services() {
        let cf = MasterCf::parse(Path::new("master.cf"), SEED_004).unwrap();
        let names: Vec<String> = cf.services.iter().map(Service::id).collect();
        assert_eq!(
            names,
            ["smtp/inet", "submission/inet", "smtps/inet", "dovecot/unix"]
        );
        let sub = cf.find("submission", Some(ServiceType::Inet)).unwrap();
        assert_eq!(sub.line, 2);
        assert_eq!(
            sub.options(),
            [
                ("smtpd_tls_wrappermode".to_string(), "no".to_string()),
                ("smtpd_tls_security_level".into(), "encrypt".into()),
                (
                    "smtpd_recipient_restrictions".into(),
                    "permit_mynetworks,permit_sasl_authenticated,reject".into()
                ),
            ]
        );
        let smtps = cf.find("smtps", None).unwrap();
        assert_eq!(
            smtps.options(),
            [("smtpd_tls_wrappermode".to_string(), "yes".to_string())]
        );
        assert_eq!(smtps.command_line(), "smtpd -o smtpd_tls_wrappermode=yes");
        let spaced = MasterCf::parse(
            Path::new("m"),
            "y unix - n n - - smtp -o { smtp_helo_name = a b }\n",
        )
        .unwrap();
        assert_eq!(
            spaced.services[0].command_line(),
            "smtp -o {smtp_helo_name=a b}"
        );
        let dovecot = cf.find("dovecot", None).unwrap();
        assert_eq!(dovecot.command, "pipe");
        assert_eq!(dovecot.args[0], "argv=/usr/libexec/dovecot/dovecot-lda");
        assert!(!dovecot.is_unprivileged());
        assert_eq!(dovecot.process_limit(), None);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let err = MasterCf::parse(Path::new("master.cf"), "smtp inet n - n - -\n").unwrap_err();
        assert_eq!(err.to_string(), "file master.cf: line 1: bad field count");
        let err =
            MasterCf::parse(Path::new("master.cf"), "\nsmtp tcp n - n - - smtpd\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid type field \"tcp\" in \"smtp tcp n - n - - smtpd\""
        );
        let err =
            MasterCf::parse(Path::new("master.cf"), "p unix n - y 60?? 1 pickup\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid wakeup field \"60??\" in \"p unix n - y 60?? 1 pickup\""
        );
        let cf = MasterCf::parse(
            Path::new("m"),
            "o unix - - n - - smtp -v -omail_name=x -x extra -oa=b\n",
        )
        .unwrap();
        assert_eq!(
            cf.services[0].args,
            ["-v", "-o", "mail_name=x", "-x", "extra", "-oa=b"]
        );
    }
}

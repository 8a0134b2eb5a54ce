//! SMTP command lines (RFC 5321 section 4.1): the verb, case-insensitive,
//! and its arguments. Parsing is pure; what is legal *now* is the session's
//! concern, and the reply wording is smtpd's.

use crate::params::{self, MailParams, ParamError, RcptParams};
use crate::path::{self, PathError};

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        from: String,
        params: MailParams,
    },
    Rcpt {
        to: String,
        params: RcptParams,
    },
    Data,
    /// `BDAT size [LAST]`.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Etrn(String),
    Starttls,
    Auth(String),
    Help,
    Expn(String),
}

/// Why a command line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// An empty line.
    Empty,
    /// A verb nobody knows (text as sent).
    Unknown(String),
    /// A known verb with arguments it cannot have (the verb, upper case).
    Syntax(&'static str),
    /// MAIL FROM / RCPT TO with a bad address.
    Address {
        verb: &'static str,
        error: PathError,
    },
    /// MAIL / RCPT with a bad ESMTP parameter.
    Param {
        verb: &'static str,
        error: ParamError,
    },
}

/// Parses one command line (without its CRLF). `strict` is
/// `strict_rfc821_envelopes`.
pub fn parse(line: &str, strict: bool) -> Result<Command, CommandError> {
    let line = line.trim_end_matches([' ', '\t']);
    if line.trim_start().is_empty() {
        return Err(CommandError::Empty);
    }
    let (verb, args) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i + 1..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    };
    let upper = verb.to_ascii_uppercase();
    let no_args = |cmd: Command, name: &'static str| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax(name))
        }
    };
    match upper.as_str() {
        "HELO" | "EHLO" => {
            let name: &'static str = if upper == "HELO" { "HELO" } else { "EHLO" };
            if args.is_empty() {
                return Err(CommandError::Syntax(name));
            }
            Ok(if name == "HELO" {
                Command::Helo(args.to_string())
            } else {
                Command::Ehlo(args.to_string())
            })
        }
        "MAIL" => {
            let rest = strip_keyword(args, "FROM:").ok_or(CommandError::Syntax("MAIL"))?;
            let p = path::parse(rest, strict).map_err(|error| CommandError::Address {
                verb: "MAIL",
                error,
            })?;
            let params = params::parse_mail(p.rest).map_err(|error| CommandError::Param {
                verb: "MAIL",
                error,
            })?;
            Ok(Command::Mail {
                from: p.address,
                params,
            })
        }
        "RCPT" => {
            let rest = strip_keyword(args, "TO:").ok_or(CommandError::Syntax("RCPT"))?;
            let p = path::parse(rest, strict).map_err(|error| CommandError::Address {
                verb: "RCPT",
                error,
            })?;
            // The null address is a sender, never a recipient.
            if p.address.is_empty() {
                return Err(CommandError::Address {
                    verb: "RCPT",
                    error: PathError::Syntax,
                });
            }
            let params = params::parse_rcpt(p.rest).map_err(|error| CommandError::Param {
                verb: "RCPT",
                error,
            })?;
            Ok(Command::Rcpt {
                to: p.address,
                params,
            })
        }
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => {
            let mut words = args.split_ascii_whitespace();
            let size = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or(CommandError::Syntax("BDAT"))?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(CommandError::Syntax("BDAT")),
            };
            if words.next().is_some() {
                return Err(CommandError::Syntax("BDAT"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => no_args(Command::Rset, "RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => Ok(Command::Quit),
        "VRFY" => {
            if args.is_empty() {
                return Err(CommandError::Syntax("VRFY"));
            }
            Ok(Command::Vrfy(args.to_string()))
        }
        "ETRN" => {
            if args.is_empty() {
                return Err(CommandError::Syntax("ETRN"));
            }
            Ok(Command::Etrn(args.trim_start_matches('#').to_string()))
        }
        "STARTTLS" => no_args(Command::Starttls, "STARTTLS"),
        "AUTH" => Ok(Command::Auth(args.to_string())),
        "HELP" => Ok(Command::Help),
        "EXPN" => Ok(Command::Expn(args.to_string())),
        _ => Err(CommandError::Unknown(verb.to_string())),
    }
}

/// `FROM:` / `TO:`, case-insensitive, at the start of `args`.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &args[keyword.len()..])
}

/// Whether `line` looks like a message header (`Name: value`): a name
/// of printable characters other than `:`, optional white space, then
/// `:`.
pub fn is_header(line: &str) -> bool {
    let b = line.as_bytes();
    let name = b
        .iter()
        .take_while(|&&c| c.is_ascii_graphic() && c != b':')
        .count();
    let rest = &b[name..];
    let gap = rest
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    name > 0 && rest.get(gap) == Some(&b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines() {
        assert!(is_header("Subject: x"));
        assert!(is_header("X-Thing :y"));
        assert!(!is_header("MAIL FROM:<a@b>"));
        assert!(!is_header(": x"));
        assert!(!is_header("body text"));
    }

    #[test]
    fn the_seed_000_session() {
        assert_eq!(
            parse("HELO somedomain.org", false),
            Ok(Command::Helo("somedomain.org".into()))
        );
        assert_eq!(
            parse("mail from: someone@somedomain.org", false),
            Ok(Command::Mail {
                from: "someone@somedomain.org".into(),
                params: MailParams::default()
            })
        );
        assert_eq!(
            parse("rcpt to: d.mazzocchio@kernel-panic.it", false),
            Ok(Command::Rcpt {
                to: "d.mazzocchio@kernel-panic.it".into(),
                params: RcptParams::default()
            })
        );
        assert_eq!(parse("DATA", false), Ok(Command::Data));
        assert_eq!(parse("quit", false), Ok(Command::Quit));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("", false), Err(CommandError::Empty));
        assert_eq!(
            parse("FOO bar", false),
            Err(CommandError::Unknown("FOO".into()))
        );
        assert_eq!(
            parse("MAIL <a@b>", false),
            Err(CommandError::Syntax("MAIL"))
        );
        assert_eq!(parse("HELO", false), Err(CommandError::Syntax("HELO")));
        assert_eq!(parse("DATA x", false), Err(CommandError::Syntax("DATA")));
        assert!(matches!(
            parse("MAIL FROM:<a@b", false),
            Err(CommandError::Address { verb: "MAIL", .. })
        ));
        assert!(matches!(
            parse("RCPT TO:<a@b> FOO=1", false),
            Err(CommandError::Param { verb: "RCPT", .. })
        ));
        assert_eq!(
            parse("BDAT 10 LAST", false),
            Ok(Command::Bdat {
                size: 10,
                last: true
            })
        );
        assert_eq!(parse("BDAT x", false), Err(CommandError::Syntax("BDAT")));
    }
}

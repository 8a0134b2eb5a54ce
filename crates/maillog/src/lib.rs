//! Log lines in Postfix's format, one function per event, written through
//! syslog(3), `maillog_file` or stderr. Log lines are an interface:
//! pflogsumm and fail2ban read them.
//!
//! Filled in with the receive path (issue 3).

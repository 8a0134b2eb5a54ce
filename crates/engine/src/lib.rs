//! The engine: a service host and one module per Postfix daemon (smtpd,
//! pickup, cleanup, trivial-rewrite, qmgr, bounce, the smtp client, local,
//! virtual, pipe, error, discard, showq, anvil), plus the master supervisor.
//!
//! Filled in with the receive path (issue 3).

//! The traits and message types between components (cleanup handle,
//! rewrite/resolve, bounce, delivery agent, anvil), so that smtpd depends on
//! "a cleanup", not on cleanup's code.
//!
//! Filled in with the receive path (issue 3).

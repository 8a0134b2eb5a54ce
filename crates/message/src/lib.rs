//! RFC 5321/5322 addresses (quoting, source routes, `%` and `!` forms),
//! headers, the MIME walk for header/body checks, Received and DSN building.
//!
//! Pure code, no I/O. Filled in with the receive path (issue 3); the crate
//! exists now so that the workspace has the layout of DESIGN.md section 8.

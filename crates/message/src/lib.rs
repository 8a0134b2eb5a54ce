//! Message-level formats: RFC 5322 dates (`date`), and (with the receive
//! path) addresses, headers, the MIME walk for header/body checks, and the
//! Received and DSN builders.
//!
//! Pure code apart from asking the C library for the local time zone.

pub mod date;
pub mod header;
pub mod mime;

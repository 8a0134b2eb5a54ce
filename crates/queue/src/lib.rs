//! The mail queue (DESIGN.md section 4): queue IDs, the queue-file format,
//! durable writing, and the scan that recovers after a crash.
//!
//! A queue file is a sequence of typed records: the envelope first (so qmgr
//! reads it without the body), then the content, then an end record that
//! makes the file complete. A file without a valid end record was never
//! acknowledged with 250 and is removed on recovery; a complete file is
//! delivered. Marking a recipient done rewrites one status byte in place.

pub mod deferlog;
pub mod file;
pub mod id;
pub mod maildrop;
pub mod pool;
pub mod postcat;
pub mod record;
pub mod sync;

pub use file::{QueueFile, QueueReader};
pub use id::QueueId;
pub use pool::Pool;
pub use record::{Record, RecordType};
pub use sync::Syncer;

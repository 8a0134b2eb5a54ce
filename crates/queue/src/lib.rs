//! The mail queue: the queue-file format (typed, append-only records), queue
//! IDs, the queue directories, durable hand-off with group commit, crash
//! recovery, and the rendering `postcat` prints.
//!
//! Filled in with the receive path (issue 3).

//! Sans-IO SMTP (RFC 5321) as Postfix's smtpd speaks it: command parsing
//! (`command`), envelope addresses (`path`), ESMTP parameters (`params`),
//! replies (`reply`) and the DATA receiver (`data`). No sockets here: bytes
//! in, typed values and reply bytes out, so every rule is tested with byte
//! fixtures and fuzzed.
//!
//! The server session state machine and the client side come with the
//! receive path and outbound issues.

pub mod client;
pub mod command;
pub mod data;
pub mod params;
pub mod path;
pub mod reply;
pub mod session;

pub use command::{Command, CommandError};
pub use data::{BareNewline, DataEvent, DataReceiver};
pub use path::Path;
pub use reply::Reply;

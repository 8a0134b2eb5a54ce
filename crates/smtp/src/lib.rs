//! Sans-IO SMTP (RFC 5321): command and reply parsing and formatting, the
//! DATA/BDAT receivers, ESMTP parameters, and the server and client state
//! machines. No sockets here: byte fixtures in, replies out.
//!
//! Filled in with the receive path (issue 3).

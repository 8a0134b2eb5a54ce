//! The commands of Postfix's user interface, one module each. The binaries
//! in `src/bin/` are three-line mains that call into here, so that
//! `cargo build` leaves exactly Postfix's command names in target/.
//! sendmail, mailq and newaliases share one module and dispatch on argv[0],
//! as Postfix's do.

pub mod maildrop;
pub mod msg;
pub mod postalias;
pub mod postcat;
pub mod postconf;
pub mod postdrop;
pub mod postfix;
pub mod postmap;
pub mod postqueue;
pub mod postsuper;
pub mod sendmail;
pub mod sendmail_bs;
pub mod unimplemented;

//! Queue IDs in Postfix's forms. Short (the default): the microseconds of
//! the arrival time as five hex digits followed by a serial number in hex
//! (`548D7286`). Long (`enable_long_queue_ids = yes`): the arrival time
//! (seconds, then microseconds) in vowel-free base 51, `z`, and the serial
//! in base 51, so that IDs sort by arrival time. Postfix takes the serial
//! from the file's inode, which needs a rename after the file is made;
//! Rostfix uses a per-process counter and creates the file under its ID
//! with O_EXCL, which is what makes the ID unique.

use std::fmt;

/// A queue ID; also the queue file's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

const BASE52: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxy";

impl QueueId {
    /// The short form from microseconds and a serial number.
    pub fn short(micros: u32, serial: u64) -> QueueId {
        QueueId(format!("{:05X}{serial:X}", micros & 0xfffff))
    }

    /// The long form from seconds, microseconds and a serial number.
    pub fn long(secs: u64, micros: u32, serial: u64) -> QueueId {
        let mut s = String::with_capacity(20);
        push_base(&mut s, secs, 51, 6);
        push_base(&mut s, u64::from(micros), 51, 4);
        s.push('z');
        push_base(&mut s, serial, 51, 1);
        QueueId(s)
    }

    /// Accepts the name of a queue file, refusing anything that could not
    /// be one (path separators, dots, empty).
    pub fn parse(name: &str) -> Option<QueueId> {
        (!name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| QueueId(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Appends `n` in base `base` over BASE52's digits, at least `width` digits.
fn push_base(s: &mut String, mut n: u64, base: u64, width: usize) {
    let mut digits = Vec::new();
    while n > 0 || digits.len() < width {
        digits.push(BASE52[(n % base) as usize]);
        n /= base;
    }
    s.extend(digits.iter().rev().map(|&b| b as char));
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_as_postfix() {
        assert_eq!(QueueId::short(0x548D7, 0x286).as_str(), "548D7286");
        assert_eq!(QueueId::short(0x1, 0xABCDEF).as_str(), "00001ABCDEF");
    }

    #[test]
    fn long_form_is_alphanumeric_and_ordered_by_time() {
        let a = QueueId::long(1_700_000_000, 1, 5);
        let b = QueueId::long(1_700_000_001, 1, 5);
        assert!(a < b);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a.as_str().len(), 12);
    }

    #[test]
    fn parse_refuses_paths() {
        assert!(QueueId::parse("548D7286").is_some());
        assert!(QueueId::parse("../x").is_none());
        assert!(QueueId::parse("").is_none());
    }
}

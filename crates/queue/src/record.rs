//! Queue-file records: a type byte, a 4-byte little-endian length, the
//! payload. Typed and append-only; the one in-place change is a
//! recipient's status byte, the first byte of its payload.

/// Record types. The order in a file: `Time`, `Sender`, `Attr`*,
/// `Recipient`*, `Content`, `Line`*, `End`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// Arrival time: seconds and microseconds since the epoch (12 bytes).
    Time = b'T',
    /// Envelope sender (empty: the null sender).
    Sender = b'S',
    /// `name=value` attribute (client address, helo, protocol, ...).
    Attr = b'A',
    /// Recipient: status byte, then `final\0original` addresses.
    Recipient = b'R',
    /// Marks the start of the message content.
    Content = b'M',
    /// One line of content, without its newline.
    Line = b'L',
    /// Filler before the end record, where a file reused from the pool
    /// holds more than the new message ([`crate::pool`]); read over.
    Pad = b'P',
    /// End: the total length of the file before this record (8 bytes),
    /// then the queue ID it was written under (files written before
    /// Rostfix recorded it have the length alone).
    End = b'E',
}

impl RecordType {
    pub fn from_byte(b: u8) -> Option<RecordType> {
        Some(match b {
            b'T' => RecordType::Time,
            b'S' => RecordType::Sender,
            b'A' => RecordType::Attr,
            b'R' => RecordType::Recipient,
            b'M' => RecordType::Content,
            b'L' => RecordType::Line,
            b'P' => RecordType::Pad,
            b'E' => RecordType::End,
            _ => return None,
        })
    }
}

/// A recipient's status byte.
pub const RCPT_PENDING: u8 = b'-';
pub const RCPT_DONE: u8 = b'+';

/// Bytes before a record's payload.
pub const HEADER_LEN: usize = 5;

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordType,
    pub payload: Vec<u8>,
    /// Offset of the record's first byte in the file.
    pub offset: u64,
}

/// Encodes a record into `out`.
pub fn encode(kind: RecordType, payload: &[u8], out: &mut Vec<u8>) {
    out.push(kind as u8);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The data ends inside a record (an incomplete file).
    Truncated,
    /// An unknown type byte: the file is corrupt.
    BadType(u8),
}

/// Decodes the record at the start of `buf`; returns it and its length.
pub fn decode(buf: &[u8], offset: u64) -> Result<(Record, usize), DecodeError> {
    let (kind, payload, used) = decode_borrowed(buf)?;
    Ok((
        Record {
            kind,
            payload: payload.to_vec(),
            offset,
        },
        used,
    ))
}

/// Decodes the record at the start of `buf` without copying: its type,
/// its payload and its length.
pub fn decode_borrowed(buf: &[u8]) -> Result<(RecordType, &[u8], usize), DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Truncated);
    }
    let kind = RecordType::from_byte(buf[0]).ok_or(DecodeError::BadType(buf[0]))?;
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let end = HEADER_LEN.checked_add(len).ok_or(DecodeError::Truncated)?;
    if buf.len() < end {
        return Err(DecodeError::Truncated);
    }
    Ok((kind, &buf[HEADER_LEN..end], end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        for kind in [
            RecordType::Time,
            RecordType::Sender,
            RecordType::Attr,
            RecordType::Recipient,
            RecordType::Content,
            RecordType::Line,
            RecordType::Pad,
            RecordType::End,
        ] {
            for payload in [&b""[..], b"x", &[0u8; 300][..]] {
                let mut buf = Vec::new();
                encode(kind, payload, &mut buf);
                let (r, used) = decode(&buf, 7).unwrap();
                assert_eq!(
                    (r.kind, r.payload.as_slice(), r.offset, used),
                    (kind, payload, 7, buf.len())
                );
                assert_eq!(
                    decode(&buf[..buf.len() - 1], 0).unwrap_err(),
                    DecodeError::Truncated
                );
            }
        }
        assert_eq!(
            decode(b"Z\0\0\0\0", 0).unwrap_err(),
            DecodeError::BadType(b'Z')
        );
    }
}

//! Message ids: a short opaque token that encodes where the record lives
//! (queue id, partition, offset), so reading a message back needs no index.

use std::fmt;

const PREFIX: &str = "msg_";
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The location of one record, written as `msg_` plus Crockford base32 of three varints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    pub queue_id: u64,
    pub partition: u32,
    pub offset: u64,
}

impl MessageId {
    /// Parses an id; only the canonical spelling is accepted.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(PREFIX)?;
        let bytes = decode_base32(body)?;
        let mut cursor = bytes.as_slice();
        let queue_id = read_varint(&mut cursor)?;
        let partition = u32::try_from(read_varint(&mut cursor)?).ok()?;
        let offset = read_varint(&mut cursor)?;
        let id = Self { queue_id, partition, offset };
        (cursor.is_empty() && id.to_string() == s).then_some(id)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(16);
        write_varint(&mut bytes, self.queue_id);
        write_varint(&mut bytes, u64::from(self.partition));
        write_varint(&mut bytes, self.offset);
        write!(f, "{PREFIX}{}", encode_base32(&bytes))
    }
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_text() {
        for (q, p, o) in [(1, 0, 0), (7, 2, 123_456), (u64::MAX, u32::MAX, u64::MAX)] {
            let id = MessageId { queue_id: q, partition: p, offset: o };
            let text = id.to_string();
            assert_eq!(MessageId::parse(&text), Some(id), "{text}");
        }
    }

    #[test]
    fn refuses_foreign_and_non_canonical_text() {
        for bad in ["", "msg_", "msg_123456789", "sub_0400", "msg_04000u", "msg_0400!"] {
            assert_eq!(MessageId::parse(bad), None, "{bad}");
        }
    }
}

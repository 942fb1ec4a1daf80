//! One record on disk: `[body length u32][CRC-32 of the body u32][body]`, all little-endian.
//! The body holds the record's offset (so recovery can check the sequence) and its fields.

use serde_json::{Map, Value};

use crate::{
    domain::Timestamp,
    ports::{Content, Record},
};

/// Bytes before the body.
pub(super) const HEADER: usize = 8;
/// Largest body a frame may declare; anything longer is a torn or foreign frame.
const MAX_BODY: usize = 1 << 30;

const JSON: u8 = 1;
const PERSISTENT: u8 = 2;
const PRIORITY: u8 = 4;
const KEY: u8 = 8;
const ROUTING_KEY: u8 = 16;

/// Appends the frame of `record` at `offset` to `out`.
pub(super) fn encode(offset: u64, record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let (is_json, content) = match &record.content {
        Content::Json(s) => (true, s),
        Content::Text(s) => (false, s),
    };
    let mut flags = 0;
    for (set, flag) in [
        (is_json, JSON),
        (record.persistent, PERSISTENT),
        (record.priority.is_some(), PRIORITY),
        (record.key.is_some(), KEY),
        (record.routing_key.is_some(), ROUTING_KEY),
    ] {
        if set {
            flags |= flag;
        }
    }
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&record.published_at.0.to_le_bytes());
    out.extend_from_slice(&record.ttl_ms.to_le_bytes());
    out.push(flags);
    out.push(record.priority.unwrap_or(0));
    for text in [record.key.as_deref(), record.routing_key.as_deref()].into_iter().flatten() {
        put_str(out, text);
    }
    put_str(out, content);
    let headers =
        if record.headers.is_empty() { String::new() } else { Value::Object(record.headers.clone()).to_string() };
    put_str(out, &headers);
    let body = &out[start + HEADER..];
    let (len, crc) = (body.len() as u32, crc32fast::hash(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// What a frame's header says: the body's length, or that the bytes are no frame.
pub(super) fn body_len(header: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(header.get(..4)?.try_into().ok()?) as usize;
    (len > 0 && len <= MAX_BODY).then_some(len)
}

/// A frame's body, checked against the CRC in its header: its offset, publish time, content
/// length and the record itself.
pub(super) fn decode(header: &[u8], body: &[u8]) -> Option<(u64, Record)> {
    let crc = u32::from_le_bytes(header.get(4..HEADER)?.try_into().ok()?);
    if crc32fast::hash(body) != crc {
        return None;
    }
    let mut r = Reader(body);
    let offset = r.u64()?;
    let published_at = Timestamp(r.u64()? as i64);
    let ttl_ms = r.u64()?;
    let flags = r.bytes(1)?[0];
    let priority = r.bytes(1)?[0];
    let key = if flags & KEY != 0 { Some(r.string()?) } else { None };
    let routing_key = if flags & ROUTING_KEY != 0 { Some(r.string()?) } else { None };
    let text = r.string()?;
    let content = if flags & JSON != 0 { Content::Json(text) } else { Content::Text(text) };
    let headers = r.string()?;
    let headers: Map<String, Value> =
        if headers.is_empty() { Map::new() } else { serde_json::from_str(&headers).ok()? };
    let record = Record {
        key,
        routing_key,
        content,
        headers,
        priority: (flags & PRIORITY != 0).then_some(priority),
        ttl_ms,
        persistent: flags & PERSISTENT != 0,
        published_at,
    };
    Some((offset, record))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let len = u32::from_le_bytes(self.bytes(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.bytes(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(key: Option<&str>, priority: Option<u8>, headers: Map<String, Value>) -> Record {
        Record {
            key: key.map(str::to_owned),
            routing_key: Some("a.b".into()),
            content: Content::Json(r#"{"n":1}"#.into()),
            headers,
            priority,
            ttl_ms: 60_000,
            persistent: true,
            published_at: Timestamp(1_700_000_000_123),
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let mut headers = Map::new();
        headers.insert("h".into(), json!("v"));
        for r in [record(Some("k"), Some(7), headers), record(None, None, Map::new())] {
            let mut out = Vec::new();
            encode(42, &r, &mut out);
            let len = body_len(&out).unwrap();
            assert_eq!(out.len(), HEADER + len);
            assert_eq!(decode(&out[..HEADER], &out[HEADER..]), Some((42, r)));
        }
    }

    #[test]
    fn a_damaged_or_torn_frame_is_refused() {
        let mut out = Vec::new();
        encode(1, &record(None, None, Map::new()), &mut out);
        let mut damaged = out.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&damaged[..HEADER], &damaged[HEADER..]), None);
        assert_eq!(decode(&out[..HEADER], &out[HEADER..out.len() - 1]), None, "torn");
        assert_eq!(body_len(&[0; HEADER]), None, "zeros are no frame");
    }
}

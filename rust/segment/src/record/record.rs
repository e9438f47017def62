//! Records inside a v2 batch (`DefaultRecord`): a varint length, then attributes (int8),
//! timestampDelta (varlong), offsetDelta (varint), key and value (varint length, -1 = null),
//! headerCount (varint) and per header a key (varint length, UTF-8 by contract, kept as bytes
//! here so nothing is lost) and a value (varint length, -1 = null).
//!
//! Parsing borrows every byte string; headers are validated once and then iterated from their
//! raw bytes, so reading a record allocates nothing.

use crate::error::{ReadError, ReadErrorKind};
use crate::varint::{read_varint, read_varlong, varint_size, varlong_size, write_varint, write_varlong};

/// One record header. The key is UTF-8 by Kafka's contract; it is kept as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// A record's headers, as the raw bytes that follow `headerCount` (already validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    raw: &'a [u8],
    count: u32,
}

impl<'a> Headers<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter { raw: self.raw, pos: 0, left: self.count }
    }
}

impl<'a> IntoIterator for Headers<'a> {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over validated headers.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    raw: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated by `parse_headers`, so these cannot fail; stop rather than panic if they did.
        let key = read_bytes(self.raw, &mut self.pos).ok()??;
        let value = read_bytes(self.raw, &mut self.pos).ok()?;
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

/// One record of a v2 batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Unused by Kafka (always 0), kept to re-encode byte-identical.
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
}

/// Why a record failed to parse.
type Reason = &'static str;

fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, Reason> {
    let len = read_varint(buf, pos).ok_or("bad length varint")?;
    if len < 0 {
        return if len == -1 { Ok(None) } else { Err("negative length") };
    }
    let end = pos.checked_add(len as usize).ok_or("length overflow")?;
    let bytes = buf.get(*pos..end).ok_or("length runs past the record")?;
    *pos = end;
    Ok(Some(bytes))
}

fn parse_record(body: &[u8]) -> Result<Record<'_>, Reason> {
    let mut pos = 0;
    let attributes = *body.first().ok_or("empty record")? as i8;
    pos += 1;
    let timestamp_delta = read_varlong(body, &mut pos).ok_or("bad timestampDelta varlong")?;
    let offset_delta = read_varint(body, &mut pos).ok_or("bad offsetDelta varint")?;
    let key = read_bytes(body, &mut pos)?;
    let value = read_bytes(body, &mut pos)?;
    let count = read_varint(body, &mut pos).ok_or("bad headerCount varint")?;
    if count < 0 {
        return Err("negative header count");
    }
    let start = pos;
    for _ in 0..count {
        if read_bytes(body, &mut pos)?.is_none() {
            return Err("null header key");
        }
        read_bytes(body, &mut pos)?;
    }
    if pos != body.len() {
        return Err("record length disagrees with its fields");
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: Headers { raw: &body[start..], count: count as u32 },
    })
}

/// The records of one batch (uncompressed bytes), checked against the header's count: fewer
/// records, or bytes left after the last one, is an error, as in Kafka's `DefaultRecordBatch`.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    data: &'a [u8],
    pos: usize,
    declared: i32,
    index: u32,
    batch_position: u64,
    failed: bool,
}

impl<'a> Records<'a> {
    pub(crate) fn new(data: &'a [u8], declared: i32, batch_position: u64) -> Records<'a> {
        Records { data, pos: 0, declared, index: 0, batch_position, failed: false }
    }

    fn fail(&mut self, kind: ReadErrorKind) -> Option<Result<Record<'a>, ReadError>> {
        self.failed = true;
        Some(Err(ReadError::new(self.batch_position, kind)))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.index as i64 >= i64::from(self.declared) {
            if self.pos != self.data.len() {
                let extra = self.data.len() - self.pos;
                return self.fail(ReadErrorKind::Malformed(format!(
                    "{extra} bytes remain after the batch's {} declared records",
                    self.declared
                )));
            }
            return None;
        }
        let index = self.index;
        let malformed = |reason| ReadErrorKind::MalformedRecord { index, reason };
        let Some(len) = read_varint(self.data, &mut self.pos) else {
            if self.pos >= self.data.len() {
                return self.fail(ReadErrorKind::RecordCountMismatch { declared: self.declared, actual: index.into() });
            }
            return self.fail(malformed("bad length varint"));
        };
        if len < 1 {
            return self.fail(malformed("record length below 1"));
        }
        let Some(body) = self.data.get(self.pos..self.pos + len as usize) else {
            return self.fail(malformed("record length runs past the batch"));
        };
        self.pos += len as usize;
        self.index += 1;
        match parse_record(body) {
            Ok(r) => Some(Ok(r)),
            Err(reason) => self.fail(malformed(reason)),
        }
    }
}

/// Size of a record's body (after its length prefix) and its header count.
fn body_size<'h>(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl Iterator<Item = Header<'h>>,
) -> (usize, i32) {
    let bytes_size = |b: Option<&[u8]>| match b {
        None => 1,
        Some(b) => varint_size(b.len() as i32) + b.len(),
    };
    let mut header_count = 0i32;
    let mut headers_size = 0usize;
    for h in headers {
        header_count += 1;
        headers_size += bytes_size(Some(h.key)) + bytes_size(h.value);
    }
    let body = 1
        + varlong_size(timestamp_delta)
        + varint_size(offset_delta)
        + bytes_size(key)
        + bytes_size(value)
        + varint_size(header_count)
        + headers_size;
    (body, header_count)
}

/// Appends one record in v2 form (length prefix included), with minimal varints as Kafka writes
/// them, so re-encoding a parsed record gives back its original bytes.
pub fn write_record<'h, H>(
    out: &mut Vec<u8>,
    attributes: i8,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: H,
) where
    H: IntoIterator<Item = Header<'h>>,
    H::IntoIter: Clone,
{
    let headers = headers.into_iter();
    let (body, header_count) = body_size(timestamp_delta, offset_delta, key, value, headers.clone());
    out.reserve(body + 5);
    write_varint(out, body as i32);
    out.push(attributes as u8);
    write_varlong(out, timestamp_delta);
    write_varint(out, offset_delta);
    let put = |out: &mut Vec<u8>, b: Option<&[u8]>| match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    };
    put(out, key);
    put(out, value);
    write_varint(out, header_count);
    for h in headers {
        put(out, Some(h.key));
        put(out, h.value);
    }
}

impl Record<'_> {
    /// Bytes [`Self::write`] appends, without writing them.
    pub fn encoded_len(&self) -> usize {
        let (body, _) = body_size(self.timestamp_delta, self.offset_delta, self.key, self.value, self.headers.iter());
        varint_size(body as i32) + body
    }

    /// Appends this record in v2 form.
    pub fn write(&self, out: &mut Vec<u8>) {
        write_record(
            out,
            self.attributes,
            self.timestamp_delta,
            self.offset_delta,
            self.key,
            self.value,
            self.headers,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
    }

    proptest! {
        #[test]
        fn record_roundtrip(
            ts in any::<i64>(), od in any::<i32>(), attrs in any::<i8>(),
            key in arb_bytes(), value in arb_bytes(),
            headers in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..10), arb_bytes()), 0..5),
        ) {
            let hs: Vec<Header<'_>> = headers.iter().map(|(k, v)| Header { key: k, value: v.as_deref() }).collect();
            let mut out = Vec::new();
            write_record(&mut out, attrs, ts, od, key.as_deref(), value.as_deref(), hs.iter().copied());
            let mut records = Records::new(&out, 1, 0);
            let r = records.next().unwrap().unwrap();
            prop_assert!(records.next().is_none());
            prop_assert_eq!(r.attributes, attrs);
            prop_assert_eq!(r.timestamp_delta, ts);
            prop_assert_eq!(r.offset_delta, od);
            prop_assert_eq!(r.key, key.as_deref());
            prop_assert_eq!(r.value, value.as_deref());
            prop_assert_eq!(r.headers.iter().collect::<Vec<_>>(), hs);
            let mut again = Vec::new();
            r.write(&mut again);
            prop_assert_eq!(r.encoded_len(), out.len());
            prop_assert_eq!(again, out);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), n in 0i32..4) {
            for r in Records::new(&data, n, 0).flatten() {
                let _ = r.headers.iter().count();
            }
        }
    }

    #[test]
    fn count_mismatch_is_typed() {
        let mut out = Vec::new();
        write_record(&mut out, 0, 0, 0, None, Some(b"v"), []);
        let errs: Vec<_> = Records::new(&out, 2, 7).filter_map(Result::err).collect();
        assert!(matches!(errs[0].kind, ReadErrorKind::RecordCountMismatch { declared: 2, actual: 1 }));
        assert_eq!(errs[0].position, 7);
        let errs: Vec<_> = Records::new(&out, 0, 0).filter_map(Result::err).collect();
        assert!(matches!(errs[0].kind, ReadErrorKind::Malformed(_)));
    }
}

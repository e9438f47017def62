//! The canonical form `message_to_avro` checks inline (`checks_canonical`): for each rule, a
//! canonical message is accepted (and gives its bytes back), its non-canonical twin is refused
//! with a reason saying what and where, and the twin really is one the round trip would not give
//! back (the lenient decoder's datum, transcoded back, differs).

use crate::transcode::Transcoder as _;

use super::*;
use codec::ProtobufTranscoder;

const RULES: &str = r#"
syntax = "proto3";
package t.c;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message R {
  int32 i = 1;
  sint32 si = 2;
  uint32 u = 3;
  bool b = 4;
  string s = 5;
  bytes by = 6;
  float f = 7;
  double d = 8;
  E e = 9;
  repeated int32 p = 10;
  map<int32, string> m = 11;
  google.protobuf.Timestamp t = 12;
  google.protobuf.Int32Value w = 13;
  int64 l = 14;
  repeated string rs = 15;
  optional int32 oi = 16;
  repeated bool pb = 17;
  map<string, E> me = 18;
  google.protobuf.BoolValue wb = 19;
  enum E { Z = 0; A = 1; N = -2; }
}
"#;

fn rules() -> ProtobufTranscoder {
    transcoder(RULES, &refs()).unwrap().0
}

/// A varint's minimal bytes.
fn v(x: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x = x;
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
    out
}

/// A length-delimited field: its tag, the body's minimal length, the body.
fn ld(tag: &[u8], body: &[&[u8]]) -> Vec<u8> {
    let body = body.concat();
    cat(&[tag, &v(body.len() as u64), &body])
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[track_caller]
fn accepted(t: &ProtobufTranscoder, m: &[u8]) {
    let mut avro = Vec::new();
    if let Err(e) = t.message_to_avro(m, &mut avro) {
        panic!("refused a canonical message {m:02x?}: {e}");
    }
    let mut back = Vec::new();
    t.avro_to_message(&avro, &mut back).unwrap();
    assert_eq!(back, m, "accepted, so it gives its bytes back");
}

#[track_caller]
fn refused(t: &ProtobufTranscoder, m: &[u8], what: &str) {
    let mut avro = Vec::new();
    match t.message_to_avro(m, &mut avro) {
        Err(Fallback::Transcode { format: "protobuf", reason }) => {
            assert!(reason.contains(what), "{m:02x?}: reason {reason:?} does not say {what:?}");
            assert!(reason.contains("byte"), "{m:02x?}: reason {reason:?} does not say where");
        }
        other => panic!("{m:02x?}: {other:?}, expected a refusal saying {what:?}"),
    }
    // The twin is one the round trip does not give back (else the check would be too strict).
    avro.clear();
    if t.message_to_avro_lenient(m, &mut avro).is_ok() {
        let mut back = Vec::new();
        assert!(t.avro_to_message(&avro, &mut back).is_err() || back != m, "{m:02x?} round-trips: refusing it loses a value");
    }
}

#[test]
fn the_transcoder_claims_it() {
    assert!(rules().checks_canonical());
}

#[test]
fn varints_minimal() {
    let t = rules();
    accepted(&t, &[0x08, 0x01]);
    refused(&t, &[0x08, 0x81, 0x00], "not minimal");
    refused(&t, &[0x88, 0x00, 0x01], "not minimal"); // the tag
    accepted(&t, &[0x2a, 0x01, b'a']);
    refused(&t, &[0x2a, 0x81, 0x00, b'a'], "not minimal"); // a length
    accepted(&t, &cat(&[&[0x70], &v(1 << 63)]));
    refused(&t, &[0x70, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], "not minimal");
    // A nested message's length, and a varint inside it.
    accepted(&t, &[0x6a, 0x02, 0x08, 0x05]);
    refused(&t, &[0x6a, 0x82, 0x00, 0x08, 0x05], "not minimal");
    refused(&t, &[0x6a, 0x03, 0x08, 0x85, 0x00], "not minimal");
    // Packed items.
    accepted(&t, &[0x52, 0x02, 0x01, 0x02]);
    refused(&t, &[0x52, 0x03, 0x81, 0x00, 0x02], "not minimal");
}

#[test]
fn int32_and_enum_numbers_sign_extended() {
    let t = rules();
    let minus_one = cat(&[&[0x08], &v(u64::MAX)]);
    assert_eq!(minus_one.len(), 11);
    accepted(&t, &minus_one);
    refused(&t, &cat(&[&[0x08], &v(u64::from(u32::MAX))]), "sign-extended"); // -1 in five bytes
    refused(&t, &cat(&[&[0x08], &v((1 << 32) | 5)]), "sign-extended"); // 5 with upper bits
    accepted(&t, &cat(&[&[0x80, 0x01], &v(u64::MAX)])); // optional int32 -1
    refused(&t, &cat(&[&[0x80, 0x01], &v(u64::from(u32::MAX))]), "sign-extended");
    // Enum N = -2.
    accepted(&t, &cat(&[&[0x48], &v(-2i64 as u64)]));
    refused(&t, &cat(&[&[0x48], &v(u64::from(-2i32 as u32))]), "sign-extended");
    // In a packed run.
    accepted(&t, &cat(&[&[0x52, 0x0b, 0x01], &v(u64::MAX)]));
    refused(&t, &cat(&[&[0x52, 0x06, 0x01], &v(u64::from(u32::MAX))]), "sign-extended");
    // As a map value.
    accepted(&t, &ld(&[0x92, 0x01], &[&[0x0a, 0x01, b'k', 0x10], &v(-2i64 as u64)]));
    refused(&t, &ld(&[0x92, 0x01], &[&[0x0a, 0x01, b'k', 0x10], &v(u64::from(-2i32 as u32))]), "sign-extended");
}

#[test]
fn uint32_and_sint32_within_32_bits() {
    let t = rules();
    accepted(&t, &cat(&[&[0x18], &v(u64::from(u32::MAX))]));
    refused(&t, &cat(&[&[0x18], &v(1 << 32)]), "beyond 32 bits");
    accepted(&t, &cat(&[&[0x10], &v(u64::from(u32::MAX))]));
    refused(&t, &cat(&[&[0x10], &v((1 << 33) | 1)]), "beyond 32 bits");
}

#[test]
fn bools_zero_or_one() {
    let t = rules();
    accepted(&t, &[0x20, 0x01]);
    refused(&t, &[0x20, 0x02], "not 0 or 1");
    refused(&t, &[0x20, 0x81, 0x00], "not minimal");
    accepted(&t, &[0x8a, 0x01, 0x03, 0x00, 0x01, 0x00]); // packed, false included
    refused(&t, &[0x8a, 0x01, 0x02, 0x01, 0x07], "not 0 or 1");
    accepted(&t, &[0x9a, 0x01, 0x02, 0x08, 0x01]); // BoolValue(true)
    refused(&t, &[0x9a, 0x01, 0x02, 0x08, 0x02], "not 0 or 1");
}

#[test]
fn implicit_defaults_not_written() {
    let t = rules();
    accepted(&t, &[]);
    refused(&t, &[0x08, 0x00], "default");
    refused(&t, &[0x10, 0x00], "default");
    refused(&t, &[0x18, 0x00], "default");
    refused(&t, &[0x20, 0x00], "default");
    refused(&t, &[0x2a, 0x00], "default");
    refused(&t, &[0x32, 0x00], "default");
    refused(&t, &[0x3d, 0, 0, 0, 0], "default");
    accepted(&t, &[0x3d, 0, 0, 0, 0x80]); // -0.0 is not the default
    refused(&t, &[0x41, 0, 0, 0, 0, 0, 0, 0, 0], "default");
    accepted(&t, &[0x41, 0, 0, 0, 0, 0, 0, 0, 0x80]);
    refused(&t, &[0x48, 0x00], "default"); // enum number 0
    refused(&t, &[0x70, 0x00], "default");
    // Explicit presence: a default is a value.
    accepted(&t, &[0x80, 0x01, 0x00]);
    // Repeated items: defaults are items.
    accepted(&t, &[0x7a, 0x00, 0x7a, 0x01, b'a']);
}

#[test]
fn packed_runs_one_and_not_empty() {
    let t = rules();
    accepted(&t, &[0x52, 0x02, 0x01, 0x02]);
    refused(&t, &[0x52, 0x00], "without items");
    refused(&t, &[0x52, 0x01, 0x01, 0x52, 0x01, 0x02], "written again");
    refused(&t, &[0x50, 0x01, 0x50, 0x02], "wire type"); // unpacked
    refused(&t, &[0x7a, 0x01, b'a', 0x70, 0x01, 0x7a, 0x01, b'b'], "order"); // items not contiguous
}

#[test]
fn map_entries_key_then_value() {
    let t = rules();
    accepted(&t, &[0x5a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a']);
    // Defaults inside an entry are written (Java does): key 0, value "".
    accepted(&t, &[0x5a, 0x04, 0x08, 0x00, 0x12, 0x00]);
    refused(&t, &[0x5a, 0x03, 0x12, 0x01, b'a'], "does not start with its key"); // key left out
    refused(&t, &[0x5a, 0x02, 0x08, 0x01], "no value"); // value left out
    refused(&t, &[0x5a, 0x00], "does not start with its key"); // both left out
    refused(&t, &[0x5a, 0x05, 0x12, 0x01, b'a', 0x08, 0x01], "does not start with its key"); // reordered
    refused(&t, &[0x5a, 0x07, 0x08, 0x01, 0x12, 0x01, b'a', 0x18, 0x01], "more after its value"); // extra
    refused(&t, &[0x5a, 0x06, 0x08, 0x81, 0x00, 0x12, 0x01, b'a'], "not minimal");
    // An empty entry followed by a byte that looks like a key tag (bounds of the entry).
    refused(&t, &[0x5a, 0x00, 0x5a, 0x05, 0x08, 0x01, 0x12, 0x01, b'a'], "does not start with its key");
}

#[test]
fn timestamps_as_the_encoder_writes_them() {
    let t = rules();
    accepted(&t, &[0x62, 0x00]); // the epoch
    accepted(&t, &ld(&[0x62], &[&[0x08, 0x01, 0x10], &v(1000)]));
    accepted(&t, &ld(&[0x62], &[&[0x10], &v(999_999_000)]));
    accepted(&t, &ld(&[0x62], &[&[0x08], &v(-1i64 as u64)]));
    accepted(&t, &ld(&[0x62], &[&[0x08], &v(-62_135_596_800i64 as u64)]));
    refused(&t, &[0x62, 0x02, 0x08, 0x00], "zero written out");
    refused(&t, &[0x62, 0x04, 0x08, 0x01, 0x10, 0x00], "zero written out");
    refused(&t, &ld(&[0x62], &[&[0x08, 0x01, 0x10], &v(1001)]), "whole microseconds");
    refused(&t, &ld(&[0x62], &[&[0x08, 0x01, 0x10], &v((1 << 32) | 1000)]), "out of range");
    refused(&t, &ld(&[0x62], &[&[0x10], &v(1000), &[0x08, 0x01]]), "Timestamp: tag 8");
    refused(&t, &ld(&[0x62], &[&[0x08], &v(253_402_300_800)]), "out of range");
    refused(&t, &ld(&[0x62], &[&[0x08], &v(-62_135_596_801i64 as u64)]), "out of range");
    refused(&t, &[0x62, 0x05, 0x08, 0x81, 0x00, 0x10, 0x01], "not minimal");
}

#[test]
fn wrappers_as_the_encoder_writes_them() {
    let t = rules();
    accepted(&t, &[0x6a, 0x00]); // Int32Value(0)
    accepted(&t, &[0x6a, 0x02, 0x08, 0x05]);
    accepted(&t, &cat(&[&[0x6a, 0x0b, 0x08], &v(u64::MAX)]));
    refused(&t, &[0x6a, 0x02, 0x08, 0x00], "default value written out");
    refused(&t, &cat(&[&[0x6a, 0x06, 0x08], &v(u64::from(u32::MAX))]), "sign-extended");
    refused(&t, &[0x6a, 0x04, 0x08, 0x05, 0x08, 0x06], "more after its value");
    accepted(&t, &[0x9a, 0x01, 0x00]); // BoolValue(false)
    refused(&t, &[0x9a, 0x01, 0x02, 0x08, 0x00], "default value written out");
}

#[test]
fn proto2_unpacked_and_explicit_packed() {
    let text = "syntax = \"proto2\"; message P { repeated int32 u = 1; repeated sint32 k = 2 [packed = true]; optional int32 o = 3; }";
    let t = transcoder(text, &refs()).unwrap().0;
    accepted(&t, &[0x08, 0x00, 0x08, 0x01]);
    refused(&t, &[0x0a, 0x02, 0x00, 0x01], "wire type");
    accepted(&t, &[0x12, 0x02, 0x00, 0x03]);
    refused(&t, &[0x12, 0x00], "without items");
    refused(&t, &cat(&[&[0x12, 0x05], &v(1 << 32)]), "beyond 32 bits");
    accepted(&t, &[0x18, 0x00]);
}

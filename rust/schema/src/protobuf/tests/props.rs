//! Property tests: random message schemas (nested, repeated, maps, oneofs, enums, optional;
//! proto2 and proto3, declaration order ≠ field-number order) and random values written by
//! prost-reflect go to columns with exactly their values; mutated, truncated and random bytes
//! never panic and never give a wrong value.

use std::fmt::Write as _;

use prost_reflect::{Kind, MapKey};
use proptest::prelude::*;

use super::*;

const SCALARS: [&str; 15] = [
    "int32", "sint32", "sfixed32", "int64", "sint64", "sfixed64", "uint32", "fixed32", "uint64", "fixed64", "float",
    "double", "bool", "string", "bytes",
];
const KEYS: [&str; 12] =
    ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string"];

#[derive(Clone, Debug)]
enum Ty {
    Scalar(usize),
    Enum,
    Msg(Vec<F>),
}

#[derive(Clone, Debug)]
struct F {
    ty: Ty,
    /// 0 plain, 1 optional, 2 and 3 repeated, 4 map (key), 5 oneof member.
    label: u8,
    key: usize,
}

#[derive(Clone, Debug)]
struct Shape {
    proto3: bool,
    fields: Vec<F>,
    reverse: bool,
    spread: u32,
}

fn ty() -> impl Strategy<Value = Ty> {
    let leaf = prop_oneof![4 => (0..SCALARS.len()).prop_map(Ty::Scalar), 1 => Just(Ty::Enum)];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop::collection::vec((inner, 0u8..6, 0..KEYS.len()).prop_map(|(ty, label, key)| F { ty, label, key }), 1..5)
            .prop_map(Ty::Msg)
    })
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        prop::collection::vec((ty(), 0u8..6, 0..KEYS.len()).prop_map(|(ty, label, key)| F { ty, label, key }), 1..7),
        any::<bool>(),
        prop_oneof![Just(1u32), Just(6u32)],
    )
        .prop_map(|(proto3, fields, reverse, spread)| Shape { proto3, fields, reverse, spread })
}

fn render(s: &Shape) -> String {
    let mut out = String::new();
    let syntax = if s.proto3 { "proto3" } else { "proto2" };
    let _ = writeln!(out, "syntax = \"{syntax}\";\npackage rnd.p;");
    let mut n = 0;
    render_message(s, "Root", &s.fields, &mut n, &mut out);
    out.push_str("enum En { EN_ZERO = 0; EN_A = 1; EN_B = -3; EN_C = 100000; }\n");
    out
}

fn render_message(s: &Shape, name: &str, fields: &[F], n: &mut usize, out: &mut String) {
    let _ = writeln!(out, "message {name} {{");
    let mut decls = Vec::new();
    let mut oneof = Vec::new();
    let count = fields.len() as u32;
    for (i, f) in fields.iter().enumerate() {
        let number = if s.reverse { count - i as u32 } else { i as u32 + 1 } * s.spread;
        let tname = match &f.ty {
            Ty::Scalar(k) => SCALARS[*k].to_string(),
            Ty::Enum => "En".to_string(),
            Ty::Msg(sub) => {
                *n += 1;
                let sub_name = format!("M{n}");
                render_message(s, &sub_name, sub, n, out);
                sub_name
            }
        };
        let fname = format!("f{i}");
        let line = match f.label {
            0 if s.proto3 => format!("{tname} {fname} = {number};"),
            0 | 1 => format!("optional {tname} {fname} = {number};"),
            // (no explicit `packed` option: prost-reflect 0.16 ignores it when writing; the
            // unit tests cover it with bytes written by hand)
            2 | 3 => format!("repeated {tname} {fname} = {number};"),
            4 => format!("map<{}, {tname}> {fname} = {number};", KEYS[f.key]),
            _ => {
                oneof.push(format!("{tname} {fname} = {number};"));
                continue;
            }
        };
        decls.push(line);
    }
    for d in decls {
        let _ = writeln!(out, "  {d}");
    }
    if !oneof.is_empty() {
        let _ = writeln!(out, "  oneof pick {{ {} }}", oneof.join(" "));
    }
    out.push_str("}\n");
}

/// splitmix64
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A number biased to zero and the edges.
    fn bits(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => 1u64 << self.below(64),
            3 => self.below(300),
            _ => self.next(),
        }
    }
}

fn random_value(kind: &Kind, rng: &mut Rng, depth: u32, default_entries: bool) -> P {
    let b = rng.bits();
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => P::I32(b as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => P::I64(b as i64),
        Kind::Uint32 | Kind::Fixed32 => P::U32(b as u32),
        Kind::Uint64 | Kind::Fixed64 => P::U64(b),
        Kind::Float => {
            // (prost-reflect leaves -0.0 out of a proto3 implicit field; Java writes it)
            let f = f32::from_bits(b as u32);
            P::F32(if f.is_nan() { 1.5 } else if f == 0.0 { 0.0 } else { f })
        }
        Kind::Double => {
            let f = f64::from_bits(b);
            P::F64(if f.is_nan() { -0.5 } else if f == 0.0 { 0.0 } else { f })
        }
        Kind::Bool => P::Bool(b & 1 == 1),
        Kind::String => P::String(["", "a", "ünï", "a longer string value"][rng.below(4) as usize].to_string()),
        Kind::Bytes => P::Bytes((0..rng.below(5)).map(|_| rng.next() as u8).collect::<Vec<u8>>().into()),
        Kind::Enum(_) => P::EnumNumber([0, 1, -3, 100000][rng.below(4) as usize]),
        Kind::Message(m) => P::Message(random_message_with(m, rng, depth + 1, default_entries)),
    }
}

fn random_key(kind: &Kind, rng: &mut Rng) -> MapKey {
    match random_value(kind, rng, 0, false) {
        P::I32(v) => MapKey::I32(v),
        P::I64(v) => MapKey::I64(v),
        P::U32(v) => MapKey::U32(v),
        P::U64(v) => MapKey::U64(v),
        P::Bool(v) => MapKey::Bool(v),
        P::String(v) => MapKey::String(v),
        other => panic!("key {other:?}"),
    }
}

fn random_message(d: &MessageDescriptor, rng: &mut Rng, depth: u32) -> DynamicMessage {
    random_message_with(d, rng, depth, false)
}

/// A random message; `default_entries`: map entries with a default key or value too (which
/// prost-reflect would not write as Java does).
fn random_message_with(d: &MessageDescriptor, rng: &mut Rng, depth: u32, default_entries: bool) -> DynamicMessage {
    let mut m = DynamicMessage::new(d.clone());
    let mut oneof_done = false;
    for f in d.fields() {
        if rng.below(3) == 0 || depth > 6 {
            continue;
        }
        if f.containing_oneof().is_some_and(|o| !o.is_synthetic()) {
            if oneof_done {
                continue;
            }
            oneof_done = true;
        }
        let v = if f.is_map() {
            let k = f.kind();
            let entry = k.as_message().unwrap();
            let (kk, vk) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            // prost-reflect leaves a default key or value out of an entry (Java, whose form
            // avro_to_message writes, never does): only entries without defaults here.
            P::Map(
                (0..rng.below(4))
                    .filter_map(|_| {
                        let key = random_key(&kk, rng);
                        let value = random_value(&vk, rng, depth, default_entries);
                        (default_entries || !key.is_default(&kk) && !value.is_default(&vk)).then_some((key, value))
                    })
                    .collect(),
            )
        } else if f.is_list() {
            P::List((0..rng.below(4)).map(|_| random_value(&f.kind(), rng, depth, default_entries)).collect())
        } else {
            random_value(&f.kind(), rng, depth, default_entries)
        };
        m.set_field(&f, v);
    }
    m
}

/// What the datum of a prost-reflect message must be (apache-avro's reading of it).
fn expected(m: &DynamicMessage) -> A {
    let d = m.descriptor();
    let mut out = Vec::new();
    for proto in &d.descriptor_proto().field {
        let f = d.get_field_by_name(proto.name()).unwrap();
        let v = m.get_field(&f);
        let a = if f.is_map() {
            let k = f.kind();
            let entry = k.as_message().unwrap();
            let (kk, vk) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            let P::Map(map) = v.as_ref() else { panic!() };
            if matches!(kk, Kind::String) {
                A::Map(map.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), expected_value(&vk, v))).collect())
            } else {
                A::Array(
                    map.iter()
                        .map(|(k, v)| {
                            let key: P = k.clone().into();
                            A::Record(vec![("key".into(), expected_value(&kk, &key)), ("value".into(), expected_value(&vk, v))])
                        })
                        .collect(),
                )
            }
        } else if f.is_list() {
            let P::List(items) = v.as_ref() else { panic!() };
            A::Array(items.iter().map(|x| expected_value(&f.kind(), x)).collect())
        } else if f.supports_presence() {
            if m.has_field(&f) {
                some(expected_value(&f.kind(), &v))
            } else {
                none()
            }
        } else {
            expected_value(&f.kind(), &v)
        };
        out.push((f.name().to_string(), a));
    }
    A::Record(out)
}

fn expected_value(kind: &Kind, v: &P) -> A {
    match (kind, v) {
        (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, P::I32(x)) => A::Int(*x),
        (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, P::I64(x)) => A::Long(*x),
        (Kind::Uint32 | Kind::Fixed32, P::U32(x)) => A::Long(i64::from(*x)),
        (Kind::Uint64 | Kind::Fixed64, P::U64(x)) => dec(*x),
        (Kind::Float, P::F32(x)) => A::Float(*x),
        (Kind::Double, P::F64(x)) => A::Double(*x),
        (Kind::Bool, P::Bool(x)) => A::Boolean(*x),
        (Kind::String, P::String(x)) => A::String(x.clone()),
        (Kind::Bytes, P::Bytes(x)) => A::Bytes(x.to_vec()),
        (Kind::Enum(e), P::EnumNumber(n)) => {
            let i = e.enum_descriptor_proto().value.iter().position(|v| v.number() == *n).unwrap();
            A::Enum(i as u32, e.enum_descriptor_proto().value[i].name().to_string())
        }
        (Kind::Message(_), P::Message(m)) => expected(m),
        other => panic!("{other:?}"),
    }
}

/// Floats compared by bits (a -0.0 is not a 0.0 here).
fn same(a: &A, b: &A) -> bool {
    match (a, b) {
        (A::Float(x), A::Float(y)) => x.to_bits() == y.to_bits(),
        (A::Double(x), A::Double(y)) => x.to_bits() == y.to_bits(),
        (A::Record(x), A::Record(y)) => x.len() == y.len() && x.iter().zip(y).all(|((n, a), (m, b))| n == m && same(a, b)),
        (A::Array(x), A::Array(y)) => {
            x.len() == y.len()
                && (x.iter().zip(y).all(|(a, b)| same(a, b))
                    // a map with keys other than strings: prost-reflect's HashMap lost the order
                    || x.iter().all(|a| matches!(a, A::Record(f) if f.first().is_some_and(|(n, _)| n == "key")))
                        && x.iter().all(|a| y.iter().any(|b| same(a, b))))
        }
        (A::Map(x), A::Map(y)) => x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b))),
        (A::Union(i, x), A::Union(j, y)) => i == j && same(x, y),
        _ => a == b,
    }
}

fn case() -> impl Strategy<Value = (String, u64)> {
    (shape(), any::<u64>()).prop_map(|(s, seed)| (render(&s), seed))
}

/// If the transcoder accepts `payload` (round trip included), its datum is prost-reflect's
/// reading of the same bytes.
fn accepted_means_right(c: &Compiled, d: &MessageDescriptor, payload: &[u8]) -> Result<(), TestCaseError> {
    let mut avro = Vec::new();
    if c.transcoder.message_to_avro(payload, &mut avro).is_err() {
        return Ok(());
    }
    let mut back = Vec::new();
    if c.transcoder.avro_to_message(&avro, &mut back).is_err() || back != payload {
        return Ok(());
    }
    let schema = apache_avro::Schema::parse(&c.avro).unwrap();
    let ours = apache_avro::from_avro_datum(&schema, &mut &avro[..], None);
    let theirs = DynamicMessage::decode(d.clone(), payload);
    prop_assert!(theirs.is_ok(), "accepted what prost-reflect rejects: {payload:?}");
    let ours = ours.map_err(|e| TestCaseError::fail(format!("datum: {e}")))?;
    prop_assert!(same(&ours, &expected(&theirs.unwrap())), "{payload:?}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// prost-reflect's canonical bytes go to columns, with exactly the values it wrote.
    #[test]
    fn serializer_output_goes_to_columns((text, seed) in case()) {
        let c = compile(&text, &refs()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let d = descriptor(&text, &refs());
        let mut rng = Rng(seed);
        let m = random_message(&d, &mut rng, 0);
        let payload = m.encode_to_vec();
        let mut avro = Vec::new();
        let r = c.transcoder.message_to_avro(&payload, &mut avro);
        prop_assert!(r.is_ok(), "{r:?}\n{text}\n{m:?}");
        let mut back = Vec::new();
        c.transcoder.avro_to_message(&avro, &mut back).unwrap();
        prop_assert_eq!(&back, &payload, "{}", text);
        let schema = apache_avro::Schema::parse(&c.avro).unwrap();
        let v = apache_avro::from_avro_datum(&schema, &mut &avro[..], None).unwrap();
        prop_assert!(same(&v, &expected(&m)), "{:?}\n{:?}\n{}", v, expected(&m), text);

        // The public path: columns, then the re-encoding gives the bytes back.
        let envelope = Envelope::new("PROTOBUF", text.clone(), refs()).to_text();
        let w = crate::WriterSchema::parse(&envelope).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let mut cols = crate::ValueColumns::for_writer(&w).unwrap();
        let mut dec = cols.decoder(Arc::new(w.clone()));
        let framed = [&[0u8][..], &payload].concat();
        let r = cols.append(&mut dec, &framed);
        // Only Avro's own column rules may still send it raw (a map key repeated cannot be).
        prop_assert!(r.is_ok(), "{r:?}\n{text}");
        let fields = cols.fields();
        let arrays = cols.finish().unwrap();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(1));
        let batch = arrow_array::RecordBatch::try_new_with_options(schema, arrays, &options).unwrap();
        let mut out = Vec::new();
        crate::RowEncoder::new(&w, &batch).encode(0, &mut out).unwrap();
        prop_assert_eq!(out, framed);
    }

    /// Mutated and truncated bytes never panic; what is accepted is what the bytes say.
    #[test]
    fn mutated_bytes_never_give_a_wrong_value(
        (text, seed) in case(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
    ) {
        let c = compile(&text, &refs()).unwrap();
        let d = descriptor(&text, &refs());
        let mut rng = Rng(seed);
        let mut payload = random_message(&d, &mut rng, 0).encode_to_vec();
        for (at, byte, how) in edits {
            if payload.is_empty() {
                payload.push(byte);
                continue;
            }
            let i = at.index(payload.len());
            match how {
                0 => payload[i] = byte,
                1 => payload.truncate(i),
                2 => payload.insert(i, byte),
                _ => { payload.remove(i); }
            }
        }
        accepted_means_right(&c, &d, &payload)?;
        let mut avro = Vec::new();
        let _ = c.transcoder.message_to_avro(&payload, &mut avro);
    }

    /// Random bytes, through message_to_avro and (as a datum) through avro_to_message: no panic.
    #[test]
    fn random_bytes_never_panic((text, _seed) in case(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let c = compile(&text, &refs()).unwrap();
        let d = descriptor(&text, &refs());
        accepted_means_right(&c, &d, &bytes)?;
        let mut out = Vec::new();
        let _ = c.transcoder.message_to_avro(&bytes, &mut out);
        out.clear();
        let _ = c.transcoder.avro_to_message(&bytes, &mut out);
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle of `checks_canonical`: `message_to_avro` accepts a message if and only if the round
// trip (the lenient decoder's datum, transcoded back) gives it back.

/// Whether to deviate from the canonical form at one point of the writing (rate per 1000).
struct Style<'a> {
    rng: &'a mut Rng,
    rate: u64,
    deviations: usize,
}

impl Style<'_> {
    fn deviate(&mut self) -> bool {
        let d = self.rate > 0 && self.rng.below(1000) < self.rate;
        self.deviations += usize::from(d);
        d
    }

    fn varint(&mut self, out: &mut Vec<u8>, mut x: u64) {
        let start = out.len();
        while x >= 0x80 {
            out.push(x as u8 | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
        if out.len() - start < 10 && self.deviate() {
            // Not minimal: one more byte adding nothing.
            *out.last_mut().unwrap() |= 0x80;
            out.push(0);
        }
    }

    fn tag(&mut self, out: &mut Vec<u8>, number: u32, wire: u8) {
        self.varint(out, (u64::from(number) << 3) | u64::from(wire));
    }

    fn len(&mut self, out: &mut Vec<u8>, body: &[u8]) {
        self.varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }
}

fn wire_of(kind: &Kind) -> u8 {
    match kind {
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => 1,
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => 5,
        Kind::String | Kind::Bytes | Kind::Message(_) => 2,
        _ => 0,
    }
}

fn packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// Writes a value (no tag) as Java does, or with a deviation.
fn styled_value(st: &mut Style, kind: &Kind, v: &P, out: &mut Vec<u8>) {
    match (kind, v) {
        (Kind::Int32, P::I32(x)) | (Kind::Enum(_), P::EnumNumber(x)) => {
            let x = *x;
            let w = if x < 0 && st.deviate() {
                u64::from(x as u32) // five bytes, not sign-extended
            } else if x >= 0 && st.deviate() {
                (x as u64) | (1 << 32) // upper bits that int32 drops
            } else {
                i64::from(x) as u64
            };
            st.varint(out, w);
        }
        (Kind::Sint32, P::I32(x)) => {
            let z = u64::from(((x << 1) ^ (x >> 31)) as u32);
            let z = if st.deviate() { z | (1 << 33) } else { z };
            st.varint(out, z);
        }
        (Kind::Uint32, P::U32(x)) => {
            let x = u64::from(*x);
            let x = if st.deviate() { x | (1 << 32) } else { x };
            st.varint(out, x);
        }
        (Kind::Sfixed32, P::I32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Fixed32, P::U32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Int64, P::I64(x)) => st.varint(out, *x as u64),
        (Kind::Sint64, P::I64(x)) => st.varint(out, ((x << 1) ^ (x >> 63)) as u64),
        (Kind::Sfixed64, P::I64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Uint64, P::U64(x)) => st.varint(out, *x),
        (Kind::Fixed64, P::U64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Float, P::F32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Double, P::F64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Kind::Bool, P::Bool(b)) => {
            let b = match (*b, st.deviate()) {
                (true, true) => 2 + st.rng.below(200),
                (b, _) => u64::from(b),
            };
            st.varint(out, b);
        }
        (Kind::String, P::String(x)) => st.len(out, x.as_bytes()),
        (Kind::Bytes, P::Bytes(x)) => st.len(out, x),
        (Kind::Message(_), P::Message(m)) => {
            let mut body = Vec::new();
            styled_message(st, m, &mut body);
            st.len(out, &body);
        }
        other => panic!("{other:?}"),
    }
}

/// A value's field: tag then value.
fn styled_field_value(st: &mut Style, number: u32, kind: &Kind, v: &P, out: &mut Vec<u8>) {
    st.tag(out, number, wire_of(kind));
    styled_value(st, kind, v, out);
}

/// Writes a message as Java writes it (what `avro_to_message` writes), with deviations at the
/// style's rate: non-minimal varints, int32s not sign-extended or with upper bits, bools > 1,
/// defaults written out, packed and unpacked swapped, packed runs split or empty, map entries
/// with a missing, extra or reordered field, fields out of order or written twice.
fn styled_message(st: &mut Style, m: &DynamicMessage, out: &mut Vec<u8>) {
    let d = m.descriptor();
    let mut fields: Vec<_> = d.fields().collect();
    fields.sort_by_key(|f| f.number());
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for f in fields {
        let kind = f.kind();
        let number = f.number();
        let v = m.get_field(&f);
        let mut o = Vec::new();
        if f.is_map() {
            let entry = kind.as_message().unwrap();
            let (kk, vk) = (entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind());
            let P::Map(map) = v.as_ref() else { panic!() };
            for (k, val) in map {
                let key: P = k.clone().into();
                let mut key_part = Vec::new();
                styled_field_value(st, 1, &kk, &key, &mut key_part);
                let mut value_part = Vec::new();
                styled_field_value(st, 2, &vk, val, &mut value_part);
                let mut body = Vec::new();
                let (drop_key, drop_value, swap, extra) = (st.deviate(), st.deviate(), st.deviate(), st.deviate());
                if swap {
                    std::mem::swap(&mut key_part, &mut value_part);
                }
                if !drop_key {
                    body.extend_from_slice(&key_part);
                }
                if !drop_value {
                    body.extend_from_slice(&value_part);
                }
                if extra {
                    body.extend_from_slice(&[0x18, 0x01]);
                }
                st.tag(&mut o, number, 2);
                st.len(&mut o, &body);
            }
        } else if f.is_list() {
            let P::List(items) = v.as_ref() else { panic!() };
            let packed = packable(&kind) && f.is_packed();
            let runs: Vec<&[P]> = if items.is_empty() {
                if packed && st.deviate() { vec![&items[..]] } else { vec![] }
            } else if items.len() > 1 && st.deviate() {
                let at = 1 + st.rng.below(items.len() as u64 - 1) as usize;
                vec![&items[..at], &items[at..]]
            } else {
                vec![&items[..]]
            };
            let swap = packable(&kind) && st.deviate();
            for run in runs {
                if packed != swap {
                    let mut body = Vec::new();
                    for x in run {
                        styled_value(st, &kind, x, &mut body);
                    }
                    st.tag(&mut o, number, 2);
                    st.len(&mut o, &body);
                } else {
                    for x in run {
                        styled_field_value(st, number, &kind, x, &mut o);
                    }
                }
            }
        } else if f.supports_presence() {
            if m.has_field(&f) {
                styled_field_value(st, number, &kind, &v, &mut o);
            }
        } else if !v.is_default(&kind) || st.deviate() {
            styled_field_value(st, number, &kind, &v, &mut o);
        }
        if !o.is_empty() {
            parts.push(o);
        }
    }
    if parts.len() > 1 && st.deviate() {
        let i = st.rng.below(parts.len() as u64 - 1) as usize;
        parts.swap(i, i + 1);
    }
    if !parts.is_empty() && st.deviate() {
        let i = st.rng.below(parts.len() as u64) as usize;
        let again = parts[i].clone();
        parts.insert(i + 1, again);
    }
    out.extend(parts.concat());
}

/// The oracle: `message_to_avro` accepts `payload` iff the lenient decoder's datum transcodes
/// back to it, and then with the same datum. Returns whether it was accepted.
fn accepted_iff_it_round_trips(t: &codec::ProtobufTranscoder, payload: &[u8]) -> Result<bool, TestCaseError> {
    use crate::transcode::Transcoder as _;
    let (mut strict, mut lenient, mut back) = (Vec::new(), Vec::new(), Vec::new());
    let accepted = t.message_to_avro(payload, &mut strict);
    let round_trips = t.message_to_avro_lenient(payload, &mut lenient).is_ok()
        && t.avro_to_message(&lenient, &mut back).is_ok()
        && back == payload;
    match &accepted {
        Ok(()) => {
            prop_assert!(round_trips, "accepted a message the round trip does not give back: {payload:02x?} → {back:02x?}");
            prop_assert_eq!(&strict, &lenient);
        }
        Err(Fallback::Transcode { format: "protobuf", reason }) => {
            prop_assert!(!round_trips, "refused a message that round-trips ({reason}): {payload:02x?}");
            prop_assert!(!reason.is_empty());
        }
        Err(other) => prop_assert!(false, "{other:?}"),
    }
    Ok(accepted.is_ok())
}

/// Payloads of each kind: (accepted, refused).
#[derive(Default, Debug)]
struct Tally {
    canonical: [usize; 2],
    restyled: [usize; 2],
    mutated: [usize; 2],
    truncated: [usize; 2],
}

fn count(slot: &mut [usize; 2], accepted: bool) {
    slot[usize::from(!accepted)] += 1;
}

/// For random schemas and messages written canonically, re-styled (at several rates of
/// deviation), mutated and truncated: accepted iff the round trip gives the bytes back.
#[test]
fn message_to_avro_accepts_exactly_what_round_trips() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::RefCell;
    let cases = if cfg!(debug_assertions) { 1024 } else { 4096 };
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    let tally = RefCell::new(Tally::default());
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..3);
    runner
        .run(&(case(), edits, any::<prop::sample::Index>()), |((text, seed), edits, cut)| {
            let (t, _) = transcoder(&text, &refs()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let d = descriptor(&text, &refs());
            let mut rng = Rng(seed);
            let m = random_message_with(&d, &mut rng, 0, true);
            let mut tally = tally.borrow_mut();

            // Canonical: as Java writes it; must be accepted.
            let mut st = Style { rng: &mut rng, rate: 0, deviations: 0 };
            let mut canonical = Vec::new();
            styled_message(&mut st, &m, &mut canonical);
            let ok = accepted_iff_it_round_trips(&t, &canonical)?;
            prop_assert!(ok, "the canonical form refused: {canonical:02x?}\n{text}\n{m:?}");
            count(&mut tally.canonical, ok);

            // Re-styled.
            for rate in [10, 50, 150, 400] {
                let mut st = Style { rng: &mut rng, rate, deviations: 0 };
                let mut styled = Vec::new();
                styled_message(&mut st, &m, &mut styled);
                let ok = accepted_iff_it_round_trips(&t, &styled)?;
                if st.deviations > 0 || ok {
                    count(&mut tally.restyled, ok);
                }
            }

            // Mutated (a byte changed, inserted or removed) and truncated.
            let mut mutated = canonical.clone();
            for (at, byte, how) in edits {
                if mutated.is_empty() {
                    mutated.push(byte);
                    continue;
                }
                let i = at.index(mutated.len());
                match how {
                    0 => mutated[i] = byte,
                    1 => mutated.insert(i, byte),
                    _ => {
                        mutated.remove(i);
                    }
                }
            }
            let ok = accepted_iff_it_round_trips(&t, &mutated)?;
            count(&mut tally.mutated, ok);
            if !canonical.is_empty() {
                let truncated = &canonical[..cut.index(canonical.len())];
                let ok = accepted_iff_it_round_trips(&t, truncated)?;
                count(&mut tally.truncated, ok);
            }
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner();
    println!("payloads (accepted, refused) of {cases} schemas: {tally:?}");
    assert!(tally.restyled[0] > cases as usize / 4 && tally.restyled[1] > cases as usize / 2, "{tally:?}");
}

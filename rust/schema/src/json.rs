//! JSON Schema writer schemas, seen as Avro (see [`crate::transcode`]).
//!
//! This module owns the JSON Schema side of the seam: [`compile`] reads a JSON Schema document
//! (draft-07, 2019-09, 2020-12, as Apicurio's and Confluent's serdes register them) and the texts
//! of the documents it references, and gives the Avro schema of the same shape plus the
//! [`Transcoder`](crate::transcode::Transcoder) between a value's JSON bytes and that schema's
//! Avro binary datum (`json/value.rs`). The schema text is read by a small order-preserving
//! parser of its own (serde_json's map is sorted, and the order of `properties` is the order
//! values are written in).
//!
//! # Type mapping
//!
//! | JSON Schema | Avro | Iceberg (see [`crate::avro`]) |
//! |---|---|---|
//! | `type: object` with `properties` (at least one) | `record`, fields in `properties` order | `struct` |
//! | a property `p` | field `p` of type `["null", T]` (name made Avro-valid: other characters → `_`, `_` before a digit) | optional `T` |
//! | `type: object`, no `properties`, `additionalProperties: {schema}` | `map<T>` | `map<string, T>` |
//! | `type: array`, `items: {schema}` | `array<T>` | `list<T>` |
//! | `type: string` | `string` | `string` |
//! | `type: string`, `format: date-time` | `long` `timestamp-micros` | `timestamptz` |
//! | `type: string`, `format: date` | `int` `date` | `date` |
//! | `type: string`, `format: uuid` | `string` `uuid` | `uuid` |
//! | `enum` / `const` of strings (`null` allowed) | `string` (values outside the enum: raw) | `string` |
//! | `enum` / `const` of integers | `long` | `long` |
//! | `type: integer` | `long` | `long` |
//! | `type: number` | `double` | `double` |
//! | `type: boolean` | `boolean` | `boolean` |
//! | `type: null` | `null` | no column |
//! | `type: [T, "null"]`, `oneOf`/`anyOf` with a `null` branch | `["null", T]` | optional `T` |
//! | `type: [A, B]`, `oneOf`/`anyOf` of several types | `[A, B]` | `struct<A, B>` (one field per branch) |
//! | anything else (`{}`, `true`, an object with no property schema and no `additionalProperties` schema, an untyped branch, `enum` of mixed kinds) | `string`: the value's JSON text, verbatim | `string` |
//! | `$ref` (`#/definitions/X`, `#/$defs/X`, a reference's name or URL, with a fragment) | the target's type | |
//!
//! A union must be decidable from a value's JSON kind: at most one branch per kind (string,
//! object, array, boolean; `integer` and `number` may both be there: a number literal without
//! `.`, `e`, `E` goes to the `integer` branch). Two string formats, a map and a record, two
//! records, a date-time and an integer (both Avro `long`) in one union are
//! [`SchemaError::Unsupported`], as are recursive references, tuples (`items: [...]`,
//! `prefixItems`), `allOf` of more than one schema, `not`, `if`/`then`/`else`, anchors. Record
//! names are `object` (namespace `calving.json.nN`), so a record branch of a wider union is the
//! struct field `object`.
//!
//! **Absent and null properties.** A property's column is null for one of the two, chosen by its
//! schema: if the property's schema admits `null` (`type: [T, "null"]`, a `null` branch) the null
//! stands for an explicit `"p":null` (what Jackson writes for a null field by default, and what
//! Confluent's schema generator declares as a `null` branch), and an absent property goes raw;
//! otherwise it stands for an absent property, and an explicit `null` goes raw (it is not a valid
//! value). A property whose schema is the verbatim-text fallback keeps both: absent is null, an
//! explicit `null` is the text `null`.
//!
//! # The lossless rule
//!
//! `avro_to_message` writes the one canonical text of a datum, what Jackson (Apicurio's and Confluent's
//! JSON Schema serdes) writes by default; a value goes to the columns only if it is that text
//! byte for byte. `message_to_avro` checks that inline, in its one pass, and refuses every other
//! text saying what and at which byte; the transcoder says so
//! ([`checks_canonical`](crate::transcode::Transcoder::checks_canonical)), so release builds do not
//! transcode back (debug builds still do, and panic on a difference). The rules:
//!
//! - compact: no whitespace anywhere; properties in the schema's order, absent ones omitted;
//!   no unknown property, no key twice (additional properties cannot be kept: such values go raw);
//! - strings escaped as Jackson does: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control
//!   characters as `\u00XX` (upper-case hex), characters outside the Basic Multilingual Plane
//!   (emoji, …) as their escaped UTF-16 surrogate pair (`\uD83D\uDE00`, what Jackson's UTF-8
//!   generator writes by default); everything else (`/`, other non-ASCII) as raw UTF-8. Any
//!   other escape (`\/`, `\u00e9`, `\u00E9`, `\u000A`, lower-case hex) and a raw 4-byte UTF-8
//!   character go raw; property names are compared with their escaped form, map keys and enum
//!   symbols go through the same check;
//! - integers in plain decimal (`-0`, `01`, `1.0`, `1e2` for an `integer` go raw); numbers as
//!   Java's `Double.toString` (JDK 19+: the shortest digits that read back, at least two; decimal
//!   notation for 10⁻³ ≤ |x| < 10⁷ — `1.0`, `100.0`, `0.001`, `-0.0` — else `1.0E7`,
//!   `1.234E-5`), so `1` for a `number` goes raw: the number is parsed and its token compared
//!   with what the writer writes of the value;
//! - date-times as `Instant.toString` (`2024-05-01T12:00:00Z`, a fraction of 3 digits when a
//!   whole millisecond, else 6, none when zero; years 0000–9999; an offset other than `Z` goes
//!   raw); dates as `LocalDate.toString`; uuids lower-case;
//! - a map's keys unique (an Iceberg map has unique keys; with the escapes canonical, the same
//!   raw bytes);
//! - verbatim-text parts are kept byte for byte (compact, any valid JSON inside).
//!
//! `json/tests.rs` holds the oracle of this claim: for random schemas and canonical, reformatted,
//! rewritten (escapes, numbers, nulls), byte-flipped and truncated documents, `message_to_avro`
//! accepts a document exactly when the round trip gives it back.
//!
//! Nothing here panics on any input; nesting is bounded ([`MAX_DEPTH`]) and memory by the input.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::avro::SchemaError;
use crate::transcode::Compiled;

mod value;
#[cfg(test)]
mod tests;

use value::{JsonTranscoder, Prop, Record, Slot, Ty};

/// The deepest nesting of a schema document, and of a value's verbatim-text parts.
pub const MAX_DEPTH: usize = 64;

/// Compiles a JSON Schema (and the texts of its references, by the name `$ref` uses) for
/// columns: the Avro schema of its values and the transcoder.
pub fn compile(schema: &str, references: &BTreeMap<String, String>) -> Result<Compiled, SchemaError> {
    let parse = |name: &str, text: &str| {
        doc::parse(text).map_err(|e| SchemaError::Parse { reason: format!("JSON Schema {name}: {e}") })
    };
    let mut docs = vec![(String::new(), parse("", schema)?)];
    for (name, text) in references {
        docs.push((name.clone(), parse(name, text)?));
    }
    let mut cx = Compiler { docs: &docs, stack: Vec::new(), records: 0 };
    let root = cx.slot(0, &docs[0].1, "", 0)?;
    let avro = cx.slot_avro(&root);
    Ok(Compiled { avro, transcoder: Arc::new(JsonTranscoder::new(root)) })
}

/// An order-preserving JSON tree of a schema document.
pub(crate) mod doc {
    /// A JSON value; objects keep their keys in document order.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum J {
        Null,
        Bool(bool),
        Num(String),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }

    impl J {
        pub(crate) fn get(&self, key: &str) -> Option<&J> {
            match self {
                J::Obj(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub(crate) fn as_str(&self) -> Option<&str> {
            match self {
                J::Str(s) => Some(s),
                _ => None,
            }
        }
    }

    /// Parses a whole document (whitespace allowed).
    pub(crate) fn parse(text: &str) -> Result<J, String> {
        let mut p = P { b: text.as_bytes(), i: 0 };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl P<'_> {
        fn ws(&mut self) {
            while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.i += 1;
            }
        }
        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }
        fn value(&mut self, depth: usize) -> Result<J, String> {
            if depth > super::MAX_DEPTH {
                return self.err("nested too deep");
            }
            self.ws();
            match self.b.get(self.i) {
                None => self.err("unexpected end"),
                Some(b'{') => {
                    self.i += 1;
                    let mut o = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(J::Obj(o));
                    }
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.err("expected a key");
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.err("expected ':'");
                        }
                        self.i += 1;
                        let v = self.value(depth + 1)?;
                        o.push((k, v));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(J::Obj(o));
                            }
                            _ => return self.err("expected ',' or '}'"),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut a = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(J::Arr(a));
                    }
                    loop {
                        a.push(self.value(depth + 1)?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(J::Arr(a));
                            }
                            _ => return self.err("expected ',' or ']'"),
                        }
                    }
                }
                Some(b'"') => Ok(J::Str(self.string()?)),
                Some(b't') => self.lit("true", J::Bool(true)),
                Some(b'f') => self.lit("false", J::Bool(false)),
                Some(b'n') => self.lit("null", J::Null),
                Some(_) => {
                    let start = self.i;
                    while matches!(self.b.get(self.i), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                        self.i += 1;
                    }
                    let s = std::str::from_utf8(&self.b[start..self.i]).unwrap_or_default();
                    if s.is_empty() || s.parse::<f64>().is_err() {
                        self.i = start;
                        return self.err("unexpected character");
                    }
                    Ok(J::Num(s.to_string()))
                }
            }
        }
        fn lit(&mut self, word: &str, v: J) -> Result<J, String> {
            if self.b[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                self.err("unexpected character")
            }
        }
        fn string(&mut self) -> Result<String, String> {
            let start = self.i;
            let (span, escaped, end) = super::value::string_span(self.b, self.i + 1).map_err(|(at, what)| format!("{what} at byte {at}"))?;
            self.i = end;
            let bytes = if escaped {
                let mut out = Vec::new();
                super::value::unescape(span, &mut out).map_err(|what| format!("{what} in the string at byte {start}"))?;
                out
            } else {
                span.to_vec()
            };
            String::from_utf8(bytes).map_err(|_| format!("string at byte {start} is not UTF-8"))
        }
    }
}

use doc::J;

struct Compiler<'a> {
    /// The documents: the schema first, then its references by name.
    docs: &'a [(String, J)],
    /// The `$ref`s being compiled (document, fragment): a repeat is a recursion.
    stack: Vec<(usize, String)>,
    /// Records named so far (for unique Avro names).
    records: usize,
}

fn unsupported(path: &str, what: impl Into<String>) -> SchemaError {
    SchemaError::Unsupported { path: if path.is_empty() { "(root)".into() } else { path.into() }, what: what.into() }
}

/// The JSON kinds a branch takes values of (a union has one branch per kind).
fn kind(t: &Ty) -> &'static str {
    match t {
        Ty::Bool => "boolean",
        Ty::Long => "integer",
        Ty::Double => "number",
        Ty::Str(_) | Ty::Uuid | Ty::DateTime | Ty::Date => "string",
        Ty::Array(_) => "array",
        Ty::Map(_) | Ty::Record(_) => "object",
        Ty::Json => "any",
    }
}

impl Compiler<'_> {
    /// The schema `node` of document `doc` at name path `path`.
    fn slot(&mut self, doc: usize, node: &J, path: &str, depth: usize) -> Result<Slot, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(unsupported(path, "schema nested too deep"));
        }
        let any = Ok(Slot { null: false, branches: vec![Ty::Json] });
        let o = match node {
            J::Bool(true) => return any,
            J::Bool(false) => return Err(unsupported(path, "schema `false` admits no value")),
            J::Obj(o) => o,
            _ => return Err(SchemaError::Parse { reason: format!("JSON Schema at {path}: a schema is an object or a boolean") }),
        };
        if let Some(r) = node.get("$ref") {
            let r = r.as_str().ok_or_else(|| unsupported(path, "$ref is not a string"))?;
            return self.reference(doc, r, path, depth);
        }
        for k in ["not", "if", "prefixItems", "$dynamicRef", "$recursiveRef"] {
            if node.get(k).is_some() {
                return Err(unsupported(path, format!("`{k}`")));
            }
        }
        if let Some(all) = node.get("allOf") {
            return match all {
                J::Arr(a) if a.len() == 1 && !o.iter().any(|(k, _)| k == "type" || k == "properties") => self.slot(doc, &a[0], path, depth + 1),
                _ => Err(unsupported(path, "allOf of several schemas")),
            };
        }
        if let Some(alts) = node.get("oneOf").or_else(|| node.get("anyOf")) {
            let J::Arr(alts) = alts else { return Err(unsupported(path, "oneOf/anyOf is not an array")) };
            if node.get("type").is_some() || node.get("properties").is_some() {
                return Err(unsupported(path, "oneOf/anyOf next to `type` or `properties`"));
            }
            let mut slot = Slot { null: false, branches: Vec::new() };
            for alt in alts {
                let s = self.slot(doc, alt, path, depth + 1)?;
                slot.null |= s.null;
                slot.branches.extend(s.branches);
            }
            return self.union(slot, path);
        }
        if let Some(values) = node.get("enum").cloned().or_else(|| node.get("const").map(|c| J::Arr(vec![c.clone()]))) {
            let J::Arr(values) = values else { return Err(unsupported(path, "enum is not an array")) };
            let null = values.contains(&J::Null);
            let rest: Vec<&J> = values.iter().filter(|v| **v != J::Null).collect();
            if rest.iter().all(|v| matches!(v, J::Str(_))) {
                let symbols = rest.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
                let branches = if rest.is_empty() { Vec::new() } else { vec![Ty::Str(Some(Arc::new(symbols)))] };
                return Ok(Slot { null, branches });
            }
            if rest.iter().all(|v| matches!(v, J::Num(n) if n.parse::<i64>().is_ok())) {
                return Ok(Slot { null, branches: vec![Ty::Long] });
            }
            return any;
        }
        let types: Vec<&str> = match node.get("type") {
            Some(J::Str(t)) => vec![t.as_str()],
            Some(J::Arr(ts)) => ts.iter().map(|t| t.as_str().ok_or_else(|| unsupported(path, "a type that is not a string"))).collect::<Result<_, _>>()?,
            Some(_) => return Err(unsupported(path, "`type` is neither a string nor an array")),
            None if node.get("properties").is_some() => vec!["object"],
            None if node.get("items").is_some() => vec!["array"],
            None => return any,
        };
        let mut slot = Slot { null: false, branches: Vec::new() };
        for t in types {
            let ty = match t {
                "null" => {
                    slot.null = true;
                    continue;
                }
                "boolean" => Ty::Bool,
                "integer" => Ty::Long,
                "number" => Ty::Double,
                "string" => match node.get("format").and_then(J::as_str) {
                    Some("date-time") => Ty::DateTime,
                    Some("date") => Ty::Date,
                    Some("uuid") => Ty::Uuid,
                    _ => Ty::Str(None),
                },
                "array" => match node.get("items") {
                    None => Ty::Array(Box::new(Slot { null: false, branches: vec![Ty::Json] })),
                    Some(J::Arr(_)) => return Err(unsupported(path, "tuple `items`")),
                    Some(items) => {
                        let s = self.slot(doc, items, &format!("{path}.element"), depth + 1)?;
                        if s.branches.is_empty() {
                            return Err(unsupported(path, "an array of nulls"));
                        }
                        Ty::Array(Box::new(s))
                    }
                },
                "object" => self.object(doc, node, path, depth)?,
                other => return Err(unsupported(path, format!("type {other:?}"))),
            };
            slot.branches.push(ty);
        }
        self.union(slot, path)
    }

    fn object(&mut self, doc: usize, node: &J, path: &str, depth: usize) -> Result<Ty, SchemaError> {
        let additional = node.get("additionalProperties");
        let properties = match node.get("properties") {
            Some(J::Obj(p)) => Some(p),
            Some(_) => return Err(unsupported(path, "`properties` is not an object")),
            None => None,
        };
        let properties = match (properties, additional) {
            (Some(p), _) if !p.is_empty() => p,
            (Some(_), _) | (None, Some(J::Bool(false))) => return Ok(Ty::Json),
            (None, Some(J::Obj(_))) => {
                let values = additional.unwrap_or(&J::Null);
                let s = self.slot(doc, values, &format!("{path}.value"), depth + 1)?;
                if s.branches.is_empty() {
                    return Err(unsupported(path, "a map of nulls"));
                }
                return Ok(Ty::Map(Box::new(s)));
            }
            (None, _) => return Ok(Ty::Json),
        };
        let mut props = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (key, schema) in properties {
            let name = avro_name(key);
            if names.contains(&name) {
                return Err(unsupported(path, format!("properties whose column names are both {name:?}")));
            }
            let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            let s = self.slot(doc, schema, &child, depth + 1)?;
            let mut escaped = Vec::new();
            value::escape(key.as_bytes(), &mut escaped);
            props.push(Prop { key: escaped.into(), explicit_null: s.null, slot: Slot { null: true, branches: s.branches } });
            names.push(name);
        }
        self.records += 1;
        Ok(Ty::Record(Box::new(Record { props, names, id: self.records })))
    }

    fn reference(&mut self, doc: usize, r: &str, path: &str, depth: usize) -> Result<Slot, SchemaError> {
        let (base, fragment) = r.split_once('#').unwrap_or((r, ""));
        let target = if base.is_empty() {
            Some(doc)
        } else {
            let last = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
            self.docs
                .iter()
                .position(|(name, _)| !name.is_empty() && (name == base || name == r))
                .or_else(|| (self.docs[0].1.get("$id").and_then(J::as_str) == Some(base)).then_some(0))
                .or_else(|| {
                    let found: Vec<usize> = (1..self.docs.len()).filter(|&i| last(&self.docs[i].0) == last(base)).collect();
                    (found.len() == 1).then(|| found[0])
                })
        };
        let Some(target) = target else { return Err(unsupported(path, format!("$ref {r:?} is not among the references"))) };
        let key = (target, fragment.to_string());
        if self.stack.contains(&key) {
            return Err(unsupported(path, format!("recursive $ref {r:?}")));
        }
        let mut node = &self.docs[target].1;
        if !fragment.is_empty() {
            let Some(pointer) = fragment.strip_prefix('/') else { return Err(unsupported(path, format!("$ref anchor {r:?}"))) };
            for token in pointer.split('/') {
                let token = percent_encoding::percent_decode_str(token).decode_utf8_lossy().replace("~1", "/").replace("~0", "~");
                node = match node {
                    J::Obj(_) => node.get(&token),
                    J::Arr(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                }
                .ok_or_else(|| unsupported(path, format!("$ref {r:?} points to nothing")))?;
            }
        }
        self.stack.push(key);
        let out = self.slot(target, node, path, depth + 1);
        self.stack.pop();
        out
    }

    /// Checks that a union is decidable from a value's JSON kind; the verbatim text absorbs all.
    fn union(&mut self, mut slot: Slot, path: &str) -> Result<Slot, SchemaError> {
        if slot.branches.iter().any(|t| matches!(t, Ty::Json)) {
            return Ok(Slot { null: false, branches: vec![Ty::Json] });
        }
        if slot.branches.is_empty() && !slot.null {
            return Err(unsupported(path, "a schema no value has"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for t in &slot.branches {
            let k = kind(t);
            if seen.contains(&k) {
                return Err(unsupported(path, format!("a union with two {k} branches")));
            }
            seen.push(k);
        }
        if slot.branches.iter().any(|t| matches!(t, Ty::DateTime)) && slot.branches.iter().any(|t| matches!(t, Ty::Long)) {
            return Err(unsupported(path, "a union of a date-time and an integer (both Avro long)"));
        }
        slot.branches.shrink_to_fit();
        Ok(slot)
    }

    fn slot_avro(&self, s: &Slot) -> Value {
        let mut all: Vec<Value> = Vec::new();
        if s.null {
            all.push(json!("null"));
        }
        all.extend(s.branches.iter().map(|t| self.ty_avro(t)));
        if all.len() == 1 {
            all.remove(0)
        } else {
            Value::Array(all)
        }
    }

    fn ty_avro(&self, t: &Ty) -> Value {
        match t {
            Ty::Bool => json!("boolean"),
            Ty::Long => json!("long"),
            Ty::Double => json!("double"),
            Ty::Str(_) | Ty::Json => json!("string"),
            Ty::Uuid => json!({"type": "string", "logicalType": "uuid"}),
            Ty::DateTime => json!({"type": "long", "logicalType": "timestamp-micros"}),
            Ty::Date => json!({"type": "int", "logicalType": "date"}),
            Ty::Array(s) => json!({"type": "array", "items": self.slot_avro(s)}),
            Ty::Map(s) => json!({"type": "map", "values": self.slot_avro(s)}),
            Ty::Record(r) => {
                let fields: Vec<Value> = r
                    .props
                    .iter()
                    .zip(&r.names)
                    .map(|(p, name)| {
                        if p.slot.branches.is_empty() {
                            json!({"name": name, "type": "null"})
                        } else {
                            json!({"name": name, "type": self.slot_avro(&p.slot), "default": null})
                        }
                    })
                    .collect();
                json!({"type": "record", "name": "object", "namespace": format!("calving.json.n{}", r.id), "fields": fields})
            }
        }
    }
}

/// A property name as an Avro field name: characters other than `[A-Za-z0-9_]` become `_`, and
/// a leading digit (or nothing) gets a `_` in front.
fn avro_name(key: &str) -> String {
    let mut name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

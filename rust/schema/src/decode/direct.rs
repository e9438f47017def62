//! The decoder proper: one walk over the Avro bytes per value, appending straight into the
//! column builders and checking canonicity on the way (see the module doc of [`super`]).
//!
//! A writer schema planned against the columns is compiled once into an [`Op`] tree (writer node
//! and plan in one, with the column conversions resolved), which [`read`] interprets.

use std::collections::HashSet;
use std::sync::Arc;

use super::columns::{Col, Var};
use super::{
    decimal_from_be, parse_uuid, Fallback, FieldPlans, Malformed, Plan, CANONICAL_NAN_F32,
    CANONICAL_NAN_F64,
};
use crate::avro::{Node, WriterSchema};

/// A writer schema compiled against the columns: per top-level field that has a column, the
/// column's index and how to fill it; and the columns this writer does not fill.
#[derive(Debug)]
pub(super) struct Program {
    pub(super) fields: Vec<(usize, Op)>,
    pub(super) missing: Vec<usize>,
}

/// How one writer node is read and appended.
#[derive(Debug)]
pub(super) enum Op {
    Boolean,
    /// An `int` (or `date`) into an int, date or (promoted) long column.
    Int,
    /// A `long` (`time-micros`, `timestamp-micros`, nanos as `long`…) into a long, time or
    /// timestamp column.
    Long,
    /// `time-millis`: an `int` of milliseconds, the column holds microseconds.
    TimeMillis,
    /// `timestamp-millis` / `local-timestamp-millis`: a `long` of milliseconds.
    TimestampMillis,
    /// A `float` into a float or (promoted) double column.
    Float,
    Double,
    Bytes,
    String,
    /// Any `fixed(n)`, and a uuid on a `fixed(16)`.
    Fixed(usize),
    /// A uuid on a `string`: 36 characters into 16 bytes.
    UuidString,
    /// A decimal on `bytes`; `limit` is 10^precision.
    DecimalBytes { limit: u128 },
    /// A decimal on a `fixed(n)`.
    DecimalFixed { size: usize, limit: u128 },
    Enum(Arc<[String]>),
    Array(Box<Op>),
    Map(Box<Op>),
    /// Per writer field that has a column: the struct child and its op (fields without a column
    /// encode to no bytes); and the children no field fills.
    Record(Vec<(usize, Op)>, Vec<usize>),
    /// A union with one non-null branch: the number of branches, the branch's position, its op.
    Optional { branches: usize, index: usize, op: Box<Op> },
    /// A union of 2+ non-null branches into a struct: per union position, the struct child and op
    /// (`None` for the null branch).
    Wide(Vec<Option<(usize, Op)>>),
}

/// Compiles a writer schema's planned fields. `Err` only if the plan does not match the writer
/// (impossible: plans are made from the writer).
pub(super) fn compile(writer: &WriterSchema, plans: &FieldPlans) -> Result<Program, String> {
    let (per_field, missing) = plans;
    let mut fields = Vec::new();
    for (f, p) in writer.fields.iter().zip(per_field) {
        if let Some((i, p)) = p {
            fields.push((*i, compile_node(&f.node, p)?));
        }
    }
    Ok(Program {
        fields,
        missing: missing.clone(),
    })
}

fn compile_node(node: &Node, plan: &Plan) -> Result<Op, String> {
    let limit = |p: u8| 10u128.pow(u32::from(p));
    Ok(match (node, plan) {
        (Node::Boolean, Plan::Leaf) => Op::Boolean,
        (Node::Int | Node::Date, Plan::Leaf) => Op::Int,
        (Node::Long | Node::Time { millis: false } | Node::Timestamp { millis: false, .. }, Plan::Leaf) => Op::Long,
        (Node::Time { millis: true }, Plan::Leaf) => Op::TimeMillis,
        (Node::Timestamp { millis: true, .. }, Plan::Leaf) => Op::TimestampMillis,
        (Node::Float, Plan::Leaf) => Op::Float,
        (Node::Double, Plan::Leaf) => Op::Double,
        (Node::Bytes, Plan::Leaf) => Op::Bytes,
        (Node::String, Plan::Leaf) => Op::String,
        (Node::Fixed(n), Plan::Leaf) => Op::Fixed(*n),
        (Node::Uuid { fixed: true }, Plan::Leaf) => Op::Fixed(16),
        (Node::Uuid { fixed: false }, Plan::Leaf) => Op::UuidString,
        (Node::Decimal { precision, fixed: None, .. }, Plan::Leaf) => Op::DecimalBytes { limit: limit(*precision) },
        (Node::Decimal { precision, fixed: Some(n), .. }, Plan::Leaf) => Op::DecimalFixed { size: *n, limit: limit(*precision) },
        (Node::Enum(symbols), Plan::Leaf) => Op::Enum(symbols.clone()),
        (Node::Array(item), Plan::List(p)) => Op::Array(Box::new(compile_node(item, p)?)),
        (Node::Map(value), Plan::Map(p)) => Op::Map(Box::new(compile_node(value, p)?)),
        (Node::Record(fields), Plan::Struct(per_field, missing)) => {
            let mut ops = Vec::new();
            for (f, p) in fields.iter().zip(per_field) {
                if let Some((i, p)) = p {
                    ops.push((*i, compile_node(&f.node, p)?));
                }
            }
            Op::Record(ops, missing.clone())
        }
        (Node::Union(u), Plan::Single(p)) => {
            let b = u.single().ok_or("a single-branch plan for a wider union")?;
            Op::Optional {
                branches: u.by_index.len(),
                index: b.index as usize,
                op: Box::new(compile_node(&b.node, p)?),
            }
        }
        (Node::Union(u), Plan::UnionStruct(per_branch)) => {
            let mut by_index = Vec::with_capacity(u.by_index.len());
            for k in &u.by_index {
                by_index.push(match k {
                    None => None,
                    Some(k) => {
                        let (b, (child, p)) = u.branches.get(*k).zip(per_branch.get(*k)).ok_or("union plan")?;
                        Some((*child, compile_node(&b.node, p)?))
                    }
                });
            }
            Op::Wide(by_index)
        }
        _ => return Err(format!("internal: plan {plan:?} does not match the writer's {node:?}")),
    })
}

/// The input being read, and the first non-canonical byte seen.
pub(super) struct Cursor<'a> {
    buf: &'a [u8],
    pub(super) pos: usize,
    /// Where the first encoding other than the canonical one starts (`usize::MAX`: none yet).
    /// Decoding goes on past it, so that a malformed or out-of-range value later in the datum is
    /// reported as such, as by the re-encoding check that decodes everything first.
    pub(super) not_canonical: usize,
    /// The strings were checked to be UTF-8 already (a transcoded writer's datum, made from a
    /// message whose strings its transcoder checked): not checked again.
    utf8_checked: bool,
}

#[inline]
fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8], utf8_checked: bool) -> Self {
        Self {
            buf,
            pos: 0,
            not_canonical: usize::MAX,
            utf8_checked,
        }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    #[cold]
    fn err(&self, kind: Malformed) -> Fallback {
        Fallback::Malformed {
            position: self.pos,
            kind,
        }
    }

    #[inline]
    fn flag(&mut self, at: usize) {
        if at < self.not_canonical {
            self.not_canonical = at;
        }
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A zig-zag varint; a non-minimal one (a last byte of 0 after others) is flagged.
    #[inline(always)]
    fn long(&mut self) -> Result<i64, Fallback> {
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(zigzag(u64::from(b)));
            }
        }
        self.long_multi()
    }

    fn long_multi(&mut self) -> Result<i64, Fallback> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err(Malformed::Truncated));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(Malformed::VarintOverflow));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    self.flag(start);
                }
                return Ok(zigzag(v));
            }
        }
        Err(self.err(Malformed::VarintOverflow))
    }

    #[inline]
    fn int(&mut self) -> Result<i32, Fallback> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| self.err(Malformed::VarintOverflow))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fallback> {
        if n > self.remaining() {
            return Err(self.err(Malformed::Truncated));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], Fallback> {
        let n = self.long()?;
        if n < 0 {
            return Err(self.err(Malformed::NegativeLength));
        }
        let n = usize::try_from(n).map_err(|_| self.err(Malformed::Truncated))?;
        self.take(n)
    }

    /// A string's bytes, checked to be UTF-8.
    #[inline(always)]
    fn str(&mut self) -> Result<&'a [u8], Fallback> {
        let start = self.pos;
        let b = self.bytes()?;
        if self.utf8_checked || b.is_ascii() || std::str::from_utf8(b).is_ok() {
            Ok(b)
        } else {
            Err(Fallback::Malformed {
                position: start,
                kind: Malformed::Utf8,
            })
        }
    }

    /// The item count of the next array or map block (0 ends the sequence). A negative count
    /// (followed by the block's size in bytes) is flagged; so is a second non-empty block
    /// (`later`): Java writes one block and the end marker.
    #[inline]
    fn block_count(&mut self, later: bool) -> Result<usize, Fallback> {
        let start = self.pos;
        let n = self.long()?;
        let n = if n < 0 {
            self.flag(start);
            self.long()?;
            n.checked_neg()
                .ok_or_else(|| self.err(Malformed::VarintOverflow))?
        } else {
            n
        };
        if later && n != 0 {
            self.flag(start);
        }
        let n = usize::try_from(n).map_err(|_| self.err(Malformed::TooManyItems))?;
        if n > self.remaining() {
            return Err(self.err(Malformed::TooManyItems));
        }
        Ok(n)
    }
}

/// The column does not have the shape the op was compiled for: impossible with a decoder made by
/// the same columns; the value goes to the fallback rather than panicking.
#[cold]
fn mismatch() -> Fallback {
    debug_assert!(false, "a decoder used with columns it was not planned against");
    Fallback::Schema
}

/// The number of bytes of `v` in minimal two's complement (`BigInteger.toByteArray()`).
fn minimal_len(v: i128) -> usize {
    let magnitude = if v < 0 { !v } else { v };
    let bits = 128 - magnitude.leading_zeros() as usize + 1;
    bits.div_ceil(8)
}

/// Reads one value of `op` and appends it to `col`. On `Err` the column may hold part of the
/// value: the caller cuts it back.
///
/// The common leaves are handled here, inlined into the loops over record fields and array
/// items (a call per value was a good part of the cost); the rest in [`read_other`].
#[inline(always)]
pub(super) fn read(op: &Op, col: &mut Col, r: &mut Cursor<'_>) -> Result<(), Fallback> {
    match (op, col) {
        (Op::String, Col::String(b)) => {
            let v = r.str()?;
            b.push(v);
            Ok(())
        }
        (Op::Long, Col::Long(b)) => {
            let v = r.long()?;
            b.push(v);
            Ok(())
        }
        (Op::Int, Col::Int(b)) => {
            let v = r.int()?;
            b.push(v);
            Ok(())
        }
        (Op::Double, Col::Double(b)) => {
            let v = r.take(8)?;
            let v = f64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
            if v.is_nan() && v.to_bits() != CANONICAL_NAN_F64 {
                return Err(Fallback::NanPayload);
            }
            b.push(v);
            Ok(())
        }
        (op, col) => read_other(op, col, r),
    }
}

#[inline(never)]
fn read_other(op: &Op, col: &mut Col, r: &mut Cursor<'_>) -> Result<(), Fallback> {
    match op {
        Op::Boolean => {
            let at = r.pos;
            let b = r.take(1)?[0];
            // Anything but 0 reads as true (Java), but only 0 and 1 are canonical.
            if b > 1 {
                r.flag(at);
            }
            let Col::Boolean { values, nulls } = col else {
                return Err(mismatch());
            };
            values.append(b != 0);
            nulls.append_non_null();
        }
        Op::Int => {
            let v = r.int()?;
            match col {
                Col::Int(b) => b.push(v),
                Col::Date(b) => b.push(v),
                Col::Long(b) => b.push(i64::from(v)),
                _ => return Err(mismatch()),
            }
        }
        Op::Long => {
            let v = r.long()?;
            push_long(col, v)?;
        }
        Op::TimeMillis => {
            let v = i64::from(r.int()?) * 1000;
            push_long(col, v)?;
        }
        Op::TimestampMillis => {
            let v = r.long()?.checked_mul(1000).ok_or(Fallback::OutOfRange)?;
            push_long(col, v)?;
        }
        Op::Float => {
            let b = r.take(4)?;
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if v.is_nan() && v.to_bits() != CANONICAL_NAN_F32 {
                return Err(Fallback::NanPayload);
            }
            match col {
                Col::Float(b) => b.push(v),
                Col::Double(b) => b.push(f64::from(v)),
                _ => return Err(mismatch()),
            }
        }
        Op::Double => {
            let b = r.take(8)?;
            let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            if v.is_nan() && v.to_bits() != CANONICAL_NAN_F64 {
                return Err(Fallback::NanPayload);
            }
            let Col::Double(b) = col else {
                return Err(mismatch());
            };
            b.push(v);
        }
        Op::Bytes => {
            let v = r.bytes()?;
            let Col::Binary(b) = col else {
                return Err(mismatch());
            };
            b.push(v);
        }
        Op::String => {
            let v = r.str()?;
            let Col::String(b) = col else {
                return Err(mismatch());
            };
            b.push(v);
        }
        Op::Fixed(n) => {
            let v = r.take(*n)?;
            push_fixed(col, v)?;
        }
        Op::UuidString => {
            let at = r.pos;
            let s = r.bytes()?;
            let u = parse_uuid(s).ok_or(Fallback::Malformed {
                position: at,
                kind: Malformed::Uuid,
            })?;
            // `UUID.toString()` writes lower case.
            if s.iter().any(u8::is_ascii_uppercase) {
                r.flag(at);
            }
            push_fixed(col, &u)?;
        }
        Op::DecimalBytes { limit } => {
            let at = r.pos;
            let b = r.bytes()?;
            let v = decimal_from_be(b).ok_or(Fallback::OutOfRange)?;
            if v.unsigned_abs() >= *limit {
                return Err(Fallback::OutOfRange);
            }
            if b.len() != minimal_len(v) {
                r.flag(at);
            }
            let Col::Decimal(d, ..) = col else {
                return Err(mismatch());
            };
            d.push(v);
        }
        Op::DecimalFixed { size, limit } => {
            // Any bytes of the fixed size are the canonical form of their value.
            let b = r.take(*size)?;
            let v = decimal_from_be(b).ok_or(Fallback::OutOfRange)?;
            if v.unsigned_abs() >= *limit {
                return Err(Fallback::OutOfRange);
            }
            let Col::Decimal(d, ..) = col else {
                return Err(mismatch());
            };
            d.push(v);
        }
        Op::Enum(symbols) => {
            let i = r.int()?;
            let Some(s) = usize::try_from(i).ok().and_then(|i| symbols.get(i)) else {
                return Err(r.err(Malformed::EnumIndex));
            };
            let Col::String(b) = col else {
                return Err(mismatch());
            };
            b.push(s.as_bytes());
        }
        Op::Array(item) => {
            let Col::List {
                offsets,
                nulls,
                child,
                ..
            } = col
            else {
                return Err(mismatch());
            };
            let mut total = 0usize;
            loop {
                let n = r.block_count(total > 0)?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    read(item, child, r)?;
                }
                total += n;
            }
            let last = *offsets.last().unwrap_or(&0);
            offsets.push(last.wrapping_add(total as i32));
            nulls.append_non_null();
        }
        Op::Map(value) => {
            let Col::Map {
                offsets,
                nulls,
                keys,
                values,
                ..
            } = col
            else {
                return Err(mismatch());
            };
            let first = keys.len();
            let mut total = 0usize;
            loop {
                let n = r.block_count(total > 0)?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    let k = r.str()?;
                    keys.push(k);
                    read(value, values, r)?;
                }
                total += n;
            }
            if let Some(k) = repeated_key(keys, first) {
                return Err(Fallback::DuplicateMapKey(k));
            }
            let last = *offsets.last().unwrap_or(&0);
            offsets.push(last.wrapping_add(total as i32));
            nulls.append_non_null();
        }
        Op::Record(fields, missing) => {
            let Col::Struct {
                children, nulls, ..
            } = col
            else {
                return Err(mismatch());
            };
            for (i, op) in fields {
                read(op, children.get_mut(*i).ok_or_else(mismatch)?, r)?;
            }
            for &i in missing {
                children.get_mut(i).ok_or_else(mismatch)?.append_null();
            }
            nulls.append_non_null();
        }
        Op::Optional {
            branches,
            index,
            op,
        } => {
            let i = r.int()?;
            match usize::try_from(i) {
                Ok(i) if i == *index => read(op, col, r)?,
                Ok(i) if i < *branches => col.append_null(),
                _ => return Err(r.err(Malformed::UnionIndex)),
            }
        }
        Op::Wide(by_index) => {
            let i = r.int()?;
            let Some(branch) = usize::try_from(i).ok().and_then(|i| by_index.get(i)) else {
                return Err(r.err(Malformed::UnionIndex));
            };
            let Col::Struct {
                children, nulls, ..
            } = col
            else {
                return Err(mismatch());
            };
            match branch {
                None => {
                    children.iter_mut().for_each(Col::append_null);
                    nulls.append_null();
                }
                Some((child, op)) => {
                    read(op, children.get_mut(*child).ok_or_else(mismatch)?, r)?;
                    for (j, c) in children.iter_mut().enumerate() {
                        if j != *child {
                            c.append_null();
                        }
                    }
                    nulls.append_non_null();
                }
            }
        }
    }
    Ok(())
}

#[inline]
fn push_long(col: &mut Col, v: i64) -> Result<(), Fallback> {
    match col {
        Col::Long(b) => b.push(v),
        Col::Time(b) => b.push(v),
        Col::Timestamp(b, _) => b.push(v),
        _ => return Err(mismatch()),
    }
    Ok(())
}

#[inline]
fn push_fixed(col: &mut Col, v: &[u8]) -> Result<(), Fallback> {
    let Col::Fixed { size, data, nulls } = col else {
        return Err(mismatch());
    };
    if v.len() != *size {
        return Err(mismatch());
    }
    data.extend_from_slice(v);
    nulls.append_non_null();
    Ok(())
}

/// The first key from index `first` on that repeats an earlier one of those, if any. Small maps
/// (most) are compared pairwise, which is cheaper than hashing every key.
fn repeated_key(keys: &Var<i32>, first: usize) -> Option<String> {
    let n = keys.len() - first;
    let found = if n <= 16 {
        (first + 1..keys.len()).find(|&j| (first..j).any(|o| keys.get(o) == keys.get(j)))
    } else {
        let mut seen = HashSet::with_capacity(n);
        (first..keys.len()).find(|&j| !seen.insert(keys.get(j)))
    };
    found.map(|j| String::from_utf8_lossy(keys.get(j)).into_owned())
}

//! A bounds-checked little-endian reader over a GGUF file's bytes. Every read
//! names the field it reads, so a truncated or hostile file fails with an
//! error saying what was being read and where.

use super::value::{Array, Value, ValueType};

/// Deepest array nesting accepted (arrays of arrays of …).
const MAX_NESTING: usize = 8;

/// A parse failure: the field being read and what is wrong.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub field: String,
    pub msg: String,
}

pub(crate) type Result<T> = std::result::Result<T, FieldError>;

pub(crate) fn fail<T>(field: &str, msg: impl Into<String>) -> Result<T> {
    Err(FieldError {
        field: field.to_string(),
        msg: msg.into(),
    })
}

/// Reads from `bytes` at `pos`.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub pos: usize,
}

macro_rules! read_le {
    ($name:ident, $t:ty) => {
        pub fn $name(&mut self, field: &str) -> Result<$t> {
            let b = self.take(std::mem::size_of::<$t>(), field)?;
            Ok(<$t>::from_le_bytes(b.try_into().expect("sized")))
        }
    };
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    /// Bytes left after the position.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return fail(
                field,
                format!(
                    "needs {n} bytes at offset {}, the file ends after {} more",
                    self.pos,
                    self.remaining()
                ),
            );
        }
        let b = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    read_le!(u8, u8);
    read_le!(i8, i8);
    read_le!(u16, u16);
    read_le!(i16, i16);
    read_le!(u32, u32);
    read_le!(i32, i32);
    read_le!(u64, u64);
    read_le!(i64, i64);
    read_le!(f32, f32);
    read_le!(f64, f64);

    /// A count of items each at least `min_bytes` long, checked against what
    /// is left of the file (so no huge allocation happens for a lying count).
    pub fn count(&mut self, field: &str, min_bytes: usize) -> Result<usize> {
        let n = self.u64(field)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_bytes).map(|b| (n, b)));
        match fits {
            Some((n, bytes)) if bytes <= self.remaining() => Ok(n),
            _ => fail(
                field,
                format!(
                    "count {n} needs at least {min_bytes} bytes each, only {} bytes remain",
                    self.remaining()
                ),
            ),
        }
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self, field: &str) -> Result<String> {
        let n = self.count(field, 1)?;
        let b = self.take(n, field)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => fail(field, format!("string is not UTF-8: {e}")),
        }
    }

    /// A value-type tag.
    pub fn value_type(&mut self, field: &str) -> Result<ValueType> {
        let id = self.u32(field)?;
        match ValueType::from_id(id) {
            Some(t) => Ok(t),
            None => fail(field, format!("unknown metadata value type {id}")),
        }
    }

    /// A value of type `t`.
    pub fn value(&mut self, t: ValueType, field: &str) -> Result<Value> {
        self.value_at_depth(t, field, 0)
    }

    fn value_at_depth(&mut self, t: ValueType, field: &str, depth: usize) -> Result<Value> {
        Ok(match t {
            ValueType::U8 => Value::U8(self.u8(field)?),
            ValueType::I8 => Value::I8(self.i8(field)?),
            ValueType::U16 => Value::U16(self.u16(field)?),
            ValueType::I16 => Value::I16(self.i16(field)?),
            ValueType::U32 => Value::U32(self.u32(field)?),
            ValueType::I32 => Value::I32(self.i32(field)?),
            ValueType::F32 => Value::F32(self.f32(field)?),
            ValueType::Bool => Value::Bool(self.bool(field)?),
            ValueType::String => Value::String(self.string(field)?),
            ValueType::Array => Value::Array(self.array(field, depth)?),
            ValueType::U64 => Value::U64(self.u64(field)?),
            ValueType::I64 => Value::I64(self.i64(field)?),
            ValueType::F64 => Value::F64(self.f64(field)?),
        })
    }

    fn bool(&mut self, field: &str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            b => fail(field, format!("bool byte {b} is neither 0 nor 1")),
        }
    }

    fn array(&mut self, field: &str, depth: usize) -> Result<Array> {
        if depth >= MAX_NESTING {
            return fail(field, format!("arrays nested deeper than {MAX_NESTING}"));
        }
        let t = self.value_type(field)?;
        let n = self.count(field, t.min_bytes())?;
        macro_rules! many {
            ($variant:ident, $read:ident) => {{
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.$read(field)?);
                }
                Array::$variant(v)
            }};
        }
        Ok(match t {
            ValueType::U8 => Array::U8(self.take(n, field)?.to_vec()),
            ValueType::I8 => many!(I8, i8),
            ValueType::U16 => many!(U16, u16),
            ValueType::I16 => many!(I16, i16),
            ValueType::U32 => many!(U32, u32),
            ValueType::I32 => many!(I32, i32),
            ValueType::F32 => many!(F32, f32),
            ValueType::Bool => many!(Bool, bool),
            ValueType::String => many!(String, string),
            ValueType::U64 => many!(U64, u64),
            ValueType::I64 => many!(I64, i64),
            ValueType::F64 => many!(F64, f64),
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array(field, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

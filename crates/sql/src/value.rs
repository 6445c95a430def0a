//! One SQLite value as the public evaluation scripts see it: Python's
//! `sqlite3` module turns every cell into `None`, `int`, `float`, `str` or
//! `bytes`, and the comparison rules lean on Python's equality, hashing and
//! `str()` of those objects. This type reproduces exactly those three.

use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

/// A cell of a query result.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What Python's `==` and `hash` look at: an integral float equals (and hashes
/// like) the integer of the same value, so `1 == 1.0`; text never equals a number.
#[derive(PartialEq, Eq, Hash)]
enum PyKey<'a> {
    Null,
    Int(i64),
    Float(u64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl Value {
    fn py_key(&self) -> PyKey<'_> {
        match self {
            Value::Null => PyKey::Null,
            Value::Integer(i) => PyKey::Int(*i),
            Value::Real(f) => {
                // 2^63 as f64 is exactly representable; every integral float
                // strictly inside (-2^63, 2^63) is an i64 without rounding.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if f.is_finite() && f.fract() == 0.0 && *f > -LIMIT && *f < LIMIT {
                    PyKey::Int(*f as i64)
                } else {
                    PyKey::Float(f.to_bits())
                }
            }
            Value::Text(s) => PyKey::Text(s),
            Value::Blob(b) => PyKey::Blob(b),
        }
    }

    /// Python's `str(type(x))` for the object `sqlite3` returns for this value.
    pub fn python_type(&self) -> &'static str {
        match self {
            Value::Null => "<class 'NoneType'>",
            Value::Integer(_) => "<class 'int'>",
            Value::Real(_) => "<class 'float'>",
            Value::Text(_) => "<class 'str'>",
            Value::Blob(_) => "<class 'bytes'>",
        }
    }

    /// Python's `str(x)` for the object `sqlite3` returns for this value.
    pub fn python_str(&self) -> String {
        match self {
            Value::Null => "None".to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => python_float_repr(*f),
            Value::Text(s) => s.clone(),
            Value::Blob(b) => python_bytes_repr(b),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.py_key() == other.py_key()
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.py_key().hash(state);
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_none(),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Real(f) => serializer.serialize_f64(*f),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Blob(b) => serializer.serialize_str(&python_bytes_repr(b)),
        }
    }
}

/// Python's `repr(float)`; one implementation shared with the OmniSQL
/// serializer, which prints example values the same way.
use text2sql_data::serialize::python_float as python_float_repr;

/// Python's `repr(bytes)`: `b'...'` with `\t \n \r \\` and `\xNN` escapes,
/// double quotes when the bytes hold a `'` but no `"`.
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(quote as char);
    for &b in bytes {
        match b {
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\\' => out.push_str("\\\\"),
            _ if b == quote => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn integers_equal_integral_floats_and_hash_alike() {
        assert_eq!(Value::Integer(1), Value::Real(1.0));
        assert_eq!(Value::Integer(0), Value::Real(-0.0));
        assert_ne!(Value::Integer(1), Value::Real(1.5));
        let set: HashSet<Value> = [Value::Integer(3), Value::Real(3.0)].into_iter().collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn text_never_equals_a_number() {
        assert_ne!(Value::Text("1".into()), Value::Integer(1));
        assert_ne!(Value::Text("1.0".into()), Value::Real(1.0));
        assert_ne!(Value::Null, Value::Text("None".into()));
        assert_eq!(Value::Null, Value::Null);
    }

    #[test]
    fn float_str_matches_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-320, "1e-320"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "{value:e}");
        }
    }

    #[test]
    fn bytes_str_matches_python_repr() {
        assert_eq!(python_bytes_repr(b"ab\x00\n'"), "b\"ab\\x00\\n'\"");
        assert_eq!(python_bytes_repr(b"a'\""), "b'a\\'\"'");
    }
}

//! DynamicValue codec: msgpack (what Terraform sends and what we answer) and JSON (accepted as
//! a fallback), directed by the schema so sensitive strings are decoded straight into secrets
//! and every attribute key is written on encode, as Terraform demands.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::schema::{Block, Nesting, Type};
use super::value::{Number, Value};

/// Why a value could not be decoded or encoded. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct CodecError {
    /// Where in the value, e.g. `vault.address` (empty for the root).
    pub path: String,
    /// What was wrong, in terms of types only.
    pub problem: String,
}

impl CodecError {
    fn new(path: &str, problem: impl Into<String>) -> Self {
        CodecError {
            path: if path.is_empty() {
                "(root)".into()
            } else {
                path.into()
            },
            problem: problem.into(),
        }
    }
}

fn join(path: &str, step: &str) -> String {
    if path.is_empty() {
        step.to_owned()
    } else {
        format!("{path}.{step}")
    }
}

/// The static shape used for decoding: a block or a plain type.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Block(&'a Block),
    Type(&'a Type, bool),
}

// ---------------------------------------------------------------------------------------------
// msgpack decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, path: &str) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| CodecError::new(path, "msgpack data ends early"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self, path: &str) -> Result<u8, CodecError> {
        Ok(self.take(1, path)?[0])
    }

    fn be(&mut self, n: usize, path: &str) -> Result<u64, CodecError> {
        Ok(self
            .take(n, path)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize, path: &str) -> Result<usize, CodecError> {
        let len = self.be(n, path)?;
        // A length can never exceed what is left; checking here stops huge allocations.
        if len > (self.buf.len() - self.pos) as u64 {
            return Err(CodecError::new(path, "msgpack length exceeds the data"));
        }
        Ok(len as usize)
    }
}

/// What a marker byte announces.
enum Item {
    Nil,
    Unknown,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(usize),
    Array(usize),
    Map(usize),
}

fn read_item(r: &mut Reader<'_>, path: &str) -> Result<Item, CodecError> {
    let m = r.byte(path)?;
    Ok(match m {
        0x00..=0x7f => Item::Int(i64::from(m)),
        0x80..=0x8f => Item::Map(usize::from(m & 0x0f)),
        0x90..=0x9f => Item::Array(usize::from(m & 0x0f)),
        0xa0..=0xbf => Item::Str(usize::from(m & 0x1f)),
        0xc0 => Item::Nil,
        0xc2 => Item::Bool(false),
        0xc3 => Item::Bool(true),
        // Every extension type is an unknown value (0 = plain, 12 = refined, others tolerated).
        0xd4..=0xd8 => {
            let size = 1usize << (m - 0xd4);
            r.take(1 + size, path)?;
            Item::Unknown
        }
        0xc7..=0xc9 => {
            let len = r.be(1 << (m - 0xc7), path)? as usize;
            r.take(1 + len, path)?;
            Item::Unknown
        }
        0xca => Item::Float(f64::from(f32::from_bits(r.be(4, path)? as u32))),
        0xcb => Item::Float(f64::from_bits(r.be(8, path)?)),
        0xcc..=0xcf => Item::UInt(r.be(1 << (m - 0xcc), path)?),
        0xd0 => Item::Int(i64::from(r.be(1, path)? as u8 as i8)),
        0xd1 => Item::Int(i64::from(r.be(2, path)? as u16 as i16)),
        0xd2 => Item::Int(i64::from(r.be(4, path)? as u32 as i32)),
        0xd3 => Item::Int(r.be(8, path)? as i64),
        0xd9..=0xdb => Item::Str(r.len(1 << (m - 0xd9), path)?),
        0xdc | 0xdd => Item::Array(r.len(2 << (m - 0xdc), path)?),
        0xde | 0xdf => Item::Map(r.len(2 << (m - 0xde), path)?),
        0xe0..=0xff => Item::Int(i64::from(m as i8)),
        // 0xc1 is never used; 0xc4..=0xc6 are binary, which no schema type maps to.
        _ => {
            return Err(CodecError::new(
                path,
                format!("unexpected msgpack marker 0x{m:02x}"),
            ));
        }
    })
}

fn read_string(r: &mut Reader<'_>, len: usize, path: &str) -> Result<String, CodecError> {
    let bytes = r.take(len, path)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::new(path, "string is not UTF-8"))
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::Nil => "null",
        Item::Unknown => "unknown",
        Item::Bool(_) => "bool",
        Item::Int(_) | Item::UInt(_) | Item::Float(_) => "number",
        Item::Str(_) => "string",
        Item::Array(_) => "array",
        Item::Map(_) => "map",
    }
}

fn decode_shape(
    r: &mut Reader<'_>,
    shape: Shape<'_>,
    path: &str,
    depth: u32,
) -> Result<Value, CodecError> {
    if depth > 32 {
        return Err(CodecError::new(path, "value nested too deeply"));
    }
    let item = read_item(r, path)?;
    match item {
        Item::Nil => return Ok(Value::Null),
        Item::Unknown => return Ok(Value::Unknown),
        _ => {}
    }
    let mismatch = |want: &str, item: &Item| {
        CodecError::new(path, format!("expected {want}, found {}", describe(item)))
    };
    match shape {
        Shape::Block(block) => match item {
            Item::Map(n) => decode_block_entries(r, block, n, path, depth),
            other => Err(mismatch("an object", &other)),
        },
        Shape::Type(ty, sensitive) => match (ty, item) {
            (Type::String, Item::Str(len)) => {
                let s = read_string(r, len, path)?;
                Ok(if sensitive {
                    Value::Secret(SecretString::from(s))
                } else {
                    Value::String(s)
                })
            }
            (Type::Bool, Item::Bool(b)) => Ok(Value::Bool(b)),
            (Type::Number, Item::Int(i)) => Ok(Value::Number(Number::Int(i))),
            (Type::Number, Item::UInt(u)) => Ok(Value::Number(
                i64::try_from(u).map_or(Number::Float(u as f64), Number::Int),
            )),
            (Type::Number, Item::Float(f)) => Ok(Value::Number(Number::Float(f))),
            // Numbers too large for msgpack's native types arrive as decimal text.
            (Type::Number, Item::Str(len)) => {
                let text = read_string(r, len, path)?;
                let n = match text.parse::<i64>() {
                    Ok(i) => Number::Int(i),
                    Err(_) => Number::Float(
                        text.parse::<f64>()
                            .map_err(|_| CodecError::new(path, "number text is not a number"))?,
                    ),
                };
                Ok(Value::Number(n))
            }
            (Type::List(elem) | Type::Set(elem), Item::Array(n)) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for i in 0..n {
                    let p = format!("{path}[{i}]");
                    items.push(decode_shape(
                        r,
                        Shape::Type(elem, sensitive),
                        &p,
                        depth + 1,
                    )?);
                }
                Ok(Value::List(items))
            }
            (Type::Map(elem), Item::Map(n)) => {
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let key = decode_key(r, path)?;
                    let p = format!("{path}[{key:?}]");
                    let v = decode_shape(r, Shape::Type(elem, sensitive), &p, depth + 1)?;
                    map.insert(key, v);
                }
                Ok(Value::Map(map))
            }
            (Type::Object(attrs), Item::Map(n)) => {
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let key = decode_key(r, path)?;
                    let p = join(path, &key);
                    let ty = attrs
                        .get(&key)
                        .ok_or_else(|| CodecError::new(&p, "unsupported attribute"))?;
                    let v = decode_shape(r, Shape::Type(ty, sensitive), &p, depth + 1)?;
                    map.insert(key, v);
                }
                for name in attrs.keys() {
                    map.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Map(map))
            }
            (ty, other) => Err(mismatch(&ty.friendly_name(), &other)),
        },
    }
}

fn decode_key(r: &mut Reader<'_>, path: &str) -> Result<String, CodecError> {
    match read_item(r, path)? {
        Item::Str(len) => read_string(r, len, path),
        other => Err(CodecError::new(
            path,
            format!("map key must be a string, found {}", describe(&other)),
        )),
    }
}

fn decode_block_entries(
    r: &mut Reader<'_>,
    block: &Block,
    n: usize,
    path: &str,
    depth: u32,
) -> Result<Value, CodecError> {
    let mut map = BTreeMap::new();
    for _ in 0..n {
        let key = decode_key(r, path)?;
        let p = join(path, &key);
        let value = if let Some(attr) = block.attribute(&key) {
            decode_shape(r, Shape::Type(&attr.ty, attr.sensitive), &p, depth + 1)?
        } else if let Some(nested) = block.nested(&key) {
            match nested.nesting {
                Nesting::Single => decode_shape(r, Shape::Block(&nested.block), &p, depth + 1)?,
                Nesting::List => match read_item(r, &p)? {
                    Item::Nil => Value::Null,
                    Item::Unknown => Value::Unknown,
                    Item::Array(count) => {
                        let mut items = Vec::with_capacity(count.min(1024));
                        for i in 0..count {
                            let ip = format!("{p}[{i}]");
                            items.push(decode_shape(
                                r,
                                Shape::Block(&nested.block),
                                &ip,
                                depth + 1,
                            )?);
                        }
                        Value::List(items)
                    }
                    other => {
                        return Err(CodecError::new(
                            &p,
                            format!("expected a list of blocks, found {}", describe(&other)),
                        ));
                    }
                },
            }
        } else {
            return Err(CodecError::new(&p, "unsupported attribute"));
        };
        map.insert(key, value);
    }
    for attr in &block.attributes {
        map.entry(attr.name.to_owned()).or_insert(Value::Null);
    }
    for nested in &block.blocks {
        map.entry(nested.type_name.to_owned())
            .or_insert(Value::Null);
    }
    Ok(Value::Map(map))
}

/// Decodes a msgpack DynamicValue of a block (a whole configuration or result).
pub fn decode_msgpack(bytes: &[u8], block: &Block) -> Result<Value, CodecError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let value = decode_shape(&mut r, Shape::Block(block), "", 0)?;
    if r.pos != bytes.len() {
        return Err(CodecError::new("", "trailing bytes after the value"));
    }
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// JSON decoding (fallback)

fn json_to_value(j: serde_json::Value, shape: Shape<'_>, path: &str) -> Result<Value, CodecError> {
    use serde_json::Value as J;
    if j.is_null() {
        return Ok(Value::Null);
    }
    let found = |j: &J| match j {
        J::Null => "null",
        J::Bool(_) => "bool",
        J::Number(_) => "number",
        J::String(_) => "string",
        J::Array(_) => "array",
        J::Object(_) => "object",
    };
    match shape {
        Shape::Block(block) => {
            let J::Object(obj) = j else {
                return Err(CodecError::new(
                    path,
                    format!("expected an object, found {}", found(&j)),
                ));
            };
            let mut map = BTreeMap::new();
            for (key, v) in obj {
                let p = join(path, &key);
                let value = if let Some(attr) = block.attribute(&key) {
                    json_to_value(v, Shape::Type(&attr.ty, attr.sensitive), &p)?
                } else if let Some(nested) = block.nested(&key) {
                    match (nested.nesting, v) {
                        (Nesting::Single, v) => json_to_value(v, Shape::Block(&nested.block), &p)?,
                        (Nesting::List, J::Array(items)) => Value::List(
                            items
                                .into_iter()
                                .enumerate()
                                .map(|(i, v)| {
                                    json_to_value(
                                        v,
                                        Shape::Block(&nested.block),
                                        &format!("{p}[{i}]"),
                                    )
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        (Nesting::List, J::Null) => Value::Null,
                        (Nesting::List, other) => {
                            return Err(CodecError::new(
                                &p,
                                format!("expected a list of blocks, found {}", found(&other)),
                            ));
                        }
                    }
                } else {
                    return Err(CodecError::new(&p, "unsupported attribute"));
                };
                map.insert(key, value);
            }
            for attr in &block.attributes {
                map.entry(attr.name.to_owned()).or_insert(Value::Null);
            }
            for nested in &block.blocks {
                map.entry(nested.type_name.to_owned())
                    .or_insert(Value::Null);
            }
            Ok(Value::Map(map))
        }
        Shape::Type(ty, sensitive) => match (ty, j) {
            (Type::String, J::String(s)) => Ok(if sensitive {
                Value::Secret(SecretString::from(s))
            } else {
                Value::String(s)
            }),
            (Type::Bool, J::Bool(b)) => Ok(Value::Bool(b)),
            (Type::Number, J::Number(n)) => Ok(Value::Number(match n.as_i64() {
                Some(i) => Number::Int(i),
                None => Number::Float(n.as_f64().unwrap_or(f64::NAN)),
            })),
            (Type::List(elem) | Type::Set(elem), J::Array(items)) => Ok(Value::List(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        json_to_value(v, Shape::Type(elem, sensitive), &format!("{path}[{i}]"))
                    })
                    .collect::<Result<_, _>>()?,
            )),
            (Type::Map(elem), J::Object(obj)) => Ok(Value::Map(
                obj.into_iter()
                    .map(|(k, v)| {
                        let p = format!("{path}[{k:?}]");
                        json_to_value(v, Shape::Type(elem, sensitive), &p).map(|v| (k, v))
                    })
                    .collect::<Result<_, _>>()?,
            )),
            (Type::Object(attrs), J::Object(obj)) => {
                let mut map = BTreeMap::new();
                for (k, v) in obj {
                    let p = join(path, &k);
                    let ty = attrs
                        .get(&k)
                        .ok_or_else(|| CodecError::new(&p, "unsupported attribute"))?;
                    map.insert(k, json_to_value(v, Shape::Type(ty, sensitive), &p)?);
                }
                for name in attrs.keys() {
                    map.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Map(map))
            }
            (ty, other) => Err(CodecError::new(
                path,
                format!("expected {}, found {}", ty.friendly_name(), found(&other)),
            )),
        },
    }
}

/// Decodes a JSON DynamicValue of a block. JSON cannot express unknown values.
pub fn decode_json(bytes: &[u8], block: &Block) -> Result<Value, CodecError> {
    let j: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        CodecError::new(
            "",
            format!("invalid JSON at line {} column {}", e.line(), e.column()),
        )
    })?;
    json_to_value(j, Shape::Block(block), "")
}

// ---------------------------------------------------------------------------------------------
// msgpack encoding

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = rmp::encode::write_str(out, s);
}

fn encode_shape(
    out: &mut Vec<u8>,
    value: &Value,
    shape: Shape<'_>,
    path: &str,
) -> Result<(), CodecError> {
    match value {
        Value::Null => {
            let _ = rmp::encode::write_nil(out);
            return Ok(());
        }
        Value::Unknown => {
            // go-cty's plain unknown: fixext1, type 0, one zero byte.
            out.extend_from_slice(&[0xd4, 0x00, 0x00]);
            return Ok(());
        }
        _ => {}
    }
    let mismatch =
        |want: &str| CodecError::new(path, format!("value does not match the schema type {want}"));
    match shape {
        Shape::Block(block) => {
            let Value::Map(map) = value else {
                return Err(mismatch("object"));
            };
            if let Some(extra) = map
                .keys()
                .find(|k| block.attribute(k).is_none() && block.nested(k).is_none())
            {
                return Err(CodecError::new(&join(path, extra), "not in the schema"));
            }
            let count = block.attributes.len() + block.blocks.len();
            let _ = rmp::encode::write_map_len(out, count as u32);
            for attr in &block.attributes {
                write_str(out, attr.name);
                let v = map.get(attr.name).unwrap_or(&Value::Null);
                encode_shape(
                    out,
                    v,
                    Shape::Type(&attr.ty, attr.sensitive),
                    &join(path, attr.name),
                )?;
            }
            for nested in &block.blocks {
                write_str(out, nested.type_name);
                let p = join(path, nested.type_name);
                let v = map.get(nested.type_name).unwrap_or(&Value::Null);
                match (nested.nesting, v) {
                    (Nesting::Single, v) => encode_shape(out, v, Shape::Block(&nested.block), &p)?,
                    (Nesting::List, Value::List(items)) => {
                        let _ = rmp::encode::write_array_len(out, items.len() as u32);
                        for (i, item) in items.iter().enumerate() {
                            let ip = format!("{p}[{i}]");
                            encode_shape(out, item, Shape::Block(&nested.block), &ip)?;
                        }
                    }
                    // Null and unknown encode as for any shape.
                    (Nesting::List, v @ (Value::Null | Value::Unknown)) => {
                        encode_shape(out, v, Shape::Block(&nested.block), &p)?;
                    }
                    (Nesting::List, _) => {
                        return Err(CodecError::new(
                            &p,
                            "value does not match the schema type list of blocks",
                        ));
                    }
                }
            }
            Ok(())
        }
        Shape::Type(ty, sensitive) => match (ty, value) {
            (Type::String, Value::String(s)) => {
                write_str(out, s);
                Ok(())
            }
            (Type::String, Value::Secret(s)) => {
                write_str(out, s.expose_secret());
                Ok(())
            }
            (Type::Bool, Value::Bool(b)) => {
                let _ = rmp::encode::write_bool(out, *b);
                Ok(())
            }
            (Type::Number, Value::Number(Number::Int(i))) => {
                let _ = rmp::encode::write_sint(out, *i);
                Ok(())
            }
            (Type::Number, Value::Number(Number::Float(f))) => {
                let _ = rmp::encode::write_f64(out, *f);
                Ok(())
            }
            (Type::List(elem) | Type::Set(elem), Value::List(items)) => {
                let _ = rmp::encode::write_array_len(out, items.len() as u32);
                for (i, item) in items.iter().enumerate() {
                    encode_shape(
                        out,
                        item,
                        Shape::Type(elem, sensitive),
                        &format!("{path}[{i}]"),
                    )?;
                }
                Ok(())
            }
            (Type::Map(elem), Value::Map(map)) => {
                let _ = rmp::encode::write_map_len(out, map.len() as u32);
                for (k, v) in map {
                    write_str(out, k);
                    encode_shape(
                        out,
                        v,
                        Shape::Type(elem, sensitive),
                        &format!("{path}[{k:?}]"),
                    )?;
                }
                Ok(())
            }
            (Type::Object(attrs), Value::Map(map)) => {
                if let Some(extra) = map.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(CodecError::new(&join(path, extra), "not in the schema"));
                }
                let _ = rmp::encode::write_map_len(out, attrs.len() as u32);
                for (name, t) in attrs {
                    write_str(out, name);
                    let v = map.get(name).unwrap_or(&Value::Null);
                    encode_shape(out, v, Shape::Type(t, sensitive), &join(path, name))?;
                }
                Ok(())
            }
            (ty, _) => Err(mismatch(&ty.friendly_name())),
        },
    }
}

/// Encodes a block value as msgpack, writing every attribute and nested block key of the
/// schema (missing ones as null) and rejecting keys the schema does not have.
pub fn encode_msgpack(value: &Value, block: &Block) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    encode_shape(&mut out, value, Shape::Block(block), "")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::{Attribute, NestedBlock};

    fn block() -> Block {
        Block::new(
            "test",
            vec![
                Attribute::required("path", Type::String, "d"),
                Attribute::optional("token", Type::String, "d").sensitive(),
                Attribute::optional("version", Type::Number, "d"),
                Attribute::optional("flag", Type::Bool, "d"),
                Attribute::computed("data", Type::map_of_strings(), "d").sensitive(),
                Attribute::computed("list", Type::List(Box::new(Type::Number)), "d"),
            ],
        )
        .with_block(NestedBlock::single(
            "vault",
            Block::new("d", vec![Attribute::optional("address", Type::String, "d")]),
        ))
    }

    #[test]
    fn round_trip_keeps_every_value_and_key() {
        let v = Value::object([
            ("path", Value::from("a/b")),
            ("token", Value::Secret(SecretString::from("s3cret"))),
            ("version", Value::from(7)),
            ("flag", Value::from(true)),
            (
                "data",
                Value::object([("k", Value::Secret(SecretString::from("v")))]),
            ),
            (
                "list",
                Value::List(vec![Value::from(-1), Value::Number(Number::Float(2.5))]),
            ),
            (
                "vault",
                Value::object([("address", Value::from("http://x"))]),
            ),
        ]);
        let bytes = encode_msgpack(&v, &block()).unwrap();
        let back = decode_msgpack(&bytes, &block()).unwrap();
        assert_eq!(back, v);
        // Sensitive attributes decode into secrets.
        assert!(matches!(back.get("token"), Value::Secret(_)));
        assert!(matches!(back.get("data").get("k"), Value::Secret(_)));
    }

    #[test]
    fn encode_fills_every_key_with_null() {
        let bytes = encode_msgpack(&Value::object([("path", Value::from("p"))]), &block()).unwrap();
        // fixmap of 7 entries: 6 attributes + 1 block.
        assert_eq!(bytes[0], 0x87);
        let back = decode_msgpack(&bytes, &block()).unwrap();
        assert!(back.get("vault").is_null());
        assert!(back.get("version").is_null());
    }

    #[test]
    fn encode_rejects_keys_outside_the_schema() {
        let err = encode_msgpack(&Value::object([("nope", Value::from(1))]), &block()).unwrap_err();
        assert_eq!(err.path, "nope");
    }

    #[test]
    fn every_extension_type_decodes_as_unknown() {
        // {"path": <unknown>} with each ext form: fixext1 type 0 (go-cty plain unknown),
        // ext8 type 12 (refined unknown with a payload), fixext4 of an arbitrary type.
        let cases: [&[u8]; 3] = [
            &[0xd4, 0x00, 0x00],
            &[0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3],
            &[0xd6, 0x05, 1, 2, 3, 4],
        ];
        for ext in cases {
            let mut bytes = vec![0x81, 0xa4];
            bytes.extend_from_slice(b"path");
            bytes.extend_from_slice(ext);
            let v = decode_msgpack(&bytes, &block()).unwrap();
            assert!(matches!(v.get("path"), Value::Unknown), "{ext:?}");
            assert!(!v.is_fully_known());
        }
    }

    #[test]
    fn whole_unknown_block_and_unknown_nested_block() {
        assert!(matches!(
            decode_msgpack(&[0xd4, 0, 0], &block()).unwrap(),
            Value::Unknown
        ));
        let mut bytes = vec![0x81, 0xa5];
        bytes.extend_from_slice(b"vault");
        bytes.extend_from_slice(&[0xd4, 0, 0]);
        assert!(matches!(
            decode_msgpack(&bytes, &block()).unwrap().get("vault"),
            Value::Unknown
        ));
    }

    #[test]
    fn numbers_in_every_encoding() {
        let ty = Block::new("d", vec![Attribute::optional("n", Type::Number, "d")]);
        let cases: [(&[u8], Number); 8] = [
            (&[0x05], Number::Int(5)),
            (&[0xff], Number::Int(-1)),
            (&[0xcc, 0xff], Number::Int(255)),
            (&[0xd1, 0xff, 0x00], Number::Int(-256)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Number::Float(u64::MAX as f64),
            ),
            (&[0xca, 0x3f, 0xc0, 0x00, 0x00], Number::Float(1.5)),
            (&[0xa2, b'4', b'2'], Number::Int(42)),
            (&[0xa3, b'0', b'.', b'5'], Number::Float(0.5)),
        ];
        for (enc, want) in cases {
            let mut bytes = vec![0x81, 0xa1, b'n'];
            bytes.extend_from_slice(enc);
            let v = decode_msgpack(&bytes, &ty).unwrap();
            assert_eq!(v.get("n"), &Value::Number(want), "{enc:?}");
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: [&[u8]; 9] = [
            &[],
            &[0x81],
            &[0x81, 0xa4, b'p'],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
            &[0x81, 0xa4, b'p', b'a', b't', b'h', 0x05],
            &[0x81, 0xa3, b'b', b'a', b'd', 0xc0],
            &[0x81, 0x01, 0xc0],
            &[0x80, 0x00],
            &[0xc1],
        ];
        for bytes in cases {
            assert!(decode_msgpack(bytes, &block()).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn errors_name_the_path_but_never_the_value() {
        // {"token": 12} where token is a sensitive string.
        let bytes = [0x81, 0xa5, b't', b'o', b'k', b'e', b'n', 0x0c];
        let err = decode_msgpack(&bytes, &block()).unwrap_err();
        assert_eq!(err.to_string(), "token: expected string, found number");
    }

    #[test]
    fn nesting_and_lengths_are_bounded_by_the_limits() {
        // {"deep": [[...["" ]...]]} against list(list(...(string))) of as many levels: up to
        // the depth limit it decodes, deeper it is refused before recursing further.
        let nested = |levels: usize| {
            let ty = (0..levels).fold(Type::String, |t, _| Type::List(Box::new(t)));
            let b = Block::new("d", vec![Attribute::optional("deep", ty, "d")]);
            let mut bytes = vec![0x81, 0xa4, b'd', b'e', b'e', b'p'];
            bytes.extend(std::iter::repeat_n(0x91, levels));
            bytes.push(0xa0);
            decode_msgpack(&bytes, &b)
        };
        assert!(nested(31).is_ok());
        assert_eq!(nested(32).unwrap_err().problem, "value nested too deeply");
        assert_eq!(
            nested(10_000).unwrap_err().problem,
            "value nested too deeply"
        );
        // Lengths larger than the rest of the data are refused before allocating.
        for header in [&[0xdd, 0xff, 0xff, 0xff, 0xff][..], &[0xdc, 0xff, 0xff]] {
            let mut bytes = vec![0x81, 0xa4, b'l', b'i', b's', b't'];
            bytes.extend_from_slice(header);
            let err = decode_msgpack(&bytes, &block()).unwrap_err();
            assert_eq!(err.problem, "msgpack length exceeds the data");
        }
    }

    #[test]
    fn absent_null_or_unknown_list_of_blocks_encodes_again() {
        // Found by the dynamic_value fuzz target: `{}` decoded against a schema with a list
        // nested block gave that block null, which then failed to encode.
        let b = Block::new("d", vec![]).with_block(NestedBlock {
            nesting: Nesting::List,
            ..NestedBlock::single(
                "items",
                Block::new("d", vec![Attribute::optional("s", Type::String, "d")]),
            )
        });
        let cases: [(&[u8], &[u8]); 3] = [
            (&[0x80], &[0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0xc0]),
            (
                &[0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0xd4, 0x00, 0x00],
                &[0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0xd4, 0x00, 0x00],
            ),
            (
                &[0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0x91, 0x80],
                &[
                    0x81, 0xa5, b'i', b't', b'e', b'm', b's', 0x91, 0x81, 0xa1, b's', 0xc0,
                ],
            ),
        ];
        for (input, want) in cases {
            let v = decode_msgpack(input, &b).unwrap();
            assert_eq!(encode_msgpack(&v, &b).unwrap(), want, "{input:?}");
        }
        let err = encode_msgpack(&Value::object([("items", Value::from(true))]), &b).unwrap_err();
        assert_eq!(err.path, "items");
        let bad_item = Value::object([("items", Value::List(vec![Value::from(1)]))]);
        assert_eq!(encode_msgpack(&bad_item, &b).unwrap_err().path, "items[0]");
    }

    #[test]
    fn json_fallback_decodes_the_same_shapes() {
        let j = br#"{"path":"a","token":"t","version":3,"vault":{"address":"x"},"data":{"k":"v"}}"#;
        let v = decode_json(j, &block()).unwrap();
        assert_eq!(v.get("path"), &Value::from("a"));
        assert!(matches!(v.get("token"), Value::Secret(_)));
        assert_eq!(v.get("version"), &Value::from(3));
        assert_eq!(v.get("vault").get("address"), &Value::from("x"));
        assert!(v.get("flag").is_null());
        assert!(decode_json(br#"{"path":1}"#, &block()).is_err());
        assert!(decode_json(b"{", &block()).is_err());
    }
}

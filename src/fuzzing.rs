//! Entry points for the fuzz targets in `fuzz/` and for the corpus smoke test: each feeds
//! untrusted bytes to one parser the way the provider does, and panics when a promise the
//! parser makes is broken. Not an API.

use crate::framework::{self, Attribute, Block, NestedBlock, Nesting, Provider, Type, Value};

/// Decodes `data` as a DynamicValue of every schema the provider has, and of one that uses
/// every shape the codec supports, as msgpack and JSON. Whatever decodes must encode again
/// (unknowns included), and that encoding must decode to a value that encodes the same.
pub fn dynamic_value(data: &[u8]) {
    let provider = crate::provider();
    let mut blocks = vec![provider.schema().block, every_shape()];
    blocks.extend(
        provider
            .ephemeral_resources()
            .iter()
            .map(|r| r.schema().block),
    );
    blocks.extend(provider.data_sources().iter().map(|r| r.schema().block));
    for block in &blocks {
        if let Ok(v) = framework::decode_msgpack(data, block) {
            round_trip(&v, block);
        }
        if let Ok(v) = framework::decode_json(data, block) {
            round_trip(&v, block);
        }
    }
}

/// A block with every type and nesting the codec handles, so the fuzzer reaches the codec's
/// paths that today's schemas do not use; `deep` nests further than the decoder allows.
fn every_shape() -> Block {
    let list = |t: Type| Type::List(Box::new(t));
    let deep = (0..40).fold(Type::String, |t, _| list(t));
    let object = Type::Object(
        [
            ("a".to_owned(), Type::String),
            ("l".to_owned(), list(Type::map_of_strings())),
        ]
        .into(),
    );
    let leaf = |name| Block::new("d", vec![Attribute::optional(name, Type::String, "d")]);
    Block::new(
        "d",
        vec![
            Attribute::optional("s", Type::String, "d"),
            Attribute::optional("secret", Type::String, "d").sensitive(),
            Attribute::optional("n", Type::Number, "d"),
            Attribute::optional("b", Type::Bool, "d"),
            Attribute::optional("list", list(Type::Number), "d"),
            Attribute::optional("set", Type::Set(Box::new(Type::String)), "d").sensitive(),
            Attribute::optional("map", Type::Map(Box::new(list(Type::Bool))), "d"),
            Attribute::optional("obj", object, "d"),
            Attribute::optional("deep", deep, "d"),
        ],
    )
    .with_block(NestedBlock::single("one", leaf("s")))
    .with_block(NestedBlock {
        nesting: Nesting::List,
        ..NestedBlock::single(
            "items",
            leaf("s").with_block(NestedBlock::single("inner", leaf("t"))),
        )
    })
}

fn round_trip(v: &Value, block: &Block) {
    let bytes = framework::encode_msgpack(v, block).expect("a decoded value encodes");
    let back = framework::decode_msgpack(&bytes, block).expect("an encoded value decodes");
    let again = framework::encode_msgpack(&back, block).expect("a re-decoded value encodes");
    // Bytes, not values: NaN is not equal to itself.
    assert_eq!(bytes, again, "encoding is stable across a round trip");
}

pub use ccsecrets_core::fuzzing::{platform_response, vault_login, vault_response};

//! Conversions between generated tfplugin6 types and framework types, in both directions.
//! Every diagnostic and attribute path reaches the wire through this file.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::framework::{
    self, AttributePath, Block, CodecError, Diagnostic, Diagnostics, Nesting, PathStep, Schema,
    Severity, Value,
};

use super::proto::tfplugin6 as pb;

pub(crate) fn schema(s: &Schema) -> pb::Schema {
    pb::Schema {
        version: s.version,
        block: Some(block(&s.block, s.version)),
    }
}

fn block(b: &Block, version: i64) -> pb::schema::Block {
    pb::schema::Block {
        version,
        attributes: b
            .attributes
            .iter()
            .map(|a| pb::schema::Attribute {
                name: a.name.to_owned(),
                r#type: a.ty.to_json().to_string().into_bytes(),
                nested_type: None,
                description: a.description.clone(),
                required: a.required,
                optional: a.optional,
                computed: a.computed,
                sensitive: a.sensitive,
                description_kind: pb::StringKind::Markdown as i32,
                deprecated: a.deprecated,
                write_only: false,
            })
            .collect(),
        block_types: b
            .blocks
            .iter()
            .map(|n| pb::schema::NestedBlock {
                type_name: n.type_name.to_owned(),
                // Terraform dereferences this unconditionally: it must never be None.
                block: Some(block(&n.block, version)),
                nesting: match n.nesting {
                    Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                    Nesting::List => pb::schema::nested_block::NestingMode::List,
                } as i32,
                min_items: n.min_items,
                max_items: n.max_items,
            })
            .collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: false,
    }
}

fn path(p: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    PathStep::Attribute(n) => Selector::AttributeName(n.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub(crate) fn diagnostic(d: &Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        // Never INVALID: Terraform would treat it as neither error nor warning.
        severity: match d.severity {
            Severity::Error => pb::diagnostic::Severity::Error,
            Severity::Warning => pb::diagnostic::Severity::Warning,
        } as i32,
        summary: d.summary.clone(),
        detail: d.detail.clone(),
        attribute: d.attribute.as_ref().map(path),
    }
}

pub(crate) fn diagnostics(ds: &Diagnostics) -> Vec<pb::Diagnostic> {
    ds.iter().map(diagnostic).collect()
}

fn codec_diagnostic(what: &str, e: &CodecError) -> Diagnostic {
    Diagnostic::error(
        format!("Invalid {what}"),
        format!(
            "The provider could not decode the {what} Terraform sent ({e}). This is a bug in \
             ccsecrets or a Terraform version it does not support; please report it."
        ),
    )
}

/// Decodes a DynamicValue (msgpack preferred, JSON accepted) against `schema_block`.
pub(crate) fn decode(
    dv: Option<&pb::DynamicValue>,
    schema_block: &Block,
    what: &str,
) -> Result<Value, Diagnostic> {
    let Some(dv) = dv else {
        return Ok(Value::Null);
    };
    let decoded = if !dv.msgpack.is_empty() {
        framework::decode_msgpack(&dv.msgpack, schema_block)
    } else if !dv.json.is_empty() {
        framework::decode_json(&dv.json, schema_block)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|e| codec_diagnostic(what, &e))
}

/// Encodes a result for the wire as msgpack.
pub(crate) fn encode(value: &Value, schema_block: &Block) -> Result<pb::DynamicValue, Diagnostic> {
    framework::encode_msgpack(value, schema_block)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                "Provider produced an invalid result",
                format!("The result does not match its schema ({e}). This is a bug in ccsecrets; please report it."),
            )
        })
}

pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Attribute, NestedBlock, Type};

    #[test]
    fn nested_blocks_always_carry_a_block() {
        let s = Schema::new(
            Block::new("d", vec![Attribute::optional("a", Type::String, "d")])
                .with_block(NestedBlock::single("vault", Block::new("d", vec![]))),
        );
        let pbs = schema(&s);
        let b = pbs.block.unwrap();
        assert!(b.block_types[0].block.is_some());
        assert_eq!(b.attributes[0].r#type, br#""string""#);
        assert_eq!(
            b.attributes[0].description_kind,
            pb::StringKind::Markdown as i32
        );
    }

    #[test]
    fn diagnostics_never_use_invalid_severity_and_keep_paths() {
        let d =
            Diagnostic::warning("w", "d").at(AttributePath::root("vault").attr("token").key("k"));
        let p = diagnostic(&d);
        assert_eq!(p.severity, pb::diagnostic::Severity::Warning as i32);
        let steps = p.attribute.unwrap().steps;
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[2].selector,
            Some(pb::attribute_path::step::Selector::ElementKeyString(
                "k".into()
            ))
        );
        assert_eq!(
            diagnostic(&Diagnostic::error("e", "")).severity,
            pb::diagnostic::Severity::Error as i32
        );
    }

    #[test]
    fn empty_dynamic_value_is_null_and_json_is_accepted() {
        let b = Block::new("d", vec![Attribute::optional("a", Type::String, "d")]);
        assert!(decode(None, &b, "configuration").unwrap().is_null());
        let dv = pb::DynamicValue {
            msgpack: vec![],
            json: br#"{"a":"x"}"#.to_vec(),
        };
        assert_eq!(
            decode(Some(&dv), &b, "configuration").unwrap().get("a"),
            &Value::from("x")
        );
        let bad = pb::DynamicValue {
            msgpack: vec![0xc1],
            json: vec![],
        };
        let err = decode(Some(&bad), &b, "configuration").unwrap_err();
        assert_eq!(err.summary, "Invalid configuration");
    }
}

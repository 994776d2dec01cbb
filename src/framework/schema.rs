//! Schemas: the shape of provider, ephemeral resource and data source configuration and results.
//! `Schema::check` applies the rules Terraform enforces, because a schema it rejects crashes it.

use std::collections::BTreeMap;

/// A Terraform (cty) type.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `string`
    String,
    /// `number`
    Number,
    /// `bool`
    Bool,
    /// `list(T)`
    List(Box<Type>),
    /// `set(T)`
    Set(Box<Type>),
    /// `map(T)`
    Map(Box<Type>),
    /// `object({...})`
    Object(BTreeMap<String, Type>),
}

impl Type {
    /// `map(string)`, the most common collection in this provider.
    pub fn map_of_strings() -> Type {
        Type::Map(Box::new(Type::String))
    }

    /// The type as cty's JSON notation, which is what the wire protocol carries.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value as J, json};
        match self {
            Type::String => J::from("string"),
            Type::Number => J::from("number"),
            Type::Bool => J::from("bool"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
            Type::Object(attrs) => {
                let fields: serde_json::Map<String, J> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", fields])
            }
        }
    }

    /// A short name for diagnostics and docs, e.g. `map(string)`.
    pub fn friendly_name(&self) -> String {
        match self {
            Type::String => "string".into(),
            Type::Number => "number".into(),
            Type::Bool => "bool".into(),
            Type::List(t) => format!("list({})", t.friendly_name()),
            Type::Set(t) => format!("set({})", t.friendly_name()),
            Type::Map(t) => format!("map({})", t.friendly_name()),
            Type::Object(_) => "object".into(),
        }
    }
}

/// One attribute of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The HCL name.
    pub name: &'static str,
    /// The value type.
    pub ty: Type,
    /// Markdown documentation, shown in the registry docs.
    pub description: String,
    /// Must be set in configuration.
    pub required: bool,
    /// May be set in configuration.
    pub optional: bool,
    /// Set by the provider (alone: a result; with `optional`: a default the provider fills).
    pub computed: bool,
    /// Terraform redacts the value in its output.
    pub sensitive: bool,
    /// Documentation flag only.
    pub deprecated: bool,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, description: impl Into<String>) -> Self {
        Attribute {
            name,
            ty,
            description: description.into(),
            required: false,
            optional: false,
            computed: false,
            sensitive: false,
            deprecated: false,
        }
    }

    /// An attribute the configuration must set.
    pub fn required(name: &'static str, ty: Type, description: impl Into<String>) -> Self {
        Attribute {
            required: true,
            ..Self::new(name, ty, description)
        }
    }

    /// An attribute the configuration may set.
    pub fn optional(name: &'static str, ty: Type, description: impl Into<String>) -> Self {
        Attribute {
            optional: true,
            ..Self::new(name, ty, description)
        }
    }

    /// A result the provider fills in.
    pub fn computed(name: &'static str, ty: Type, description: impl Into<String>) -> Self {
        Attribute {
            computed: true,
            ..Self::new(name, ty, description)
        }
    }

    /// An attribute the configuration may set and the provider fills in when it is not.
    pub fn optional_computed(name: &'static str, ty: Type, description: impl Into<String>) -> Self {
        Attribute {
            optional: true,
            computed: true,
            ..Self::new(name, ty, description)
        }
    }

    /// Marks the attribute sensitive.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// How a nested block may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; its value is an object or null.
    Single,
    /// A list of blocks.
    List,
}

/// A nested block type.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedBlock {
    /// The block's HCL name.
    pub type_name: &'static str,
    /// Its content.
    pub block: Block,
    /// How it may repeat.
    pub nesting: Nesting,
    /// Minimum count (0 or 1 for `Single`).
    pub min_items: i64,
    /// Maximum count (0 means no limit; 0 or 1 for `Single`).
    pub max_items: i64,
}

impl NestedBlock {
    /// An optional block that may appear at most once.
    pub fn single(type_name: &'static str, block: Block) -> Self {
        NestedBlock {
            type_name,
            block,
            nesting: Nesting::Single,
            min_items: 0,
            max_items: 0,
        }
    }
}

/// A block: attributes plus nested blocks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    /// Attributes in the order they are documented.
    pub attributes: Vec<Attribute>,
    /// Nested block types.
    pub blocks: Vec<NestedBlock>,
    /// Markdown documentation of the block.
    pub description: String,
}

impl Block {
    /// A block with the given description and attributes.
    pub fn new(description: impl Into<String>, attributes: Vec<Attribute>) -> Self {
        Block {
            attributes,
            blocks: Vec::new(),
            description: description.into(),
        }
    }

    /// Adds a nested block type.
    pub fn with_block(mut self, block: NestedBlock) -> Self {
        self.blocks.push(block);
        self
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The nested block type called `name`.
    pub fn nested(&self, name: &str) -> Option<&NestedBlock> {
        self.blocks.iter().find(|b| b.type_name == name)
    }
}

/// A versioned top-level schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schema {
    /// Schema version (0 until a state upgrade is needed; ephemeral values have no state).
    pub version: i64,
    /// The top-level block.
    pub block: Block,
}

impl Schema {
    /// A version-0 schema around `block`.
    pub fn new(block: Block) -> Self {
        Schema { version: 0, block }
    }

    /// Applies the rules Terraform's own schema validation enforces, plus ours (every attribute
    /// documented). Returns every problem found, each naming the attribute.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        check_block(&self.block, "", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_block(block: &Block, prefix: &str, problems: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    for attr in &block.attributes {
        let at = format!("{prefix}{}", attr.name);
        if !seen.insert(attr.name) {
            problems.push(format!("{at}: defined twice"));
        }
        if !valid_name(attr.name) {
            problems.push(format!(
                "{at}: name must use lowercase letters, digits or _"
            ));
        }
        if !(attr.required || attr.optional || attr.computed) {
            problems.push(format!(
                "{at}: must be one of required, optional or computed"
            ));
        }
        if attr.required && (attr.optional || attr.computed) {
            problems.push(format!("{at}: required excludes optional and computed"));
        }
        if attr.description.trim().is_empty() {
            problems.push(format!("{at}: has no description"));
        }
    }
    for nested in &block.blocks {
        let at = format!("{prefix}{}", nested.type_name);
        if !seen.insert(nested.type_name) {
            problems.push(format!("{at}: name used by an attribute and a block"));
        }
        if !valid_name(nested.type_name) {
            problems.push(format!(
                "{at}: name must use lowercase letters, digits or _"
            ));
        }
        if nested.nesting == Nesting::Single
            && (nested.min_items > 1
                || nested.max_items > 1
                || nested.min_items != nested.max_items)
        {
            problems.push(format!(
                "{at}: a single block's min_items and max_items must be equal and 0 or 1"
            ));
        }
        if nested.block.description.trim().is_empty() {
            problems.push(format!("{at}: block has no description"));
        }
        check_block(&nested.block, &format!("{at}."), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_render_as_cty_json() {
        let cases = [
            (Type::String, r#""string""#),
            (Type::Number, r#""number""#),
            (Type::Bool, r#""bool""#),
            (Type::map_of_strings(), r#"["map","string"]"#),
            (Type::List(Box::new(Type::Number)), r#"["list","number"]"#),
            (Type::Set(Box::new(Type::String)), r#"["set","string"]"#),
            (
                Type::Object([("a".to_string(), Type::Bool)].into()),
                r#"["object",{"a":"bool"}]"#,
            ),
        ];
        for (ty, want) in cases {
            assert_eq!(ty.to_json().to_string(), want, "{ty:?}");
        }
    }

    #[test]
    fn check_catches_what_terraform_rejects() {
        let bad = Schema::new(
            Block::new(
                "d",
                vec![
                    Attribute::required("Bad-Name", Type::String, "d"),
                    Attribute {
                        optional: true,
                        ..Attribute::required("both", Type::String, "d")
                    },
                    Attribute {
                        required: false,
                        ..Attribute::required("neither", Type::String, "d")
                    },
                    Attribute::computed("undocumented", Type::String, " "),
                    Attribute::computed("dup", Type::String, "d"),
                    Attribute::computed("dup", Type::String, "d"),
                ],
            )
            .with_block(NestedBlock {
                max_items: 2,
                ..NestedBlock::single("blk", Block::new("d", vec![]))
            }),
        );
        let problems = bad.check().unwrap_err();
        let joined = problems.join("\n");
        for want in [
            "Bad-Name: name must use",
            "both: required excludes",
            "neither: must be one of",
            "undocumented: has no description",
            "dup: defined twice",
            "blk: a single block's",
        ] {
            assert!(joined.contains(want), "missing {want:?} in:\n{joined}");
        }
    }

    #[test]
    fn check_accepts_a_good_schema() {
        let good = Schema::new(
            Block::new("d", vec![Attribute::optional("a", Type::String, "d")])
                .with_block(NestedBlock::single("b", Block::new("d", vec![]))),
        );
        assert_eq!(good.check(), Ok(()));
    }
}

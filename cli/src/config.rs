//! The configuration file: HCL with the same words as the Terraform provider (the core's
//! vocabulary). Its top level holds the provider's settings and store blocks; its labelled
//! blocks are the ephemeral resource types without the `ccsecrets_` prefix, plus `env`.
//! Every value is a literal; every problem is pinned to a file, line and attribute.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use ccsecrets_core::vocabulary::{self, Kind, Role, Words};
use ccsecrets_core::{Field, Problem, Settings};
use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{BlockLabel, Body, Structure};
use serde_json::{Map, Value};

/// The file read when neither `--config` nor `CCSECRETS_CONFIG` names one.
pub(crate) const DEFAULT_FILE: &str = "ccsecrets.hcl";
/// The environment variable naming the configuration file.
pub(crate) const CONFIG_ENV: &str = "CCSECRETS_CONFIG";

/// A block type of the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BlockKind {
    /// `genesys_token` (Terraform: `ccsecrets_genesys_token`).
    Genesys,
    /// `cxone_token`.
    Cxone,
    /// `vault_secret`.
    VaultSecret,
}

impl BlockKind {
    pub(crate) const ALL: [BlockKind; 3] =
        [BlockKind::Genesys, BlockKind::Cxone, BlockKind::VaultSecret];

    /// The block type's name in the file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BlockKind::Genesys => "genesys_token",
            BlockKind::Cxone => "cxone_token",
            BlockKind::VaultSecret => "vault_secret",
        }
    }

    /// Its words.
    pub(crate) fn words(self) -> Words {
        match self {
            BlockKind::Genesys => vocabulary::genesys_token(),
            BlockKind::Cxone => vocabulary::cxone_token(),
            BlockKind::VaultSecret => vocabulary::vault_secret(),
        }
    }

    /// The variables a block sets when it has no `env` attribute: the names the consuming tools
    /// read (the genesyscloud provider and the `gc` CLI; CXone scripts).
    pub(crate) fn default_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            BlockKind::Genesys => &[
                ("GENESYSCLOUD_ACCESS_TOKEN", "access_token"),
                ("GENESYSCLOUD_REGION", "region"),
            ],
            BlockKind::Cxone => &[
                ("CXONE_ACCESS_TOKEN", "access_token"),
                ("CXONE_API_ENDPOINT", "api_endpoint"),
            ],
            BlockKind::VaultSecret => &[],
        }
    }

    fn of(name: &str) -> Option<BlockKind> {
        BlockKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Where something is in the configuration: a file (or a flag) and a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The file as given, or the flag a block came from.
    pub(crate) file: String,
    /// 1-based line; 0 for a flag.
    pub(crate) line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{} line {}", self.file, self.line)
        }
    }
}

/// A problem with where it is: the core's text, the configuration's place.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) problem: Problem,
    pub(crate) place: Option<Place>,
    /// The block (`genesys_token "deploy"`), when the problem is inside one.
    pub(crate) block: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.problem.is_error() {
            "Error"
        } else {
            "Warning"
        };
        writeln!(f, "{severity}: {}", self.problem.summary)?;
        if let Some(place) = &self.place {
            write!(f, "  on {place}")?;
            if let Some(block) = &self.block {
                write!(f, ", in {block}")?;
            }
            if let Some(field) = &self.problem.field {
                let steps = field.steps();
                let block = steps.len() == 1 && vocabulary::settings().block(&steps[0]).is_some();
                write!(
                    f,
                    ", {} `{field}`",
                    if block { "block" } else { "attribute" }
                )?;
            }
            writeln!(f, ":")?;
        } else if let Some(field) = &self.problem.field {
            writeln!(f, "  (attribute `{field}`)")?;
        }
        write!(f, "  {}", self.problem.detail)
    }
}

/// One variable a block sets for the command: `NAME` = the value of `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvVar {
    pub(crate) name: String,
    /// A result word (`access_token`), or `data.KEY` for a secret's value.
    pub(crate) field: String,
}

/// A labelled block: a token or secret to open.
#[derive(Debug, Clone)]
pub(crate) struct TokenBlock {
    pub(crate) kind: BlockKind,
    pub(crate) name: String,
    /// Its attributes as JSON (literals only), decoded by the core's typed settings.
    pub(crate) attrs: Map<String, Value>,
    pub(crate) env: Vec<EnvVar>,
    /// Its `sink` blocks (used by the agent), with their lines.
    pub(crate) sinks: Vec<(Map<String, Value>, usize)>,
    place: Place,
    lines: HashMap<String, usize>,
    /// Where the top-level settings are, for problems of the store rather than the block.
    settings_lines: HashMap<Vec<String>, usize>,
}

impl TokenBlock {
    /// `genesys_token "deploy"`.
    pub(crate) fn title(&self) -> String {
        format!("{} {:?}", self.kind.name(), self.name)
    }

    /// A core problem about this block, placed at the attribute at fault. A problem of the
    /// store (its field starts with a top-level block such as `aws_secretsmanager`) is placed
    /// at that block instead.
    pub(crate) fn locate(&self, problem: Problem) -> Located {
        let steps: Vec<String> = problem
            .field
            .as_ref()
            .map(|f| f.steps().to_vec())
            .unwrap_or_default();
        if steps
            .first()
            .is_some_and(|root| vocabulary::settings().block(root).is_some())
        {
            let line = (1..=steps.len())
                .rev()
                .find_map(|n| self.settings_lines.get(&steps[..n]).copied())
                .unwrap_or(0);
            return Located {
                problem,
                place: Some(Place {
                    file: self.place.file.clone(),
                    line,
                })
                .filter(|p| !p.file.starts_with("--")),
                block: None,
            };
        }
        let line = problem
            .field
            .as_ref()
            .and_then(|f| f.steps().first())
            .and_then(|name| self.lines.get(name))
            .copied()
            .unwrap_or(self.place.line);
        Located {
            problem,
            place: Some(Place {
                file: self.place.file.clone(),
                line,
            }),
            block: Some(self.title()),
        }
    }

    /// A string attribute.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).and_then(Value::as_str)
    }

    /// A whole-number attribute.
    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.attrs.get(name).and_then(Value::as_i64)
    }

    /// A boolean attribute.
    pub(crate) fn flag(&self, name: &str) -> Option<bool> {
        self.attrs.get(name).and_then(Value::as_bool)
    }

    /// The attributes decoded into a typed settings struct (types were checked on reading).
    pub(crate) fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T, Located> {
        serde_json::from_value(Value::Object(self.attrs.clone()))
            .map_err(|e| self.locate(Problem::error("Invalid configuration", format!("{e}."))))
    }
}

/// A whole configuration: the shared settings and the blocks, in file order.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) settings: Settings,
    pub(crate) blocks: Vec<TokenBlock>,
    /// The `agent` block's attributes.
    pub(crate) agent: Option<Map<String, Value>>,
    file: String,
    lines: HashMap<Vec<String>, usize>,
}

impl Config {
    /// An empty configuration (settings from the environment only), for `--genesys`/`--cxone`
    /// without a file.
    pub(crate) fn empty() -> Self {
        Config {
            settings: Settings::default(),
            blocks: Vec::new(),
            agent: None,
            file: String::new(),
            lines: HashMap::new(),
        }
    }

    /// A core problem about the shared settings, placed at the attribute or block at fault.
    pub(crate) fn locate(&self, problem: Problem) -> Located {
        let mut steps: Vec<String> = problem
            .field
            .as_ref()
            .map(|f| f.steps().to_vec())
            .unwrap_or_default();
        let line = loop {
            if let Some(l) = self.lines.get(&steps) {
                break Some(*l);
            }
            if steps.pop().is_none() {
                break None;
            }
        };
        Located {
            place: match (line, self.file.is_empty()) {
                (_, true) => None,
                (Some(line), false) => Some(Place {
                    file: self.file.clone(),
                    line,
                }),
                (None, false) => Some(Place {
                    file: self.file.clone(),
                    line: 0,
                }),
            },
            block: None,
            problem,
        }
    }

    /// Adds a block from a shorthand flag (`--genesys PATH`).
    pub(crate) fn add_shorthand(&mut self, kind: BlockKind, flag: &str, path: &str) {
        let name = format!("{flag}-{}", self.blocks.len());
        let mut attrs = Map::new();
        attrs.insert("path".into(), Value::String(path.to_owned()));
        self.blocks.push(TokenBlock {
            kind,
            env: default_env(kind),
            sinks: Vec::new(),
            name,
            attrs,
            place: Place {
                file: format!("{flag} {path}"),
                line: 0,
            },
            lines: HashMap::new(),
            settings_lines: HashMap::new(),
        });
    }
}

fn default_env(kind: BlockKind) -> Vec<EnvVar> {
    kind.default_env()
        .iter()
        .map(|(name, field)| EnvVar {
            name: (*name).to_owned(),
            field: (*field).to_owned(),
        })
        .collect()
}

/// Which file to read: the flag, else `CCSECRETS_CONFIG`, else `ccsecrets.hcl` when present.
/// `None` when none was asked for and the default file does not exist.
pub(crate) fn which_file(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(f) = flag {
        return Some(f.to_owned());
    }
    if let Some(f) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(f));
    }
    let default = PathBuf::from(DEFAULT_FILE);
    default.exists().then_some(default)
}

/// Reads and checks a configuration file.
pub(crate) fn load(path: &Path) -> Result<Config, Vec<Located>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Located {
            problem: Problem::error(
                "Cannot read the configuration file",
                format!("{shown}: {e}."),
            ),
            place: None,
            block: None,
        }]
    })?;
    parse(&shown, &text)
}

/// Parses configuration text; `file` names it in messages.
pub(crate) fn parse(file: &str, text: &str) -> Result<Config, Vec<Located>> {
    let at = |line: usize| {
        Some(Place {
            file: file.to_owned(),
            line,
        })
    };
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        vec![Located {
            problem: Problem::error(
                "Invalid HCL",
                format!(
                    "{} (column {}).",
                    e.message().trim_end_matches('.'),
                    e.location().column()
                ),
            ),
            place: at(e.location().line()),
            block: None,
        }]
    })?;
    let lines = LineIndex::new(text);
    let mut reader = Reader {
        file,
        lines: &lines,
        problems: Vec::new(),
        places: HashMap::new(),
    };
    let settings_words = vocabulary::settings();
    let mut settings_json = Map::new();
    let mut blocks = Vec::new();
    let mut agent = None;
    let mut names: HashMap<(BlockKind, String), usize> = HashMap::new();
    for structure in body.iter() {
        match structure {
            Structure::Block(b) if BlockKind::of(b.ident.as_str()).is_some() => {
                let kind = BlockKind::of(b.ident.as_str()).unwrap_or(BlockKind::Genesys);
                let line = lines.line_of(b.span());
                let name = match b.labels.as_slice() {
                    [label] => label_text(label).to_owned(),
                    _ => {
                        reader.problems.push(Located {
                            problem: Problem::error(
                                "Block needs one name",
                                format!(
                                    "Give a `{}` block exactly one name, e.g. `{} \"deploy\" {{ ... }}`.",
                                    kind.name(),
                                    kind.name()
                                ),
                            ),
                            place: at(line),
                            block: None,
                        });
                        continue;
                    }
                };
                if let Some(first) = names.insert((kind, name.clone()), line) {
                    reader.problems.push(Located {
                        problem: Problem::error(
                            "Duplicate block",
                            format!(
                                "A `{} {name:?}` block was already defined on line {first}; names must be unique.",
                                kind.name()
                            ),
                        ),
                        place: at(line),
                        block: None,
                    });
                    continue;
                }
                if let Some(block) = reader.token_block(kind, name, &b.body, line) {
                    blocks.push(block);
                }
            }
            Structure::Block(b) if b.ident.as_str() == "agent" && b.labels.is_empty() => {
                let line = lines.line_of(b.span());
                if agent.is_some() {
                    reader.problems.push(reader.unplaced_at(
                        line,
                        Problem::error("Duplicate block", "Only one `agent` block is allowed."),
                    ));
                    continue;
                }
                let value =
                    reader.words_body(&["agent"], &crate::agent::settings::words(), &b.body, line);
                agent = Some(value);
            }
            Structure::Block(b) => {
                let line = lines.line_of(b.span());
                let ident = b.ident.as_str();
                match settings_words.block(ident) {
                    Some(words) if b.labels.is_empty() => {
                        if settings_json.contains_key(ident) {
                            reader.problems.push(reader.unplaced_at(
                                line,
                                Problem::error(
                                    "Duplicate block",
                                    format!("Only one `{ident}` block is allowed."),
                                ),
                            ));
                            continue;
                        }
                        let value = reader.words_body(&[ident], words, &b.body, line);
                        settings_json.insert(ident.to_owned(), Value::Object(value));
                    }
                    _ => reader.problems.push(reader.unplaced_at(
                        line,
                        Problem::error(
                            "Unsupported block type",
                            format!(
                                "Blocks of type `{ident}` are not expected here. The top level takes {}, `agent {{ ... }}`, and the blocks {}.",
                                settings_words.blocks.iter().map(|(n, _)| format!("`{n} {{ ... }}`")).collect::<Vec<_>>().join(", "),
                                BlockKind::ALL.iter().map(|k| format!("`{} \"NAME\" {{ ... }}`", k.name())).collect::<Vec<_>>().join(", ")
                            ),
                        ),
                    )),
                }
            }
            Structure::Attribute(a) => {
                let line = lines.line_of(a.span());
                let key = a.key.as_str();
                match settings_words.term(key) {
                    Some(term) if term.settable() => {
                        reader.places.insert(vec![key.to_owned()], line);
                        if let Some(v) = reader.literal(&a.value, term.kind, line, None, key) {
                            settings_json.insert(key.to_owned(), v);
                        }
                    }
                    _ => reader.problems.push(
                        reader.unplaced_at(line, unsupported_argument(key, &settings_words, &[])),
                    ),
                }
            }
        }
    }
    let settings: Option<Settings> = serde_json::from_value(Value::Object(settings_json))
        .map_err(|_| {
            // serde's message may quote the value (a token): never show it.
            reader.problems.push(Located {
                problem: Problem::error(
                    "Invalid configuration",
                    "The top-level settings do not have the expected types.",
                ),
                place: at(0),
                block: None,
            });
        })
        .ok();
    if !reader.problems.is_empty() {
        return Err(reader.problems);
    }
    for block in &mut blocks {
        block.settings_lines.clone_from(&reader.places);
    }
    Ok(Config {
        settings: settings.unwrap_or_default(),
        blocks,
        agent,
        file: file.to_owned(),
        lines: reader.places,
    })
}

fn label_text(label: &BlockLabel) -> &str {
    match label {
        BlockLabel::Ident(i) => i.as_str(),
        BlockLabel::String(s) => s.as_str(),
    }
}

fn unsupported_argument(key: &str, words: &Words, extra: &[&str]) -> Problem {
    let mut known: Vec<&str> = words
        .terms
        .iter()
        .filter(|t| t.settable())
        .map(|t| t.name)
        .collect();
    known.extend_from_slice(extra);
    let detail = if words.term(key).is_some() {
        format!("`{key}` is a result, set by ccsecrets; it cannot be configured.")
    } else {
        format!(
            "An argument named `{key}` is not expected here. Expected: {}.",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Problem::error("Unsupported argument", detail)
}

/// Byte offsets to 1-based line numbers.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> usize {
        let offset = span.map_or(0, |s| s.start);
        match self.0.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    lines: &'a LineIndex,
    problems: Vec<Located>,
    /// Setting path → line, for the shared settings.
    places: HashMap<Vec<String>, usize>,
}

impl Reader<'_> {
    fn unplaced_at(&self, line: usize, problem: Problem) -> Located {
        Located {
            problem,
            place: Some(Place {
                file: self.file.to_owned(),
                line,
            }),
            block: None,
        }
    }

    fn push(&mut self, line: usize, block: Option<&str>, problem: Problem) {
        self.problems.push(Located {
            problem,
            place: Some(Place {
                file: self.file.to_owned(),
                line,
            }),
            block: block.map(str::to_owned),
        });
    }

    /// A block of the shared settings (`vault`, `vault.auth_jwt`), recursively.
    fn words_body(
        &mut self,
        path: &[&str],
        words: &Words,
        body: &Body,
        line: usize,
    ) -> Map<String, Value> {
        let key_path = |name: &str| {
            let mut p: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
            p.push(name.to_owned());
            p
        };
        self.places
            .insert(path.iter().map(|s| (*s).to_owned()).collect(), line);
        let mut out = Map::new();
        for structure in body.iter() {
            match structure {
                Structure::Attribute(a) => {
                    let l = self.lines.line_of(a.span());
                    let key = a.key.as_str();
                    let field = key_path(key);
                    match words.term(key) {
                        Some(term) if term.settable() => {
                            self.places.insert(field.clone(), l);
                            if let Some(v) =
                                self.literal(&a.value, term.kind, l, None, &field.join("."))
                            {
                                out.insert(key.to_owned(), v);
                            }
                        }
                        _ => {
                            let p = unsupported_argument(key, words, &[])
                                .at(Field::root(path[0]).attr(key));
                            self.push(l, None, p);
                        }
                    }
                }
                Structure::Block(b) => {
                    let l = self.lines.line_of(b.span());
                    let ident = b.ident.as_str();
                    match words.block(ident) {
                        Some(nested) if b.labels.is_empty() && !out.contains_key(ident) => {
                            let mut p = path.to_vec();
                            p.push(ident);
                            let v = self.words_body(&p, nested, &b.body, l);
                            out.insert(ident.to_owned(), Value::Object(v));
                        }
                        _ => self.push(
                            l,
                            None,
                            Problem::error(
                                "Unsupported block type",
                                format!(
                                    "A `{ident}` block is not expected in `{}` (or it appears twice).",
                                    path.join(".")
                                ),
                            ),
                        ),
                    }
                }
            }
        }
        out
    }

    /// A labelled block: its attributes by the block type's words, plus `env`.
    fn token_block(
        &mut self,
        kind: BlockKind,
        name: String,
        body: &Body,
        line: usize,
    ) -> Option<TokenBlock> {
        let words = kind.words();
        let title = format!("{} {name:?}", kind.name());
        let before = self.problems.len();
        let mut attrs = Map::new();
        let mut lines = HashMap::new();
        let mut env = None;
        let mut sinks = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Block(b) if b.ident.as_str() == "sink" && b.labels.is_empty() => {
                    let l = self.lines.line_of(b.span());
                    let words = crate::agent::settings::sink_words();
                    let before_sink = self.problems.len();
                    let v = self.words_body(&["sink"], &words, &b.body, l);
                    if self.problems.len() == before_sink && !v.contains_key("file") {
                        self.push(
                            l,
                            Some(&title),
                            Problem::error(
                                "Missing required argument",
                                "A `sink` block needs `file`.",
                            )
                            .at(Field::root("sink").attr("file")),
                        );
                    }
                    sinks.push((v, l));
                }
                Structure::Block(b) => {
                    let l = self.lines.line_of(b.span());
                    self.push(
                        l,
                        Some(&title),
                        Problem::error(
                            "Unsupported block type",
                            format!(
                                "A `{}` block is not expected in a `{}` block.",
                                b.ident.as_str(),
                                kind.name()
                            ),
                        ),
                    );
                }
                Structure::Attribute(a) => {
                    let l = self.lines.line_of(a.span());
                    let key = a.key.as_str();
                    lines.insert(key.to_owned(), l);
                    if key == "env" {
                        env = self.env_map(&a.value, &words, kind, l, &title);
                        continue;
                    }
                    match words.term(key) {
                        Some(term) if term.settable() => {
                            if let Some(v) = self.literal(&a.value, term.kind, l, Some(&title), key)
                            {
                                attrs.insert(key.to_owned(), v);
                            }
                        }
                        _ => self.push(
                            l,
                            Some(&title),
                            unsupported_argument(key, &words, &["env"]).at_attr(key),
                        ),
                    }
                }
            }
        }
        for term in words.terms.iter().filter(|t| t.role == Role::Required) {
            if !attrs.contains_key(term.name) {
                self.push(
                    line,
                    Some(&title),
                    Problem::error(
                        "Missing required argument",
                        format!("The argument `{}` is required. {}", term.name, term.doc),
                    )
                    .at_attr(term.name),
                );
            }
        }
        let env = match env {
            Some(e) => e,
            None if kind == BlockKind::VaultSecret => {
                self.push(
                    line,
                    Some(&title),
                    Problem::error(
                        "Missing required argument",
                        "A `vault_secret` block must say which values to hand on: `env = { NAME = \"data.KEY\" }`.",
                    )
                    .at_attr("env"),
                );
                Vec::new()
            }
            None => default_env(kind),
        };
        (self.problems.len() == before).then(|| TokenBlock {
            kind,
            name,
            attrs,
            env,
            sinks,
            place: Place {
                file: self.file.to_owned(),
                line,
            },
            lines,
            settings_lines: HashMap::new(),
        })
    }

    /// `env = { NAME = "field" }`: names are environment variable names; fields are words of
    /// the block (`data.KEY` for a secret's value).
    fn env_map(
        &mut self,
        value: &Expression,
        words: &Words,
        kind: BlockKind,
        line: usize,
        title: &str,
    ) -> Option<Vec<EnvVar>> {
        let Expression::Object(obj) = value else {
            self.push(
                line,
                Some(title),
                Problem::error(
                    "Invalid env",
                    "`env` must be an object of variable names to fields, e.g. `env = { GENESYSCLOUD_ACCESS_TOKEN = \"access_token\" }`.",
                )
                .at_attr("env"),
            );
            return None;
        };
        let mut out = Vec::new();
        for (key, val) in obj.iter() {
            let name = match key {
                ObjectKey::Ident(i) => i.as_str().to_owned(),
                ObjectKey::Expression(Expression::String(s)) => s.as_str().to_owned(),
                ObjectKey::Expression(_) => String::new(),
            };
            let field = match val.expr() {
                Expression::String(s) => Some(s.as_str().to_owned()),
                _ => None,
            };
            let valid_name = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let Some(field) = field.filter(|_| valid_name) else {
                self.invalid_env(line, title, format!(
                    "Each `env` entry maps a variable name (letters, digits, `_`) to a field name in quotes; {name:?} does not."
                ));
                continue;
            };
            let known = match field.strip_prefix("data.") {
                Some(k) => kind == BlockKind::VaultSecret && !k.is_empty(),
                None => words
                    .term(&field)
                    .is_some_and(|t| t.kind != Kind::StringMap),
            };
            if !known {
                let mut fields: Vec<&str> = words
                    .terms
                    .iter()
                    .filter(|t| t.kind != Kind::StringMap)
                    .map(|t| t.name)
                    .collect();
                if kind == BlockKind::VaultSecret {
                    fields.push("data.KEY");
                }
                self.invalid_env(line, title, format!(
                    "`{name}` names the field {field:?}, which a `{}` block does not have. Fields: {}.",
                    kind.name(),
                    fields.join(", ")
                ));
                continue;
            }
            out.push(EnvVar { name, field });
        }
        Some(out)
    }

    fn invalid_env(&mut self, line: usize, title: &str, detail: String) {
        self.push(
            line,
            Some(title),
            Problem::error("Invalid env", detail).at_attr("env"),
        );
    }

    /// A literal value of the expected kind, or a problem on `name`.
    fn literal(
        &mut self,
        expr: &Expression,
        kind: Kind,
        line: usize,
        block: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let got = match (kind, expr) {
            (Kind::String, Expression::String(s)) => Some(Value::String(s.as_str().to_owned())),
            (Kind::Bool, Expression::Bool(b)) => Some(Value::Bool(*b.value())),
            (Kind::Number, Expression::Number(n)) => {
                n.value().as_i64().map(Value::from).or_else(|| {
                    n.value()
                        .as_f64()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                })
            }
            (Kind::StringMap, Expression::Object(o)) => {
                let mut m = BTreeMap::new();
                for (k, v) in o.iter() {
                    match (k, v.expr()) {
                        (ObjectKey::Ident(k), Expression::String(s)) => {
                            m.insert(k.as_str().to_owned(), Value::String(s.as_str().to_owned()));
                        }
                        _ => return self.wrong(line, block, name, kind),
                    }
                }
                Some(Value::Object(m.into_iter().collect()))
            }
            (_, Expression::Null(_)) => Some(Value::Null),
            _ => None,
        };
        match got {
            Some(v) => Some(v),
            None => self.wrong(line, block, name, kind),
        }
    }

    fn wrong(&mut self, line: usize, block: Option<&str>, name: &str, kind: Kind) -> Option<Value> {
        let want = match kind {
            Kind::String => "a string in quotes",
            Kind::Number => "a number",
            Kind::Bool => "true or false",
            Kind::StringMap => "an object of strings",
        };
        let mut steps = name.split('.');
        let field = steps
            .next()
            .map(|first| steps.fold(Field::root(first), Field::attr));
        let mut p = Problem::error(
            "Incorrect attribute value type",
            format!(
                "`{name}` must be {want}. Only literal values are allowed in this file (no variables, functions or `${{...}}` templates); take values from the environment with the variables ccsecrets reads."
            ),
        );
        p.field = field;
        self.push(line, block, p);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse("c.hcl", text)
            .unwrap_err()
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    #[test]
    fn a_full_file_reads_into_the_cores_settings_and_blocks() {
        let c = parse(
            "c.hcl",
            r#"
environment = "prod"
timeout_seconds = 10
vault {
  address = "https://vault.example.com:8200"
  auth_jwt {
    role    = "cc-deploy-prod"
    jwt_env = "VAULT_ID_TOKEN"
  }
}
genesys_token "deploy" {
  path   = "genesys/{environment}/pipeline"
  region = "eu-west-1"
}
cxone_token "deploy" {
  path = "cxone/{environment}/pipeline"
  env  = { CX_TOKEN = "access_token" }
}
vault_secret "webhook" {
  path = "contact-center/{environment}/webhook"
  env  = { WEBHOOK_SIGNING_KEY = "data.signing_key" }
}
"#,
        )
        .unwrap();
        assert_eq!(c.settings.environment.as_deref(), Some("prod"));
        assert_eq!(c.settings.timeout_seconds, Some(10.0));
        let jwt = c
            .settings
            .vault
            .as_ref()
            .unwrap()
            .auth_jwt
            .as_ref()
            .unwrap();
        assert_eq!(jwt.role.as_deref(), Some("cc-deploy-prod"));
        assert_eq!(c.blocks.len(), 3);
        assert_eq!(c.blocks[0].env, default_env(BlockKind::Genesys));
        assert_eq!(c.blocks[0].text("region"), Some("eu-west-1"));
        assert_eq!(
            c.blocks[1].env,
            vec![EnvVar {
                name: "CX_TOKEN".into(),
                field: "access_token".into()
            }]
        );
        assert_eq!(c.blocks[2].env[0].field, "data.signing_key");
        // A core problem lands on the attribute's line.
        let l = c.blocks[0].locate(Problem::error("x", "y").at_attr("region"));
        assert_eq!(l.place.unwrap().line, 13);
        let l = c.locate(
            Problem::error("x", "y").at(Field::root("vault").attr("auth_jwt").attr("role")),
        );
        assert_eq!(l.place.unwrap().line, 7);
    }

    #[test]
    fn mistakes_are_pinned_to_file_line_and_attribute() {
        let e = errors("genesys_token \"a\" {\n  path = \"p\"\n  regoin = \"x\"\n}\n");
        assert!(
            e[0].contains("on c.hcl line 3, in genesys_token \"a\", attribute `regoin`"),
            "{e:?}"
        );
        assert!(e[0].contains("Expected: `mount`, `path`"), "{e:?}");
        let e = errors("genesys_token \"a\" {\n  path = var.p\n}\n");
        assert!(
            e[0].starts_with("Error: Incorrect attribute value type"),
            "{e:?}"
        );
        assert!(e[0].contains("line 2"), "{e:?}");
        let e = errors("genesys_token \"a\" {\n  region = \"us-east-1\"\n}\n");
        assert!(e[0].contains("Missing required argument"), "{e:?}");
        let e = errors("genesys_token \"a\" {\n  path = \"p\"\n  access_token = \"x\"\n}\n");
        assert!(e[0].contains("is a result, set by ccsecrets"), "{e:?}");
        let e = errors("vault {\n  adress = \"x\"\n}\n");
        assert!(
            e[0].contains("line 2") && e[0].contains("`vault.adress`"),
            "{e:?}"
        );
        let e = errors("vault_secret \"w\" {\n  path = \"p\"\n}\n");
        assert!(e[0].contains("must say which values to hand on"), "{e:?}");
        let e = errors("genesys_token \"a\" {\n  path = \"p\"\n  env = { X = \"nope\" }\n}\n");
        assert!(e[0].contains("does not have. Fields: mount, path"), "{e:?}");
        let e = errors(
            "genesys_token \"a\" {\n  path = \"p\"\n}\ngenesys_token \"a\" {\n  path = \"q\"\n}\n",
        );
        assert!(e[0].contains("already defined on line 1"), "{e:?}");
        let e = errors("genesys_token \"a\" {\n  path = \"p\"\n");
        assert!(e[0].starts_with("Error: Invalid HCL"), "{e:?}");
        let e = errors("provider \"ccsecrets\" {}\n");
        assert!(e[0].contains("Unsupported block type"), "{e:?}");
    }
}

//! `cargo xtask docs`: writes the Terraform registry docs under `docs/` from the live provider
//! schemas, the example files under `examples/` and the hand-written fragments under
//! `templates/`. `--check` renders in memory and fails when the committed docs differ.
//!
//! Each page is a generated header (front matter, title, the schema's description) followed by
//! its template, `templates/index.md`, `templates/ephemeral-resources/<name>.md` or
//! `templates/data-sources/<name>.md` (`<name>` without the provider prefix). A template is
//! Markdown with these directives:
//!
//! - `{{ example }}`: the page's example file in a `terraform` fence (exactly once);
//! - `{{ schema }}`: `## Schema` with Required / Optional / Read-Only lists and nested
//!   schemas, as terraform-plugin-docs lays them out (exactly once);
//! - `{{ partial "name" }}`: `templates/partials/name.md`, verbatim;
//! - `{{ resources }}`: a table of the ephemeral resources and data sources.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ccsecrets::framework::{Attribute, Block, NestedBlock, Nesting, Provider, Schema, Type};

const DOCS: &str = "docs";
const TEMPLATES: &str = "templates";
const EXAMPLES: &str = "examples";
const USAGE: &str = "usage: cargo xtask docs [--check]";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => return Err(USAGE.into()),
    };
    let root = workspace_root();
    let rendered = render_all(&root)?;
    if check {
        let problems = compare(&root, &rendered)?;
        if problems.is_empty() {
            println!("{DOCS}/ is up to date ({} pages)", rendered.len());
            Ok(())
        } else {
            Err(format!(
                "{DOCS}/ differs from what the generator produces; run `cargo xtask docs` and commit the result.\n\n{}",
                problems.join("\n")
            ))
        }
    } else {
        write_all(&root, &rendered)
    }
}

fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_owned()
}

/// What a page documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Provider,
    EphemeralResource,
    DataSource,
}

impl Kind {
    /// The registry's name for the kind, as used in titles.
    fn label(self) -> &'static str {
        match self {
            Kind::Provider => "Provider",
            Kind::EphemeralResource => "Ephemeral Resource",
            Kind::DataSource => "Data Source",
        }
    }

    /// The folder under `docs/`, `templates/` and `examples/` (the provider has none).
    fn dir(self) -> &'static str {
        match self {
            Kind::Provider => "",
            Kind::EphemeralResource => "ephemeral-resources",
            Kind::DataSource => "data-sources",
        }
    }
}

/// One page to render: the provider, an ephemeral resource or a data source.
#[derive(Debug)]
struct Page {
    kind: Kind,
    /// The full type name (`ccsecrets_genesys_token`), or the provider's name.
    name: String,
    /// The name without the provider prefix (the registry file name).
    short: String,
    schema: Schema,
}

impl Page {
    fn doc_path(&self) -> String {
        match self.kind {
            Kind::Provider => format!("{DOCS}/index.md"),
            k => format!("{DOCS}/{}/{}.md", k.dir(), self.short),
        }
    }

    fn template_path(&self) -> String {
        match self.kind {
            Kind::Provider => format!("{TEMPLATES}/index.md"),
            k => format!("{TEMPLATES}/{}/{}.md", k.dir(), self.short),
        }
    }

    fn example_path(&self) -> String {
        match self.kind {
            Kind::Provider => format!("{EXAMPLES}/provider/provider.tf"),
            Kind::EphemeralResource => format!(
                "{EXAMPLES}/ephemeral-resources/{}/ephemeral-resource.tf",
                self.name
            ),
            Kind::DataSource => format!("{EXAMPLES}/data-sources/{}/data-source.tf", self.name),
        }
    }

    fn heading(&self) -> String {
        match self.kind {
            Kind::Provider => format!("{} Provider", self.name),
            k => format!("{} ({})", self.name, k.label()),
        }
    }

    fn page_title(&self, provider: &str) -> String {
        match self.kind {
            Kind::Provider => format!("{} Provider", self.name),
            k => format!("{} {} - {provider}", self.name, k.label()),
        }
    }
}

/// The provider's pages, from its live schemas: the provider first, then ephemeral resources
/// and data sources, each sorted by name.
fn pages() -> (String, Vec<Page>) {
    let provider = ccsecrets::provider();
    let provider_name = provider.type_name().to_owned();
    let prefix = format!("{provider_name}_");
    let page = |kind, name: &str, schema| Page {
        kind,
        name: name.to_owned(),
        short: name.strip_prefix(&prefix).unwrap_or(name).to_owned(),
        schema,
    };
    let mut pages = vec![page(Kind::Provider, &provider_name, provider.schema())];
    for r in provider.ephemeral_resources() {
        pages.push(page(Kind::EphemeralResource, r.type_name(), r.schema()));
    }
    for d in provider.data_sources() {
        pages.push(page(Kind::DataSource, d.type_name(), d.schema()));
    }
    pages.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    (provider_name, pages)
}

/// Reads a repository file as text with LF line endings; errors name the file.
fn read_text(root: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(rel))
        .map(|t| t.replace("\r\n", "\n"))
        .map_err(|e| format!("cannot read {rel}: {e}"))
}

/// Every page, keyed by its path relative to the workspace root.
fn render_all(root: &Path) -> Result<BTreeMap<String, String>, String> {
    let (provider, pages) = pages();
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for page in &pages {
        let result = read_text(root, &page.template_path()).and_then(|template| {
            let example = read_text(root, &page.example_path())?;
            render_page(&provider, page, &pages, &template, &example, &|name| {
                read_text(root, &format!("{TEMPLATES}/partials/{name}.md"))
            })
        });
        match result {
            Ok(text) => {
                out.insert(page.doc_path(), text);
            }
            Err(e) => problems.push(e),
        }
    }
    problems.extend(orphan_templates(root, &pages)?);
    // Guides are hand-written pages, published as they are.
    for rel in markdown_files(root, &format!("{TEMPLATES}/guides"))? {
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
        match read_text(root, &rel) {
            Ok(text) if text.starts_with("---\npage_title:") => {
                out.insert(format!("{DOCS}/guides/{name}"), text);
            }
            Ok(_) => problems.push(format!(
                "{rel}: a guide must start with front matter (`---` then `page_title:`)"
            )),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("\n"))
    }
}

/// Templates of resources the provider no longer has (a rename leaves one behind).
fn orphan_templates(root: &Path, pages: &[Page]) -> Result<Vec<String>, String> {
    let wanted: BTreeSet<String> = pages.iter().map(Page::template_path).collect();
    let mut orphans = Vec::new();
    for kind in [Kind::EphemeralResource, Kind::DataSource] {
        let dir = format!("{TEMPLATES}/{}", kind.dir());
        for rel in markdown_files(root, &dir)? {
            if !wanted.contains(&rel) {
                orphans.push(format!(
                    "{rel}: no {} of that name; rename or delete the template",
                    kind.label().to_lowercase()
                ));
            }
        }
    }
    Ok(orphans)
}

/// `.md` files under `dir` (relative to `root`), recursively, as sorted relative paths with `/`.
fn markdown_files(root: &Path, dir: &str) -> Result<Vec<String>, String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
        };
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.extension().is_some_and(|x| x == "md") {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &root.join(dir), &mut out)?;
    out.sort();
    Ok(out)
}

/// One page: the generated header, then the template with its directives expanded.
fn render_page(
    provider: &str,
    page: &Page,
    all: &[Page],
    template: &str,
    example: &str,
    partial: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let description = page.schema.block.description.trim();
    let mut out = String::new();
    out.push_str("---\n");
    let _ = writeln!(out, "page_title: \"{}\"", page.page_title(provider));
    out.push_str("subcategory: \"\"\ndescription: |-\n");
    for line in plain_text(description).lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("---\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated by `cargo xtask docs` from the provider schema, {} and {}. Do not edit. -->\n",
        page.example_path(),
        page.template_path()
    );
    let _ = writeln!(out, "# {}\n", page.heading());
    let _ = writeln!(out, "{description}\n");
    out.push_str(&expand(page, all, template, example, partial)?);
    Ok(tidy(&out))
}

/// Expands the directives of `template`; `example` and `schema` must each appear once.
fn expand(
    page: &Page,
    all: &[Page],
    template: &str,
    example: &str,
    partial: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let at = page.template_path();
    let mut out = String::new();
    let mut rest = template;
    let mut seen = BTreeMap::<&str, usize>::new();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let line = template[..template.len() - rest.len() + start]
            .matches('\n')
            .count()
            + 1;
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("{at}:{line}: `{{{{` without a closing `}}}}`"))?;
        let directive = after[..end].trim();
        let (word, arg) = match directive.split_once(char::is_whitespace) {
            Some((w, a)) => (w, Some(a.trim())),
            None => (directive, None),
        };
        match (word, arg) {
            ("example", None) => {
                *seen.entry("example").or_default() += 1;
                let _ = write!(out, "```terraform\n{}\n```", example.trim_end());
            }
            ("schema", None) => {
                *seen.entry("schema").or_default() += 1;
                out.push_str(&schema_markdown(&page.schema.block));
            }
            ("resources", None) => out.push_str(&resource_table(all)),
            ("partial", Some(quoted)) => {
                let name = quoted
                    .strip_prefix('"')
                    .and_then(|q| q.strip_suffix('"'))
                    .filter(|n| {
                        !n.is_empty()
                            && n.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
                    .ok_or_else(|| {
                        format!("{at}:{line}: write a partial as {{{{ partial \"name\" }}}}")
                    })?;
                let text = partial(name)?;
                if text.contains("{{") {
                    return Err(format!(
                        "{TEMPLATES}/partials/{name}.md: partials cannot contain directives"
                    ));
                }
                out.push_str(text.trim_end());
            }
            _ => {
                return Err(format!(
                    "{at}:{line}: unknown directive `{{{{ {directive} }}}}` (known: example, schema, partial \"name\", resources)"
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    for needed in ["example", "schema"] {
        let n = seen.get(needed).copied().unwrap_or(0);
        if n != 1 {
            return Err(format!(
                "{at}: must contain {{{{ {needed} }}}} exactly once (found {n})"
            ));
        }
    }
    Ok(out)
}

/// The table of what the provider offers, linking each entry to its page.
fn resource_table(all: &[Page]) -> String {
    let mut out = String::from("| Name | Kind | Summary |\n|---|---|---|\n");
    for page in all.iter().filter(|p| p.kind != Kind::Provider) {
        let _ = writeln!(
            out,
            "| [`{}`]({}/{}/{}) | {} | {} |",
            page.name,
            registry_docs_url(),
            page.kind.dir(),
            page.short,
            page.kind.label(),
            first_sentence(&page.schema.block.description).replace('|', "\\|")
        );
    }
    out
}

/// The provider's docs on the registry, from the registry address
/// (`registry.terraform.io/ccsecrets/ccsecrets` gives
/// `https://registry.terraform.io/providers/ccsecrets/ccsecrets/latest/docs`). Page links are
/// absolute because the registry serves the index at `.../docs`, where relative links break.
fn registry_docs_url() -> String {
    let mut parts = ccsecrets::REGISTRY_ADDRESS.splitn(2, '/');
    let host = parts.next().unwrap_or_default();
    let source = parts.next().unwrap_or_default();
    format!("https://{host}/providers/{source}/latest/docs")
}

/// The first sentence of a description (a period followed by a space or the end, not `e.g.`).
fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    let mut from = 0;
    while let Some(i) = text[from..].find(". ").map(|i| i + from) {
        let before = &text[..i];
        if !(before.ends_with("e.g") || before.ends_with("i.e") || before.ends_with("etc")) {
            return &text[..=i];
        }
        from = i + 2;
    }
    text
}

/// Markdown as plain text for the front matter: no code spans, emphasis or link targets.
fn plain_text(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    // `[text](target)` becomes `text`.
    while let Some(open) = rest.find('[') {
        let tail = &rest[open + 1..];
        match tail.find("](").and_then(|close| {
            tail[close + 2..]
                .find(')')
                .map(|end| (close, close + 2 + end))
        }) {
            Some((close, end)) => {
                out.push_str(&rest[..open]);
                out.push_str(&tail[..close]);
                rest = &tail[end + 1..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "").replace("**", "")
}

/// The schema as terraform-plugin-docs lays it out: groups at the top level, then one
/// anchored "Nested Schema" section per nested block or object, depth first.
fn schema_markdown(block: &Block) -> String {
    let mut out = String::from("<!-- schema generated by cargo xtask docs -->\n## Schema\n\n");
    let nested = write_children(&mut out, &[], block, true);
    write_nested(&mut out, &nested);
    out
}

/// Something that gets its own "Nested Schema" section.
#[derive(Debug)]
enum Nested<'a> {
    Block(Vec<&'a str>, &'a Block),
    /// An object-typed attribute: its path, fields, and whether it is read-only.
    Object(Vec<&'a str>, &'a BTreeMap<String, Type>, bool),
}

impl Nested<'_> {
    fn anchor(&self) -> String {
        match self {
            Nested::Block(path, _) => format!("nestedblock--{}", path.join("--")),
            Nested::Object(path, ..) => format!("nestedobjatt--{}", path.join("--")),
        }
    }

    fn path(&self) -> String {
        match self {
            Nested::Block(path, _) | Nested::Object(path, ..) => path.join("."),
        }
    }
}

const GROUPS: [(&str, &str); 3] = [
    ("### Required", "Required:"),
    ("### Optional", "Optional:"),
    ("### Read-Only", "Read-Only:"),
];

fn attribute_group(a: &Attribute) -> usize {
    if a.required {
        0
    } else if a.optional {
        1
    } else {
        2
    }
}

fn block_read_only(b: &NestedBlock) -> bool {
    b.min_items == 0
        && b.max_items == 0
        && b.block.attributes.iter().all(|a| attribute_group(a) == 2)
        && b.block.blocks.iter().all(block_read_only)
}

fn block_group(b: &NestedBlock) -> usize {
    if b.min_items > 0 {
        0
    } else if block_read_only(b) {
        2
    } else {
        1
    }
}

/// Writes a block's attributes and nested blocks, grouped and sorted by name; returns what
/// needs a nested section.
fn write_children<'a>(
    out: &mut String,
    parents: &[&'a str],
    block: &'a Block,
    root: bool,
) -> Vec<Nested<'a>> {
    // (group, name, line, nested)
    let mut rows: Vec<(usize, &'a str, String, Option<Nested<'a>>)> = Vec::new();
    for a in &block.attributes {
        let mut path = parents.to_vec();
        path.push(a.name);
        let mut flags = vec![type_label(&a.ty)];
        if a.sensitive {
            flags.push("Sensitive".into());
        }
        if a.deprecated {
            flags.push("Deprecated".into());
        }
        let mut line = format!(
            "- `{}` ({}) {}",
            a.name,
            flags.join(", "),
            one_line(&a.description)
        );
        let nested = object_fields(&a.ty).map(|fields| {
            let n = Nested::Object(path, fields, attribute_group(a) == 2);
            let _ = write!(line, " (see [below for nested schema](#{}))", n.anchor());
            n
        });
        rows.push((attribute_group(a), a.name, line, nested));
    }
    for b in &block.blocks {
        let mut path = parents.to_vec();
        path.push(b.type_name);
        let mut flags = vec![match b.nesting {
            Nesting::Single => format!(
                "Block, {}",
                if b.min_items > 0 {
                    "Required"
                } else {
                    "Optional"
                }
            ),
            Nesting::List => "Block List".to_owned(),
        }];
        if b.nesting == Nesting::List && b.min_items > 0 {
            flags.push(format!("Min: {}", b.min_items));
        }
        if b.nesting == Nesting::List && b.max_items > 0 {
            flags.push(format!("Max: {}", b.max_items));
        }
        let n = Nested::Block(path, &b.block);
        let line = format!(
            "- `{}` ({}) {} (see [below for nested schema](#{}))",
            b.type_name,
            flags.join(", "),
            one_line(&b.block.description),
            n.anchor()
        );
        rows.push((block_group(b), b.type_name, line, Some(n)));
    }
    rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut nested = Vec::new();
    for (group, (top, inner)) in GROUPS.iter().enumerate() {
        let mut any = false;
        for row in rows.iter_mut().filter(|r| r.0 == group) {
            if !any {
                let _ = write!(out, "{}\n\n", if root { top } else { inner });
                any = true;
            }
            let _ = writeln!(out, "{}", row.2);
            nested.extend(row.3.take());
        }
        if any {
            out.push('\n');
        }
    }
    nested
}

fn write_nested(out: &mut String, nested: &[Nested<'_>]) {
    for n in nested {
        let _ = write!(
            out,
            "<a id=\"{}\"></a>\n### Nested Schema for `{}`\n\n",
            n.anchor(),
            n.path()
        );
        match n {
            Nested::Block(path, block) => {
                let inner = write_children(out, path, block, false);
                write_nested(out, &inner);
            }
            Nested::Object(path, fields, read_only) => {
                let _ = write!(
                    out,
                    "{}\n\n",
                    if *read_only { GROUPS[2].1 } else { GROUPS[1].1 }
                );
                let mut inner = Vec::new();
                for (name, ty) in fields.iter() {
                    let mut p = path.clone();
                    p.push(name.as_str());
                    let mut line = format!("- `{name}` ({})", type_label(ty));
                    if let Some(f) = object_fields(ty) {
                        let child = Nested::Object(p, f, *read_only);
                        let _ = write!(
                            line,
                            " (see [below for nested schema](#{}))",
                            child.anchor()
                        );
                        inner.push(child);
                    }
                    let _ = writeln!(out, "{line}");
                }
                out.push('\n');
                write_nested(out, &inner);
            }
        }
    }
}

/// The registry's name for a type: `String`, `Boolean`, `Map of String`, `List of Object`.
fn type_label(ty: &Type) -> String {
    match ty {
        Type::String => "String".into(),
        Type::Number => "Number".into(),
        Type::Bool => "Boolean".into(),
        Type::List(t) => format!("List of {}", type_label(t)),
        Type::Set(t) => format!("Set of {}", type_label(t)),
        Type::Map(t) => format!("Map of {}", type_label(t)),
        Type::Object(_) => "Object".into(),
    }
}

/// The fields of an object type, directly or as the element of a collection.
fn object_fields(ty: &Type) -> Option<&BTreeMap<String, Type>> {
    match ty {
        Type::Object(fields) => Some(fields),
        Type::List(t) | Type::Set(t) | Type::Map(t) => object_fields(t),
        _ => None,
    }
}

/// A description on one list line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// LF endings, no trailing spaces, single blank lines outside code fences, one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    let mut blank_run = 0;
    for line in text.replace("\r\n", "\n").lines() {
        let line = line.trim_end();
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if line.is_empty() && !in_fence {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// Writes every page, skipping unchanged ones, and deletes Markdown files under `docs/` that
/// the generator no longer produces (the folder is generated output only).
fn write_all(root: &Path, rendered: &BTreeMap<String, String>) -> Result<(), String> {
    let mut changed = 0;
    for (rel, text) in rendered {
        let path = root.join(rel);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *text) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {rel}: {e}"))?;
        println!("wrote {rel}");
        changed += 1;
    }
    for rel in markdown_files(root, DOCS)? {
        if !rendered.contains_key(&rel) {
            std::fs::remove_file(root.join(&rel))
                .map_err(|e| format!("cannot remove {rel}: {e}"))?;
            println!("removed {rel} (no longer generated)");
            changed += 1;
        }
    }
    if changed == 0 {
        println!("{DOCS}/ was already up to date ({} pages)", rendered.len());
    }
    Ok(())
}

/// Differences between the committed docs and `rendered`, one entry per file.
fn compare(root: &Path, rendered: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    for (rel, want) in rendered {
        match std::fs::read_to_string(root.join(rel)) {
            Ok(have) if have == *want => {}
            Ok(have) => problems.push(format!("{rel}: differs\n{}", diff(rel, &have, want))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{rel}: missing"));
            }
            Err(e) => return Err(format!("cannot read {rel}: {e}")),
        }
    }
    for rel in markdown_files(root, DOCS)? {
        if !rendered.contains_key(&rel) {
            problems.push(format!("{rel}: not generated any more (stale)"));
        }
    }
    Ok(problems)
}

/// A unified diff of the committed text (`-`) against the generated one (`+`), three lines of
/// context, cut short after 80 lines.
fn diff(rel: &str, old: &str, new: &str) -> String {
    const CONTEXT: usize = 3;
    const MAX_LINES: usize = 80;
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        let i = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        return format!(
            "first difference at line {}:\n- {}\n+ {}\n",
            i + 1,
            a.get(i).unwrap_or(&"<end of file>"),
            b.get(i).unwrap_or(&"<end of file>")
        );
    }
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line index, new line index, text)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions before insertions, as diff(1) prints them.
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = format!("--- {rel} (committed)\n+++ {rel} (generated)\n");
    let mut lines = 0;
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT).min(ops.len() - 1);
        let hunk = &ops[start..=end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        let _ = writeln!(
            out,
            "@@ -{},{old_len} +{},{new_len} @@",
            hunk[0].1 + 1,
            hunk[0].2 + 1
        );
        for (tag, _, _, text) in hunk {
            if lines == MAX_LINES {
                out.push_str("... (diff cut short)\n");
                return out;
            }
            let _ = writeln!(out, "{tag}{text}");
            lines += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &'static str, ty: Type, desc: &str) -> Attribute {
        Attribute::optional(name, ty, desc)
    }

    fn no_partials(name: &str) -> Result<String, String> {
        Err(format!("no partial {name}"))
    }

    fn page(kind: Kind, name: &str, block: Block) -> Page {
        Page {
            kind,
            name: name.into(),
            short: name.trim_start_matches("ccsecrets_").into(),
            schema: Schema::new(block),
        }
    }

    /// The committed docs are what the generator produces from today's schemas and files.
    #[test]
    fn committed_docs_are_up_to_date() {
        let root = workspace_root();
        let rendered = render_all(&root).unwrap_or_else(|e| panic!("rendering failed:\n{e}"));
        let problems = compare(&root, &rendered).unwrap();
        assert!(
            problems.is_empty(),
            "docs/ is out of date: run `cargo xtask docs` and commit the result.\n\n{}",
            problems.join("\n")
        );
    }

    /// Every documented name has a description: they are the registry docs.
    #[test]
    fn every_attribute_and_block_has_a_description() {
        fn walk(block: &Block, at: &str, missing: &mut Vec<String>) {
            for a in &block.attributes {
                if a.description.trim().is_empty() {
                    missing.push(format!("{at}{}", a.name));
                }
            }
            for b in &block.blocks {
                let here = format!("{at}{}", b.type_name);
                if b.block.description.trim().is_empty() {
                    missing.push(format!("{here} (block)"));
                }
                walk(&b.block, &format!("{here}."), missing);
            }
        }
        let mut missing = Vec::new();
        for p in pages().1 {
            if p.schema.block.description.trim().is_empty() {
                missing.push(format!("{} (top-level description)", p.name));
            }
            walk(&p.schema.block, &format!("{}: ", p.name), &mut missing);
        }
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    /// Each attribute's line says "Sensitive" exactly when the attribute is sensitive, in the
    /// section of its block.
    #[test]
    fn sensitive_attributes_say_so() {
        let root = workspace_root();
        let rendered = render_all(&root).unwrap();
        fn walk(
            block: &Block,
            section: &str,
            path: &[&str],
            doc: &str,
            page: &str,
            bad: &mut Vec<String>,
        ) {
            let text = section_of(doc, section);
            for a in &block.attributes {
                let prefix = format!("- `{}` (", a.name);
                let line = text.lines().find(|l| l.starts_with(&prefix));
                let flags = line.and_then(|l| l[prefix.len()..].split(')').next());
                match flags {
                    None => bad.push(format!("{page}: no line for {}", a.name)),
                    Some(f) if f.contains("Sensitive") != a.sensitive => bad.push(format!(
                        "{page}: `{}` sensitive={} but its line says ({f})",
                        a.name, a.sensitive
                    )),
                    Some(_) => {}
                }
            }
            for b in &block.blocks {
                let mut p = path.to_vec();
                p.push(b.type_name);
                let anchor = format!("nestedblock--{}", p.join("--"));
                walk(&b.block, &anchor, &p, doc, page, bad);
            }
        }
        let mut bad = Vec::new();
        let mut sensitive = 0;
        for p in pages().1 {
            let doc = &rendered[&p.doc_path()];
            walk(&p.schema.block, "", &[], doc, &p.name, &mut bad);
            sensitive += count_sensitive(&p.schema.block);
        }
        assert!(bad.is_empty(), "{bad:#?}");
        assert!(sensitive > 0, "expected some sensitive attributes");
    }

    fn count_sensitive(block: &Block) -> usize {
        block.attributes.iter().filter(|a| a.sensitive).count()
            + block
                .blocks
                .iter()
                .map(|b| count_sensitive(&b.block))
                .sum::<usize>()
    }

    /// The part of a page under `<a id="anchor">`, up to the next anchor ("" = the top level).
    fn section_of<'a>(doc: &'a str, anchor: &str) -> &'a str {
        let start = if anchor.is_empty() {
            doc.find("## Schema").unwrap()
        } else {
            doc.find(&format!("<a id=\"{anchor}\"></a>"))
                .unwrap_or_else(|| panic!("no anchor {anchor}"))
        };
        let rest = &doc[start + 1..];
        &doc[start..start + 1 + rest.find("<a id=").unwrap_or(rest.len())]
    }

    /// The pages say what registry users look for.
    #[test]
    fn pages_cover_policy_permissions_and_versions() {
        let rendered = render_all(&workspace_root()).unwrap();
        for p in pages().1 {
            let doc = &rendered[&p.doc_path()];
            let mut want = vec!["## Example Usage", "## Schema", "```terraform"];
            match p.kind {
                Kind::Provider => want.extend([
                    "Terraform 1.10",
                    "OpenTofu 1.11",
                    "VAULT_ADDR",
                    "CCSECRETS_ENVIRONMENT",
                ]),
                Kind::EphemeralResource => want.extend([
                    "## Required Vault policy",
                    "## Import",
                    "Terraform 1.10",
                    "OpenTofu 1.11",
                ]),
                Kind::DataSource => want.push("## Required Vault policy"),
            }
            if p.name.ends_with("_token") {
                want.push("## Required platform permissions");
            }
            for w in want {
                assert!(doc.contains(w), "{} lacks {w:?}", p.doc_path());
            }
        }
    }

    #[test]
    fn output_is_lf_with_one_trailing_newline_and_stable() {
        let root = workspace_root();
        let first = render_all(&root).unwrap();
        assert_eq!(first, render_all(&root).unwrap());
        for (rel, text) in &first {
            assert!(!text.contains('\r'), "{rel}");
            assert!(text.ends_with('\n') && !text.ends_with("\n\n"), "{rel}");
            assert!(text.starts_with("---\npage_title: "), "{rel}");
        }
        let paths: Vec<&str> = first.keys().map(String::as_str).collect();
        assert!(paths.contains(&"docs/index.md"), "{paths:?}");
        assert!(
            paths.contains(&"docs/ephemeral-resources/genesys_token.md"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"docs/data-sources/vault_secret_metadata.md"),
            "{paths:?}"
        );
    }

    #[test]
    fn schema_follows_terraform_plugin_docs() {
        let inner = Block::new(
            "Inner block.",
            vec![
                Attribute::required("role", Type::String, "The role."),
                attr("secret", Type::String, "The secret.").sensitive(),
            ],
        );
        let block = Block::new(
            "Top.",
            vec![
                attr("zeta", Type::Bool, "Last optional."),
                Attribute::required("path", Type::String, "Where."),
                attr("alpha", Type::map_of_strings(), "First optional."),
                Attribute::computed("out", Type::List(Box::new(Type::Number)), "Result."),
                Attribute::optional_computed("both", Type::Number, "Optional and computed."),
            ],
        )
        .with_block(NestedBlock::single("nest", inner));
        let md = schema_markdown(&block);
        let want = "\
<!-- schema generated by cargo xtask docs -->
## Schema

### Required

- `path` (String) Where.

### Optional

- `alpha` (Map of String) First optional.
- `both` (Number) Optional and computed.
- `nest` (Block, Optional) Inner block. (see [below for nested schema](#nestedblock--nest))
- `zeta` (Boolean) Last optional.

### Read-Only

- `out` (List of Number) Result.

<a id=\"nestedblock--nest\"></a>
### Nested Schema for `nest`

Required:

- `role` (String) The role.

Optional:

- `secret` (String, Sensitive) The secret.

";
        assert_eq!(md, want);
    }

    #[test]
    fn object_attributes_get_a_nested_section() {
        let obj = Type::Object([("a".to_owned(), Type::String)].into());
        let block = Block::new(
            "d",
            vec![Attribute::computed(
                "items",
                Type::List(Box::new(obj)),
                "Items.",
            )],
        );
        let md = schema_markdown(&block);
        assert!(md.contains("- `items` (List of Object) Items. (see [below for nested schema](#nestedobjatt--items))"), "{md}");
        assert!(
            md.contains("<a id=\"nestedobjatt--items\"></a>\n### Nested Schema for `items`\n\nRead-Only:\n\n- `a` (String)\n"),
            "{md}"
        );
    }

    #[test]
    fn templates_need_example_and_schema_once_and_known_directives() {
        let p = page(Kind::DataSource, "ccsecrets_x", Block::new("X.", vec![]));
        let all = [];
        let ok = expand(&p, &all, "{{ example }}\n{{schema}}", "x {}", &no_partials).unwrap();
        assert!(
            ok.starts_with("```terraform\nx {}\n```\n<!-- schema"),
            "{ok}"
        );
        for (template, want) in [
            (
                "{{ schema }}",
                "must contain {{ example }} exactly once (found 0)",
            ),
            (
                "{{ example }}{{ example }}{{ schema }}",
                "{{ example }} exactly once (found 2)",
            ),
            (
                "{{ example }}\n\n{{ nope }}",
                ":3: unknown directive `{{ nope }}`",
            ),
            ("{{ example", "without a closing"),
            ("{{ partial nope }}", "write a partial as"),
            ("{{ partial \"gone\" }}", "no partial gone"),
        ] {
            let e = expand(&p, &all, template, "", &no_partials).unwrap_err();
            assert!(e.contains(want), "{template:?}: {e}");
        }
    }

    #[test]
    fn header_and_partials() {
        let p = page(
            Kind::EphemeralResource,
            "ccsecrets_thing",
            Block::new("Makes a `thing`. See [docs](https://example.com).", vec![]),
        );
        let partial = |name: &str| Ok(format!("Partial {name}.\n\n\n"));
        let text = render_page(
            "ccsecrets",
            &p,
            &[],
            "{{ partial \"note\" }}\n\n\n\n## Example Usage\n\n{{ example }}\n\n{{ schema }}\r\n",
            "ephemeral \"ccsecrets_thing\" \"x\" {}\n",
            &partial,
        )
        .unwrap();
        let want_head = "---
page_title: \"ccsecrets_thing Ephemeral Resource - ccsecrets\"
subcategory: \"\"
description: |-
  Makes a thing. See docs.
---

<!-- Generated by `cargo xtask docs` from the provider schema, examples/ephemeral-resources/ccsecrets_thing/ephemeral-resource.tf and templates/ephemeral-resources/thing.md. Do not edit. -->

# ccsecrets_thing (Ephemeral Resource)

Makes a `thing`. See [docs](https://example.com).

Partial note.

## Example Usage

```terraform
ephemeral \"ccsecrets_thing\" \"x\" {}
```
";
        assert!(text.starts_with(want_head), "{text}");
        assert_eq!(tidy(&text), text);
    }

    #[test]
    fn first_sentence_skips_abbreviations() {
        assert_eq!(
            first_sentence("Reads, e.g. a key. Then more."),
            "Reads, e.g. a key."
        );
        assert_eq!(first_sentence("No period"), "No period");
    }

    #[test]
    fn diff_shows_changed_lines_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let d = diff("docs/x.md", old, new);
        assert_eq!(
            d,
            "--- docs/x.md (committed)\n+++ docs/x.md (generated)\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
    }
}

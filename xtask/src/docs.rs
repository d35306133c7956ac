//! The API reference of the book (`docs/reference/`), generated from the same CRDs that
//! `cargo xtask crdgen` writes, so the reference can never describe a schema the apiserver does
//! not enforce. Rendering is pure (CRD JSON in, markdown out); only [`write`] and [`stale`]
//! touch the file system.

use anyhow::Context as _;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Directory of the generated pages, relative to the repository root.
pub const REFERENCE_DIR: &str = "docs/reference";

const GENERATED: &str = "Generated from the CRD schemas by `cargo xtask docs`; do not edit.";

/// One generated page: its file name under [`REFERENCE_DIR`] and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub file: String,
    pub content: String,
}

/// Every page of the reference: an index, one page per kind, and the Server state machine.
pub fn pages() -> Vec<Page> {
    let crds: Vec<Value> = api::crds::all()
        .iter()
        .map(|c| serde_json::to_value(c).expect("CRD serializes"))
        .collect();
    let transitions = transitions();
    let side_effects: Vec<(String, String)> = api::server::ServerState::ALL
        .iter()
        .map(|s| {
            (
                s.to_string(),
                api::state::side_effect_owner(*s).field_manager().to_owned(),
            )
        })
        .collect();
    render_pages(&crds, &transitions, &side_effects)
}

/// Every transition of `api::state` as (from, to, field manager of its writer).
fn transitions() -> Vec<(String, String, String)> {
    api::state::transitions()
        .into_iter()
        .map(|(from, to, owner)| {
            (
                from.map_or_else(|| "(none)".to_owned(), |s| s.to_string()),
                to.to_string(),
                owner.field_manager().to_owned(),
            )
        })
        .collect()
}

/// The line that the hand-drawn state machine (`docs/concepts/state-machine.md`) carries to
/// say which transitions it was drawn from; a test fails when the code has others, so the
/// drawing is redrawn rather than left stale.
#[cfg(test)]
fn drawn_from(transitions: &[(String, String, String)]) -> String {
    let list: Vec<String> = transitions
        .iter()
        .map(|(from, to, owner)| format!("{from}>{to}:{}", owner.trim_start_matches("metal-")))
        .collect();
    format!("<!-- drawn from api::state: {} -->", list.join(" "))
}

/// Renders the whole reference from CRDs (as JSON) and the state machine's tables.
pub fn render_pages(
    crds: &[Value],
    transitions: &[(String, String, String)],
    side_effects: &[(String, String)],
) -> Vec<Page> {
    let mut pages = vec![Page {
        file: "index.md".into(),
        content: render_index(crds),
    }];
    pages.extend(crds.iter().map(|crd| Page {
        file: page_file(crd),
        content: render_kind(crd),
    }));
    pages.push(Page {
        file: "server-states.md".into(),
        content: render_states(transitions, side_effects),
    });
    pages
}

/// File name of a kind's page: the kind in lower case.
pub fn page_file(crd: &Value) -> String {
    format!("{}.md", str_at(crd, "/spec/names/kind").to_lowercase())
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The strings of a JSON array (empty when absent).
fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Items as code spans, joined.
fn code_join(items: &[&str], sep: &str) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn schema(crd: &Value) -> &Value {
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .unwrap_or(&Value::Null)
}

/// The first sentence of a description, for the index.
fn summary(description: &str) -> String {
    let flat = flatten(description);
    match flat.find(". ") {
        Some(i) => flat[..=i].to_owned(),
        None => flat,
    }
}

fn render_index(crds: &[Value]) -> String {
    let mut out = format!(
        "# API reference\n\n{GENERATED}\n\n\
         Every kind of `metal.ironcore.dev/v1alpha1`, with its spec and status fields and the CEL\n\
         validation rules the apiserver enforces. The rules and one valid and one rejected example\n\
         per rule are also listed in [API validation rules](../api-validation.md); the Server\n\
         states and their writers are in [Server states](server-states.md).\n\n\
         | Kind | Scope | Short names | What |\n|---|---|---|---|\n"
    );
    for crd in crds {
        let kind = str_at(crd, "/spec/names/kind");
        let short = strs(crd.pointer("/spec/names/shortNames"));
        let deprecated = crd
            .pointer("/spec/versions/0/deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let what = summary(str_at(schema(crd), "/description"));
        let _ = writeln!(
            out,
            "| [{kind}]({}) | {} | {} | {}{} |",
            page_file(crd),
            str_at(crd, "/spec/scope"),
            code_join(&short, ", "),
            if deprecated && !what.starts_with("Deprecated") {
                "**Deprecated.** "
            } else {
                ""
            },
            cell(&what)
        );
    }
    out
}

/// One kind's page: names, printer columns, the spec and status field tables, the CEL rules.
pub fn render_kind(crd: &Value) -> String {
    let kind = str_at(crd, "/spec/names/kind");
    let root = schema(crd);
    let mut out = format!("# {kind}\n\n{GENERATED}\n\n");
    let description = flatten(str_at(root, "/description"));
    if !description.is_empty() {
        let _ = writeln!(out, "{}\n", escape_html(&description));
    }
    let version = crd.pointer("/spec/versions/0").unwrap_or(&Value::Null);
    let _ = writeln!(
        out,
        "| | |\n|---|---|\n| API version | `{}/{}` |\n| Scope | {} |\n| Plural | `{}` |",
        str_at(crd, "/spec/group"),
        str_at(version, "/name"),
        str_at(crd, "/spec/scope"),
        str_at(crd, "/spec/names/plural"),
    );
    let short = strs(crd.pointer("/spec/names/shortNames"));
    if !short.is_empty() {
        let _ = writeln!(out, "| Short names | {} |", code_join(&short, ", "));
    }
    if version.get("deprecated").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            out,
            "| Deprecated | {} |",
            cell(str_at(version, "/deprecationWarning"))
        );
    }
    if let Some(cols) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        out.push_str(
            "\n## Printer columns\n\nShown by `kubectl get`.\n\n| Column | Type | JSON path |\n|---|---|---|\n",
        );
        for c in cols {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` |",
                cell(str_at(c, "/name")),
                str_at(c, "/type"),
                str_at(c, "/jsonPath").replace('|', "\\|")
            );
        }
    }
    // Top-level data fields (a BMCSecret has `data`, `stringData`, `immutable`, no spec).
    let top: Vec<(&String, &Value)> = root
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter(|(k, _)| {
                    !["apiVersion", "kind", "metadata", "spec", "status"].contains(&k.as_str())
                })
                .collect()
        })
        .unwrap_or_default();
    let required_top = strs(root.get("required"));
    let mut sections: Vec<(&str, &str, Vec<Field>)> = Vec::new();
    if !top.is_empty() {
        let mut rows = Vec::new();
        for (name, node) in top {
            collect_fields(name, node, required_top.contains(&name.as_str()), &mut rows);
        }
        sections.push(("Fields", "Top-level fields of the object.", rows));
    }
    for (part, title, what) in [
        (
            "spec",
            "Spec",
            "What the user (or the controller named in the description) declares.",
        ),
        (
            "status",
            "Status",
            "What the controllers observe and record; never written by users.",
        ),
    ] {
        if let Some(node) = root.pointer(&format!("/properties/{part}")) {
            let mut rows = Vec::new();
            collect_fields(part, node, required_top.contains(&part), &mut rows);
            sections.push((title, what, rows));
        }
    }
    for (title, what, rows) in sections {
        let _ = write!(
            out,
            "\n## {title}\n\n{what}\n\n<div class=\"fields\">\n\n| Field | Type | Description |\n|---|---|---|\n"
        );
        for r in &rows {
            let mut description = String::new();
            if r.required {
                description.push_str("**Required.** ");
            }
            description.push_str(&r.description);
            if let Some(d) = &r.default {
                let _ = write!(description, " Default: `{}`.", d.replace('|', "\\|"));
            }
            let _ = writeln!(out, "| `{}` | {} | {} |", r.path, r.ty, description.trim());
        }
        out.push_str("\n</div>\n");
    }
    let mut rules = Vec::new();
    collect_rules("", root, &mut rules);
    if !rules.is_empty() {
        out.push_str(
            "\n## Validation rules\n\nCEL rules (`x-kubernetes-validations`) the apiserver evaluates on create and update;\n\
             a rule that mentions `oldSelf` is a transition rule and runs only on updates.\n\n\
             | Field | Rule | Message |\n|---|---|---|\n",
        );
        for (path, rule, message) in rules {
            let _ = writeln!(
                out,
                "| `{path}` | `{}` | {} |",
                rule.replace('|', "\\|"),
                cell(&message)
            );
        }
    }
    out
}

/// One row of a field table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    path: String,
    ty: String,
    required: bool,
    default: Option<String>,
    description: String,
}

fn type_of(node: &Value) -> String {
    let obj = node.as_object().cloned().unwrap_or_default();
    if obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int or string".into();
    }
    let base = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let ty = match base {
        "array" => format!(
            "[]{}",
            obj.get("items")
                .map(type_of)
                .unwrap_or_else(|| "any".into())
        ),
        "object" => match obj.get("additionalProperties") {
            Some(add @ Value::Object(_)) => format!("map[string]{}", type_of(add)),
            _ if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {
                "object (free-form)".into()
            }
            _ => "object".into(),
        },
        "" if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {
            "any".into()
        }
        "" => "any".into(),
        other => other.into(),
    };
    match obj.get("format").and_then(Value::as_str) {
        Some(f) => format!("{ty} ({f})"),
        None => ty,
    }
}

/// Constraints worth a reader's attention, appended to the description.
fn constraints(obj: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        let list: Vec<String> = values
            .iter()
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        out.push(format!("One of: {}.", list.join(", ")));
    }
    for (key, label) in [
        ("minimum", "Minimum"),
        ("maximum", "Maximum"),
        ("minLength", "Min length"),
        ("maxLength", "Max length"),
        ("minItems", "Min items"),
        ("maxItems", "Max items"),
    ] {
        if let Some(v) = obj.get(key) {
            out.push(format!("{label}: {v}."));
        }
    }
    if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
        out.push(format!("Pattern: `{}`.", p.replace('|', "\\|")));
    }
    let keys = strs(obj.get("x-kubernetes-list-map-keys"));
    if !keys.is_empty() {
        out.push(format!("List keyed by {}.", code_join(&keys, " + ")));
    }
    if obj.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
        out.push("Replaced as a whole (atomic).".into());
    }
    out
}

fn collect_fields(path: &str, node: &Value, required: bool, out: &mut Vec<Field>) {
    let Some(obj) = node.as_object() else { return };
    let mut description = cell(&flatten(
        obj.get("description").and_then(Value::as_str).unwrap_or(""),
    ));
    for c in constraints(obj) {
        if !description.is_empty() {
            description.push(' ');
        }
        description.push_str(&cell(&c));
    }
    out.push(Field {
        path: path.to_owned(),
        ty: type_of(node),
        required,
        default: obj.get("default").map(|d| d.to_string()),
        description,
    });
    let children = |prefix: &str, child: &Value, out: &mut Vec<Field>| {
        let Some(props) = child.get("properties").and_then(Value::as_object) else {
            return;
        };
        let req = strs(child.get("required"));
        for (name, grandchild) in props {
            collect_fields(
                &format!("{prefix}.{name}"),
                grandchild,
                req.contains(&name.as_str()),
                out,
            );
        }
    };
    children(path, node, out);
    if let Some(items) = obj.get("items") {
        children(&format!("{path}[]"), items, out);
    }
    if let Some(add @ Value::Object(_)) = obj.get("additionalProperties") {
        children(&format!("{path}.<key>"), add, out);
    }
}

fn collect_rules(path: &str, node: &Value, out: &mut Vec<(String, String, String)>) {
    let Some(obj) = node.as_object() else { return };
    if let Some(rules) = obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in rules {
            out.push((
                if path.is_empty() {
                    ".".into()
                } else {
                    path.to_owned()
                },
                str_at(r, "/rule").to_owned(),
                str_at(r, "/message").to_owned(),
            ));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            collect_rules(&format!("{path}.{name}"), child, out);
        }
    }
    if let Some(items) = obj.get("items") {
        collect_rules(&format!("{path}[*]"), items, out);
    }
    if let Some(add @ Value::Object(_)) = obj.get("additionalProperties") {
        collect_rules(&format!("{path}{{*}}"), add, out);
    }
}

fn render_states(
    transitions: &[(String, String, String)],
    side_effects: &[(String, String)],
) -> String {
    let mut out = format!(
        "# Server states\n\n{GENERATED} (`api::state`)\n\n\
         A Server's `status.state` moves only along these transitions, each written by one\n\
         controller with the Server's `resourceVersion` as precondition. The drawing is in\n\
         [The Server state machine](../concepts/state-machine.md).\n\n\
         ## Transitions\n\n| From | To | Written by |\n|---|---|---|\n"
    );
    for (from, to, owner) in transitions {
        let _ = writeln!(out, "| {from} | {to} | `{owner}` |");
    }
    out.push_str(
        "\n## BMC side effects\n\nThe one controller allowed to power, boot, reset or flash a server's BMC in each state.\n\n\
         | State | Drives the BMC |\n|---|---|\n",
    );
    for (state, owner) in side_effects {
        let _ = writeln!(out, "| {state} | `{owner}` |");
    }
    out
}

/// Joins a multi-line doc comment into one line (table cells cannot hold line breaks).
fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Makes text safe in a markdown table cell: `|` escaped, `<`/`>` outside code spans turned
/// into entities so `<name>` placeholders are shown instead of being taken for HTML.
fn cell(s: &str) -> String {
    escape_html(&s.replace('|', "\\|"))
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for ch in s.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                out.push(ch);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Writes the reference under `root`, removing pages of kinds that no longer exist.
pub fn write(root: &Path) -> anyhow::Result<()> {
    let dir = root.join(REFERENCE_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pages = pages();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".md") && !pages.iter().any(|p| p.file == name) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for p in &pages {
        std::fs::write(dir.join(&p.file), &p.content)
            .with_context(|| format!("writing {}", p.file))?;
    }
    eprintln!("wrote {} reference pages to {}", pages.len(), dir.display());
    Ok(())
}

/// Pages under `root` that are missing, differ from what would be generated, or are left over.
pub fn stale(root: &Path) -> Vec<PathBuf> {
    let dir = root.join(REFERENCE_DIR);
    let pages = pages();
    let mut out: Vec<PathBuf> = pages
        .iter()
        .filter(|p| std::fs::read_to_string(dir.join(&p.file)).ok().as_deref() != Some(&p.content))
        .map(|p| dir.join(&p.file))
        .collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") && !pages.iter().any(|p| p.file == name) {
                out.push(entry.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({
            "spec": {
                "group": "metal.ironcore.dev",
                "scope": "Cluster",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wg"]},
                "versions": [{
                    "name": "v1alpha1",
                    "additionalPrinterColumns": [{"name": "State", "type": "string", "jsonPath": ".status.state"}],
                    "schema": {"openAPIV3Schema": {
                        "description": "A widget. It shows the generator.",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "immutable": {"type": "boolean", "description": "Top-level data."},
                            "spec": {
                                "type": "object",
                                "required": ["power"],
                                "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a || true", "message": "a is immutable"}],
                                "properties": {
                                    "power": {"type": "string", "enum": ["On", "Off"], "default": "Off",
                                              "description": "Desired power\nof the <server>."},
                                    "ports": {"type": "array", "items": {
                                        "type": "object", "required": ["port"],
                                        "properties": {"port": {"type": "integer", "format": "int32", "minimum": 1}}
                                    }},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "ref": {"type": "object", "x-kubernetes-map-type": "atomic",
                                            "properties": {"name": {"type": "string", "description": "Name of `<obj>`."}}}
                                }
                            },
                            "status": {"type": "object", "properties": {"state": {"type": "string"}}}
                        }
                    }}
                }]
            }
        })
    }

    #[test]
    fn kind_page_lists_every_field_with_type_required_default_and_enum() {
        let page = render_kind(&crd());
        assert!(page.starts_with("# Widget\n"), "{page}");
        assert!(page.contains("| API version | `metal.ironcore.dev/v1alpha1` |"));
        assert!(page.contains("| Short names | `wg` |"));
        assert!(page.contains("| State | string | `.status.state` |"));
        assert!(
            page.contains(
                "| `spec.power` | string | **Required.** Desired power of the &lt;server&gt;. One of: `On`, `Off`. Default: `\"Off\"`. |"
            ),
            "{page}"
        );
        assert!(page.contains("| `spec.ports` | []object |  |"), "{page}");
        assert!(
            page.contains("| `spec.ports[].port` | integer (int32) | **Required.** Minimum: 1. |")
        );
        assert!(page.contains("| `spec.labels` | map[string]string |"));
        // `<` inside a code span stays literal; atomic references are marked.
        assert!(page.contains("Name of `<obj>`."), "{page}");
        assert!(page.contains("| `spec.ref` | object | Replaced as a whole (atomic). |"));
        assert!(page.contains("| `status.state` | string |"));
        assert!(
            !page.contains("apiVersion"),
            "root metadata fields are not listed"
        );
        assert!(page.contains("## Fields"), "{page}");
        assert!(page.contains("| `immutable` | boolean | Top-level data. |"));
    }

    #[test]
    fn kind_page_lists_cel_rules_with_escaped_pipes() {
        let page = render_kind(&crd());
        assert!(page.contains("## Validation rules"));
        assert!(
            page.contains("| `.spec` | `self.a == oldSelf.a \\|\\| true` | a is immutable |"),
            "{page}"
        );
    }

    #[test]
    fn index_links_every_kind_page_with_its_first_sentence() {
        let pages = render_pages(&[crd()], &[], &[]);
        let files: Vec<&str> = pages.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["index.md", "widget.md", "server-states.md"]);
        assert!(
            pages[0]
                .content
                .contains("| [Widget](widget.md) | Cluster | `wg` | A widget. |"),
            "{}",
            pages[0].content
        );
    }

    #[test]
    fn states_page_has_one_row_per_transition() {
        let page = render_states(
            &[("(none)".into(), "Initial".into(), "metal-discovery".into())],
            &[("Initial".into(), "metal-discovery".into())],
        );
        assert!(page.contains("| (none) | Initial | `metal-discovery` |"));
        assert!(page.contains("| Initial | `metal-discovery` |"));
    }

    #[test]
    fn drawn_from_lists_each_transition_with_its_writer() {
        let line = drawn_from(&[
            ("(none)".into(), "Initial".into(), "metal-discovery".into()),
            (
                "Available".into(),
                "Reserved".into(),
                "metal-reservation".into(),
            ),
        ]);
        assert_eq!(
            line,
            "<!-- drawn from api::state: (none)>Initial:discovery Available>Reserved:reservation -->"
        );
    }

    /// The drawings of the state machine were made from the transitions the code has.
    #[test]
    fn state_machine_drawing_matches_the_code() {
        let page =
            std::fs::read_to_string(testenv::repo_root().join("docs/concepts/state-machine.md"))
                .unwrap();
        let expected = drawn_from(&transitions());
        assert!(
            page.lines().any(|l| l == expected),
            "api::state has other transitions than docs/concepts/state-machine.md was drawn from:\n\
             redraw it and replace its `<!-- drawn from ... -->` line with\n{expected}"
        );
    }

    /// The committed reference matches the CRDs (like the crdgen check of the YAML).
    #[test]
    fn committed_reference_is_up_to_date() {
        let stale = stale(&testenv::repo_root());
        assert!(
            stale.is_empty(),
            "the API reference is out of date: {stale:#?}\nrun `cargo xtask docs`"
        );
    }
}

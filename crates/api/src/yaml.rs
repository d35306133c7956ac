//! A YAML writer for generated manifests that every reader reads the same way.
//!
//! General-purpose YAML emitters follow YAML 1.2, where `On`, `Off`, `yes` or `no` are plain
//! strings and need no quotes. kubectl (go-yaml), PyYAML and many other tools still resolve plain
//! scalars by YAML 1.1 rules, where those words are booleans: `kubectl apply -f` of such a CRD
//! turns the enum value `On` into `true`. This writer quotes every string that a YAML 1.1 or 1.2
//! reader could take for anything but that string, and writes the rest plain, so the files stay
//! readable and mean the same to every reader.

use serde_json::Value;
use std::fmt::Write as _;

/// Renders `value` as a block-style YAML document (no leading `---`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        scalar => {
            out.push_str(&inline(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// Words YAML 1.1 resolves to booleans or null when unquoted.
const SPECIAL_WORDS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "<<",
];

/// Whether `s` may be written unquoted: it starts with a letter, `_` or `/`, contains none of
/// YAML's indicator characters, does not end in a space, and is not a YAML 1.1 special word.
/// Anything starting with a digit, a sign or a dot (numbers, timestamps, `.inf`) is quoted.
pub fn is_plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    let indicator = |c: char| {
        matches!(
            c,
            ':' | '#'
                | '\''
                | '"'
                | '\\'
                | '{'
                | '}'
                | '['
                | ']'
                | ','
                | '&'
                | '*'
                | '!'
                | '|'
                | '>'
                | '%'
                | '@'
                | '`'
        ) || c.is_control()
    };
    !s.chars().any(indicator) && !s.ends_with(' ') && !SPECIAL_WORDS.contains(&s)
}

/// Whether a multi-line string can be a literal block (`|-`) and read back unchanged.
fn literal_block_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with('\n')
        && !s.starts_with(' ')
        && !s.starts_with('\n')
        && s.lines().all(|l| !l.ends_with(' ') && !l.ends_with('\t'))
        && !s.chars().any(|c| c.is_control() && c != '\n')
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar with the same escapes.
    serde_json::to_string(s).expect("strings serialize")
}

fn key(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_owned()
    } else {
        quoted(s)
    }
}

/// A scalar (or empty collection) on the current line; multi-line strings as literal blocks
/// indented at `indent`.
fn inline(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain_safe(s) => s.clone(),
        Value::String(s) if literal_block_safe(s) => {
            let pad = " ".repeat(indent);
            let mut out = String::from("|-");
            for line in s.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str(line);
                }
            }
            out
        }
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn mapping(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let pad = " ".repeat(indent);
    for (k, v) in m {
        match v {
            Value::Object(child) if !child.is_empty() => {
                let _ = writeln!(out, "{pad}{}:", key(k));
                mapping(out, child, indent + 2);
            }
            // Sequences under a key sit at the key's indentation, as kubectl writes them.
            Value::Array(items) if !items.is_empty() => {
                let _ = writeln!(out, "{pad}{}:", key(k));
                sequence(out, items, indent);
            }
            scalar => {
                let _ = writeln!(out, "{pad}{}: {}", key(k), inline(scalar, indent + 2));
            }
        }
    }
}

fn sequence(out: &mut String, items: &[Value], indent: usize) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first entry shares the dash's line; the rest align under it.
                let mut body = String::new();
                mapping(&mut body, m, indent + 2);
                let body = body.strip_prefix(&" ".repeat(indent + 2)).unwrap_or(&body);
                let _ = write!(out, "{pad}- {body}");
            }
            Value::Array(a) if !a.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                sequence(out, a, indent + 2);
            }
            scalar => {
                debug_assert!(!is_block(scalar));
                let _ = writeln!(out, "{pad}- {}", inline(scalar, indent + 2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_words_and_numbers_are_quoted() {
        for s in [
            "On",
            "Off",
            "yes",
            "No",
            "y",
            "n",
            "true",
            "null",
            "~",
            "1",
            "0x1F",
            "1:20",
            "-1",
            ".inf",
            "2001-12-14",
            "",
            " lead",
            "trail ",
            "a: b",
            "a #b",
            "*ref",
            "!tag",
        ] {
            assert!(!is_plain_safe(s), "{s:?} must be quoted");
        }
        for s in [
            "Once",
            "PoweringOn",
            "metal.ironcore.dev",
            "spec",
            "v1alpha1",
            "a b c.",
        ] {
            assert!(is_plain_safe(s), "{s:?} may be plain");
        }
    }

    #[test]
    fn documents_parse_back_to_the_same_value() {
        let v = json!({
            "enum": ["On", "Off", "Pxe"],
            "description": "First line.\nSecond line: with a colon.\n\nAfter a gap.",
            "odd": "trailing newline\n",
            "tabbed": "a\tb",
            "empty": {}, "none": [], "n": 3, "f": 1.5, "b": false, "z": null,
            "list": [{"a": 1, "b": {"c": "x"}}, ["nested"], "s"],
            "on": "key that is a YAML 1.1 boolean",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "it's 'quoted'"}],
        });
        let yaml = to_string(&v);
        let back: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, v, "{yaml}");
        assert!(yaml.contains("- \"On\"\n"), "{yaml}");
        assert!(yaml.contains("\"on\": "), "{yaml}");
        assert!(yaml.contains("description: |-\n  First line.\n"), "{yaml}");
    }
}

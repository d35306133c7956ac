//! Reading templates: DMTF mockup directories and the built-in embedded template.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use crate::error::SimError;
use crate::json::{ROOT, canon};

/// One file of a tree before indexing.
pub(crate) enum RawEntry {
    /// A JSON document (a resource, a registry file, the OData service document).
    Json(Value),
    /// Anything served verbatim (CSDL `$metadata`, schema files).
    Raw(&'static str, Bytes),
}

/// The built-in `default` template, a generic 2-socket rack server.
const DEFAULT_TEMPLATE: &str = include_str!("../../templates/default.json");

/// Reads a built-in template.
pub(crate) fn builtin(name: &str) -> Result<HashMap<String, RawEntry>, SimError> {
    let text = match name {
        "default" => DEFAULT_TEMPLATE,
        other => {
            return Err(SimError::TemplateInvalid {
                name: other.into(),
                reason: "no such built-in template (only `default`)".into(),
            });
        }
    };
    let doc: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| SimError::TemplateInvalid {
            name: name.into(),
            reason: format!("embedded JSON: {e}"),
        })?;
    Ok(doc
        .into_iter()
        .map(|(k, v)| (canon(&k).into_owned(), RawEntry::Json(v)))
        .collect())
}

/// Finds the directory whose `index.json` is the service root.
fn service_root_dir(dir: &Path) -> Option<PathBuf> {
    let candidates = [
        dir.join("redfish").join("v1"),
        dir.join("v1"),
        dir.to_path_buf(),
    ];
    candidates
        .into_iter()
        .find(|c| c.join("index.json").is_file())
}

/// Reads a DMTF mockup tree: `index.json` files become resources at their directory's path,
/// `index.xml` files are served verbatim there (`$metadata`), other `.json`/`.xml` files at their
/// own path; `headers.json` and everything else is ignored.
pub(crate) fn mockup_dir(dir: &Path) -> Result<HashMap<String, RawEntry>, SimError> {
    let root = service_root_dir(dir).ok_or_else(|| SimError::TemplateInvalid {
        name: dir.display().to_string(),
        reason: "no service root index.json (looked in redfish/v1/, v1/ and the directory itself)"
            .into(),
    })?;
    let mut files = Vec::new();
    walk(&root, String::new(), &mut files)?;
    // Parse in parallel: large trees (Dell: 2,600 files, 44 MB) dominate start-up otherwise.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk = files.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<(String, RawEntry)>, SimError>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(read_one).collect::<Result<Vec<_>, _>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("template reader thread panicked"))
            .collect()
    });
    let mut out = HashMap::with_capacity(files.len());
    for r in results {
        for (path, entry) in r? {
            out.insert(path, entry);
        }
    }
    if !out.contains_key(ROOT) {
        return Err(SimError::TemplateInvalid {
            name: dir.display().to_string(),
            reason: "service root is not JSON".into(),
        });
    }
    Ok(out)
}

/// (URL path, file path, kind) of one file to read.
type FileJob = (String, PathBuf, FileKind);

#[derive(Clone, Copy)]
enum FileKind {
    Json,
    Xml,
}

fn walk(dir: &Path, rel: String, out: &mut Vec<FileJob>) -> Result<(), SimError> {
    let io = |source| SimError::TemplateIo {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    let here = if rel.is_empty() {
        ROOT.to_string()
    } else {
        format!("{ROOT}/{rel}")
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let ft = e.file_type().map_err(io)?;
        if ft.is_dir() {
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            walk(&path, sub, out)?;
        } else if name == "index.json" {
            out.push((here.clone(), path, FileKind::Json));
        } else if name == "index.xml" {
            out.push((here.clone(), path, FileKind::Xml));
        } else if name == "headers.json" || (rel.is_empty() && name == "explorer_config.json") {
            continue;
        } else if name.ends_with(".json") {
            out.push((format!("{here}/{name}"), path, FileKind::Json));
        } else if name.ends_with(".xml") {
            out.push((format!("{here}/{name}"), path, FileKind::Xml));
        }
    }
    Ok(())
}

fn read_one((url, file, kind): &FileJob) -> Result<(String, RawEntry), SimError> {
    let bytes = std::fs::read(file).map_err(|source| SimError::TemplateIo {
        path: file.clone(),
        source,
    })?;
    let entry = match kind {
        FileKind::Json => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => RawEntry::Json(v),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "serving unparsable JSON verbatim");
                RawEntry::Raw("application/json; charset=utf-8", Bytes::from(bytes))
            }
        },
        FileKind::Xml => RawEntry::Raw("application/xml; charset=utf-8", Bytes::from(bytes)),
    };
    Ok((canon(url).into_owned(), entry))
}

//! Building the book (`docs/`, mdBook) and checking every link in the rendered HTML.
//!
//! mdBook is installed by the build, not by the user: `cargo install` of a pinned version,
//! without the web server and file watcher, into the same cache as the control plane
//! (`$METAL_CACHE`, else `~/.cache/metal`), reused when present. The link check is pure over a
//! directory of HTML (no network): relative links must resolve to a file of the book (and an
//! `#anchor` to an id in that page), links that leave the book must name a file of the
//! repository, and external links are only listed.

use anyhow::{Context as _, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The pinned mdBook release (0.5.x builds on the workspace's Rust).
pub const MDBOOK_VERSION: &str = "0.5.4";

/// Pages the check skips: the 404 page resolves its links against the site root (`<base>`),
/// which a directory on disk does not have.
const SKIPPED_PAGES: &[&str] = &["404.html"];

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("METAL_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache")
        });
    base.join("metal")
}

/// The cached mdBook binary, installed with `cargo install` on first use.
pub fn mdbook() -> anyhow::Result<PathBuf> {
    let dir = cache_root().join(format!("mdbook-{MDBOOK_VERSION}"));
    let bin = dir.join("bin/mdbook");
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(cache_root())?;
    // Install next to the final place and rename, so a concurrent or interrupted install never
    // leaves a half-written binary where the next run would take it.
    let staging = cache_root().join(format!(
        "mdbook-{MDBOOK_VERSION}.partial-{}",
        std::process::id()
    ));
    let started = Instant::now();
    eprintln!(
        "==> installing mdbook {MDBOOK_VERSION} into {}",
        dir.display()
    );
    let status = crate::cargo()
        .args([
            "install",
            "--locked",
            "--quiet",
            "mdbook",
            "--version",
            MDBOOK_VERSION,
            "--no-default-features",
            "--features",
            "search",
            "--root",
        ])
        .arg(&staging)
        // Its own target directory: never the workspace's, which a running build may lock.
        .env("CARGO_TARGET_DIR", staging.join("target"))
        .status()
        .context("running cargo install mdbook")?;
    if !status.success() {
        bail!("cargo install mdbook {MDBOOK_VERSION} failed ({status})");
    }
    let _ = std::fs::remove_dir_all(staging.join("target"));
    if std::fs::rename(&staging, &dir).is_err() && !bin.is_file() {
        bail!("could not move {} to {}", staging.display(), dir.display());
    }
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!(
        "<== mdbook {MDBOOK_VERSION} installed in {:.1?}",
        started.elapsed()
    );
    Ok(bin)
}

/// Builds the book of `root/docs` into `out`.
pub fn build(root: &Path, out: &Path) -> anyhow::Result<()> {
    let mdbook = mdbook()?;
    let started = Instant::now();
    let output = Command::new(&mdbook)
        .arg("build")
        .arg(root.join("docs"))
        .arg("--dest-dir")
        .arg(out)
        .output()
        .context("running mdbook build")?;
    if !output.status.success() {
        bail!(
            "mdbook build failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!(
        "built the book into {} in {:.1?}",
        out.display(),
        started.elapsed()
    );
    Ok(())
}

/// Builds the book and fails on any broken link or on a markdown page left out of the book.
pub fn build_and_check(root: &Path, out: &Path) -> anyhow::Result<()> {
    build(root, out)?;
    let report = check(out, &root.join("docs"), root)?;
    for link in &report.external {
        eprintln!("external (not fetched): {link}");
    }
    if !report.errors.is_empty() {
        bail!(
            "broken links in the book:\n  {}",
            report.errors.join("\n  ")
        );
    }
    eprintln!(
        "checked {} pages: {} internal links, {} repository links, {} external links",
        report.pages,
        report.internal,
        report.repository.len(),
        report.external.len()
    );
    Ok(())
}

/// What [`check`] found.
#[derive(Debug, Default)]
pub struct Report {
    pub pages: usize,
    pub internal: usize,
    /// Links that leave the book into the repository (they exist).
    pub repository: BTreeSet<String>,
    /// http(s) links, listed only.
    pub external: BTreeSet<String>,
    pub errors: Vec<String>,
}

/// Checks every `href`/`src` of every HTML page under `out`, the book rendered from `src_dir`
/// (a directory of `repo`), and that every markdown file of `src_dir` was rendered.
pub fn check(out: &Path, src_dir: &Path, repo: &Path) -> anyhow::Result<Report> {
    let mut html = BTreeMap::new();
    for file in walk(out)? {
        if file.extension().is_some_and(|e| e == "html") {
            let rel = file.strip_prefix(out)?.to_path_buf();
            html.insert(rel, std::fs::read_to_string(&file)?);
        }
    }
    let ids: BTreeMap<&PathBuf, BTreeSet<String>> =
        html.iter().map(|(p, text)| (p, ids(text))).collect();
    let mut report = Report::default();
    for (page, text) in &html {
        if SKIPPED_PAGES.iter().any(|s| page == Path::new(s)) {
            continue;
        }
        report.pages += 1;
        for link in links(text) {
            match classify(&link) {
                Kind::External => {
                    report.external.insert(link);
                }
                Kind::Ignored => {}
                Kind::Relative { path, anchor } => {
                    let target = if path.is_empty() {
                        Some(page.clone())
                    } else {
                        normalize(&page.parent().unwrap_or(Path::new("")).join(&path))
                    };
                    match target {
                        Some(mut target) => {
                            report.internal += 1;
                            if out.join(&target).is_dir() {
                                target = target.join("index.html");
                            }
                            if !out.join(&target).is_file() {
                                report.errors.push(format!(
                                    "{}: {link}: no such page or file in the book",
                                    page.display()
                                ));
                            } else if let Some(anchor) = anchor {
                                let found = ids.get(&target).is_some_and(|s| s.contains(&anchor));
                                if !found {
                                    report.errors.push(format!(
                                        "{}: {link}: no element with id {anchor:?} in {}",
                                        page.display(),
                                        target.display()
                                    ));
                                }
                            }
                        }
                        // Above the book's root: a file of the repository, seen from the
                        // markdown source of this page.
                        None => {
                            let source_dir = src_dir.join(page.parent().unwrap_or(Path::new("")));
                            let in_repo = source_dir
                                .strip_prefix(repo)
                                .ok()
                                .and_then(|d| normalize(&d.join(&path)));
                            match in_repo {
                                Some(p) if repo.join(&p).exists() => {
                                    report.repository.insert(p.display().to_string());
                                }
                                _ => report.errors.push(format!(
                                    "{}: {link}: not a file of the repository",
                                    page.display()
                                )),
                            }
                        }
                    }
                }
            }
        }
    }
    for md in walk(src_dir)? {
        let rel = md.strip_prefix(src_dir)?;
        if md.extension().is_none_or(|e| e != "md") || rel == Path::new("SUMMARY.md") {
            continue;
        }
        let page = if rel.file_name().is_some_and(|n| n == "README.md") {
            rel.with_file_name("index.html")
        } else {
            rel.with_extension("html")
        };
        if !html.contains_key(&page) {
            report.errors.push(format!(
                "{}: not in SUMMARY.md, so not in the book",
                rel.display()
            ));
        }
    }
    Ok(report)
}

fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    External,
    Ignored,
    Relative {
        path: String,
        anchor: Option<String>,
    },
}

fn classify(link: &str) -> Kind {
    let lower = link.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("//") {
        return Kind::External;
    }
    if lower.starts_with("mailto:")
        || lower.starts_with("javascript:")
        || lower.starts_with("data:")
    {
        return Kind::Ignored;
    }
    let without_query = |s: &str| s.split('?').next().unwrap_or("").to_owned();
    match link.split_once('#') {
        Some((path, anchor)) => Kind::Relative {
            path: without_query(path),
            anchor: Some(anchor.to_owned()).filter(|a| !a.is_empty()),
        },
        None => Kind::Relative {
            path: without_query(link),
            anchor: None,
        },
    }
}

/// Resolves `.` and `..`; `None` when the path climbs above its start (or is absolute).
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("%20", " ")
}

/// Values of the attribute `name` in every tag of `html` (quoted with `"` or `'`).
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let needle = format!("{name}=");
    let mut rest = html;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + needle.len()..];
        // Only a whole attribute name (` href=`), not `data-href=` or text.
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        if let Some(end) = rest[1..].find(quote) {
            out.push(unescape(&rest[1..=end]));
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Every link target of a page: `href` and `src` attributes.
fn links(html: &str) -> Vec<String> {
    let mut out = attribute_values(html, "href");
    out.extend(attribute_values(html, "src"));
    out
}

/// Every `id` of a page: the targets `#anchor` may name.
fn ids(html: &str) -> BTreeSet<String> {
    attribute_values(html, "id").into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "xtask-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn attributes_are_whole_names_in_either_quote() {
        let html = r#"<a href="a.html#x">a</a> <img src='img/b.svg'> <p data-href="no">href="text"</p><a
href="c.html?v=1&amp;w=2">"#;
        assert_eq!(
            links(html),
            ["a.html#x", "c.html?v=1&w=2", "img/b.svg"].map(String::from)
        );
        assert_eq!(
            ids(r##"<h2 id="the-state"><a class="header" href="#the-state">"##),
            BTreeSet::from(["the-state".to_owned()])
        );
    }

    #[test]
    fn classify_splits_anchor_and_query() {
        assert_eq!(classify("https://example.com/x"), Kind::External);
        assert_eq!(classify("mailto:a@b"), Kind::Ignored);
        assert_eq!(
            classify("../x.html?v=1#top"),
            Kind::Relative {
                path: "../x.html".into(),
                anchor: Some("top".into())
            }
        );
        assert_eq!(
            classify("#top"),
            Kind::Relative {
                path: String::new(),
                anchor: Some("top".into())
            }
        );
        assert_eq!(normalize(Path::new("a/../b/./c")), Some("b/c".into()));
        assert_eq!(normalize(Path::new("a/../../c")), None);
    }

    /// A tiny rendered book on disk: every kind of broken link is reported, good ones are not.
    #[test]
    fn check_reports_missing_pages_anchors_repository_files_and_orphans() {
        let tmp = TempDir::new("check");
        let repo = tmp.path();
        std::fs::create_dir_all(repo.join("docs/concepts")).unwrap();
        std::fs::create_dir_all(repo.join("crates/x")).unwrap();
        std::fs::write(repo.join("crates/x/lib.rs"), "").unwrap();
        for md in ["SUMMARY.md", "intro.md", "concepts/kinds.md", "orphan.md"] {
            std::fs::write(repo.join("docs").join(md), "").unwrap();
        }
        let out = repo.join("book");
        std::fs::create_dir_all(out.join("concepts")).unwrap();
        std::fs::write(
            out.join("intro.html"),
            r##"<h1 id="intro">x</h1>
            <a href="concepts/kinds.html#server">ok</a>
            <a href="#intro">ok</a>
            <a href="https://github.com/ironcore-dev/metal-operator">listed</a>
            <a href="../crates/x/lib.rs">repo ok</a>
            <a href="../crates/x/gone.rs">repo missing</a>
            <a href="concepts/missing.html">missing page</a>
            <a href="concepts/kinds.html#nope">missing anchor</a>"##,
        )
        .unwrap();
        std::fs::write(
            out.join("concepts/kinds.html"),
            r#"<h2 id="server">s</h2><a href="../intro.html">up</a>"#,
        )
        .unwrap();
        std::fs::write(out.join("404.html"), r#"<a href="nowhere.html">x</a>"#).unwrap();

        let report = check(&out, &repo.join("docs"), repo).unwrap();
        assert_eq!(report.pages, 2);
        assert_eq!(
            report.external,
            BTreeSet::from(["https://github.com/ironcore-dev/metal-operator".to_owned()])
        );
        assert_eq!(
            report.repository,
            BTreeSet::from(["crates/x/lib.rs".to_owned()])
        );
        let errors = report.errors.join("\n");
        assert_eq!(report.errors.len(), 4, "{errors}");
        assert!(errors.contains("../crates/x/gone.rs: not a file of the repository"));
        assert!(errors.contains("concepts/missing.html: no such page"));
        assert!(errors.contains("no element with id \"nope\""));
        assert!(errors.contains("orphan.md: not in SUMMARY.md"));
    }

    /// The real book: mdBook (installed into the cache when missing) builds it and every link
    /// of every page resolves.
    #[test]
    fn book_builds_and_every_link_resolves() {
        let root = testenv::repo_root();
        let out = TempDir::new("book");
        build_and_check(&root, &out.path().join("book")).unwrap();
    }
}

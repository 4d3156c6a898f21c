//! Checks reviewers forget, run by `cargo test -p xtask`: every Rust file
//! starts with a module doc comment, and the library crates' dependency trees
//! hold no Azure SDK, no reqwest, no aws-lc-rs and no openssl.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::util::{cargo, workspace_root};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if p.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    rust_files(&p, out);
                }
            } else if name.ends_with(".rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_rust_file_has_a_module_doc() {
        let root = workspace_root();
        let mut files = Vec::new();
        for d in ["crates", "xtask/src", "tests"] {
            rust_files(&root.join(d), &mut files);
        }
        assert!(files.len() > 20, "found the sources");
        let missing: Vec<String> = files
            .iter()
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` module doc: {missing:?}"
        );
    }

    #[test]
    fn library_crates_have_no_forbidden_dependencies() {
        for krate in ["adls-rest", "llm-log-callback", "llm-log-shipper"] {
            let out = cargo()
                .args([
                    "tree",
                    "--edges",
                    "normal,build",
                    "--prefix",
                    "none",
                    "-p",
                    krate,
                ])
                .output()
                .expect("cargo tree");
            assert!(
                out.status.success(),
                "cargo tree failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let tree = String::from_utf8_lossy(&out.stdout);
            for bad in [
                "azure_core",
                "azure_storage",
                "reqwest",
                "aws-lc-rs",
                "aws-lc-sys",
                "openssl",
                "object_store",
                "opendal",
            ] {
                assert!(
                    !tree
                        .lines()
                        .any(|l| l.split_whitespace().next() == Some(bad)),
                    "{krate} depends on {bad}"
                );
            }
            assert!(
                tree.lines().any(|l| l.starts_with("ring ")),
                "{krate}: rustls uses ring"
            );
        }
    }
}

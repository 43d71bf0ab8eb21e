//! The controller's folders are layers: each may import only the layers below it, so no import
//! runs back up to the driver and no folder cycle can form.
//!
//! | layer | folder / file                | may import (of `controller`)         |
//! |-------|------------------------------|--------------------------------------|
//! | 0     | `error.rs`                   | nothing                              |
//! | 1     | `decide/`                    | `error`                              |
//! | 2     | `state/`                     | `error`, `decide`                    |
//! | 3     | `steps/`, `runtime/`         | `error`, `decide`, `state`           |
//! | 4     | `mod.rs` (the driver)        | everything                           |

use std::path::{Path, PathBuf};

fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "error" => 0,
        "decide" => 1,
        "state" => 2,
        "steps" | "runtime" => 3,
        _ => return None,
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/controller") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules of `controller` a line of code names by `crate::controller::X` (the folders use
/// no other path to each other: no `super::super`, no `use crate::{controller::…}`).
fn named_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::controller::") {
        let after = &rest[i + "crate::controller::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '{')
            .collect();
        if let Some(inner) = name.strip_prefix('{') {
            // `controller::{error::Error, state::context::Context}`
            let group = after[1..].split('}').next().unwrap_or_default();
            out.extend(
                group
                    .split(',')
                    .filter_map(|p| p.trim().split("::").next())
                    .filter(|m| !m.is_empty())
                    .map(String::from),
            );
            let _ = inner;
        } else {
            out.push(name);
        }
        rest = after;
    }
    out
}

#[test]
fn no_import_runs_up_a_layer() {
    // The one other way up, which `named_modules` would not see.
    let forbidden = ["super::super", "use crate::{"];
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut checked = 0;
    for file in files {
        let rel = file.strip_prefix(&root).expect("under root");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        let Some(own) = layer(&top) else {
            assert_eq!(top, "mod", "{} is in no layer", rel.display());
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for f in forbidden {
                assert!(!code.contains(f), "{}:{}: {f}", rel.display(), n + 1);
            }
            for m in named_modules(code) {
                checked += 1;
                if m == top {
                    continue;
                }
                let theirs = layer(&m).unwrap_or_else(|| {
                    panic!(
                        "{}:{}: imports the driver's `controller::{m}`: {line:?}",
                        rel.display(),
                        n + 1
                    )
                });
                assert!(
                    theirs < own,
                    "{}:{}: layer {own} imports `{m}` (layer {theirs}): {line:?}",
                    rel.display(),
                    n + 1
                );
            }
        }
    }
    assert!(
        checked > 30,
        "only {checked} imports seen: the parser is broken"
    );
}

#[test]
fn the_parser_sees_grouped_and_plain_imports() {
    assert_eq!(
        named_modules("use crate::controller::{error::Error, state::context::Context};"),
        ["error", "state"]
    );
    assert_eq!(
        named_modules("use crate::controller::decide::{Next, ValidationMemo};"),
        ["decide"]
    );
    assert_eq!(
        named_modules("let d = crate::controller::Error::Stale;"),
        ["Error"]
    );
    assert!(named_modules("use kube::runtime::controller::Action;").is_empty());
}

//! The layering of `core/src` (core/README.md, "Layout"): a module uses
//! only modules of lower layers (or its own). Read from the sources, so a
//! new upward import fails here.

use std::path::Path;

/// Layer of each top-level module.
const LAYERS: &[(&str, u8)] = &[
    ("registry", 0),
    ("error", 1),
    ("version", 2),
    ("codec", 2),
    ("hashing", 2),
    ("clock", 3),
    ("value", 3),
    ("key", 3),
    ("types", 4),
    ("wire", 5),
    ("buffer", 6),
    ("replica", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut bad = Vec::new();
    for path in all {
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.trim_end_matches(".rs");
        let Some(mine) = layer(top) else {
            continue; // lib.rs: the facade
        };
        let text = std::fs::read_to_string(&path).unwrap();
        // Code only: the test modules at the end may use anything.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            for (i, _) in l.match_indices("crate::") {
                let name: String = l[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if let Some(theirs) = layer(&name) {
                    if theirs > mine {
                        bad.push(format!("{}: {}", rel.display(), line.trim()));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

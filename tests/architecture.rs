//! The house keeps its shape: `src/` is a stack of rooms, each importing only rooms below it
//! (the order of `ROOMS`, which is `src/lib.rs`'s map and `docs/architecture.md`'s graph), and
//! no two files import each other, directly or round a longer circle.
//!
//! Imports are read from the code (not comments): every `crate::…` and `super::…` path, with
//! `use` groups expanded. A path to a room's `mod.rs` that names an item the `mod.rs` re-exports
//! (`pub use sub::Item`) counts as an import of `sub`. A file naming its own folder's `mod.rs`
//! (a child using its parent module) is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Rooms, lowest first.
const ROOMS: [&str; 11] =
    ["error", "streams", "nn", "policy", "algo", "robot", "bundle", "control", "store", "session", "cli"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file (`src/control/stepper.rs` → `["control", "stepper"]`; a `mod.rs`
/// is its folder's module; `lib.rs` and `main.rs` are the root).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_string()),
    }
    parts
}

/// The code of a file without comments and string literals (close enough for `use` paths).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut in_str = false;
        for c in line.chars() {
            if c == '"' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// Every `crate::…`/`super::…` path in `code`, `use` groups expanded (`a::{b, c::d}` gives
/// `a::b` and `a::c::d`).
fn paths(code: &str) -> Vec<String> {
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let boundary =
            i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if boundary && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let (p, end) = read_path(&bytes, i);
            out.extend(p);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Reads a path starting at `i`, expanding a brace group; returns the paths and where it ended.
fn read_path(b: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut prefix = String::new();
    while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == ':') {
        prefix.push(b[i]);
        i += 1;
    }
    if i < b.len() && b[i] == '{' && prefix.ends_with("::") {
        // Split the group at top-level commas.
        let (mut depth, mut item, mut items) = (0, String::new(), Vec::new());
        i += 1;
        while i < b.len() {
            match b[i] {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            item.push(b[i]);
            i += 1;
        }
        items.push(item);
        let mut out = Vec::new();
        for it in items {
            let it: String = it.chars().filter(|c| !c.is_whitespace()).collect();
            let it = it.split(" as ").next().unwrap_or("").to_string();
            if it.is_empty() || it == "self" {
                out.push(prefix.trim_end_matches("::").to_string());
            } else if it.contains('{') {
                let chars: Vec<char> = format!("{prefix}{it}").chars().collect();
                out.extend(read_path(&chars, 0).0);
            } else {
                out.push(format!("{prefix}{it}"));
            }
        }
        return (out, i);
    }
    (vec![prefix.trim_end_matches("::").to_string()], i)
}

/// The absolute module path of `path` as written in the module `here`.
fn absolute(path: &str, here: &[String], here_is_dir_module: bool) -> Vec<String> {
    let mut segs: Vec<String> = path.split("::").map(str::to_string).collect();
    let mut base: Vec<String> = match segs[0].as_str() {
        "crate" => vec![],
        _ => here.to_vec(),
    };
    if segs[0] == "super" {
        // `super` in a file module is its folder; in a folder's mod.rs, the folder's parent.
        if !here_is_dir_module || !base.is_empty() {
            base.pop();
        }
        segs.remove(0);
        while segs.first().is_some_and(|s| s == "super") {
            base.pop();
            segs.remove(0);
        }
    } else {
        segs.remove(0);
    }
    base.extend(segs);
    base
}

struct Tree {
    /// Module path → file.
    files: BTreeMap<Vec<String>, PathBuf>,
    /// For a folder module: item name → the child module it re-exports it from.
    reexports: BTreeMap<Vec<String>, BTreeMap<String, String>>,
}

impl Tree {
    /// The file a path resolves to: the longest module prefix, or a folder module's re-export.
    fn file_of(&self, path: &[String]) -> Option<Vec<String>> {
        // From the longest prefix down to the crate root (`crate::Bundle` is `lib.rs`'s re-export).
        for n in (0..=path.len()).rev() {
            let m = &path[..n];
            if self.files.contains_key(m) {
                if let (Some(item), Some(re)) = (path.get(n), self.reexports.get(m)) {
                    if let Some(child) = re.get(item) {
                        let mut c = m.to_vec();
                        c.push(child.clone());
                        if self.files.contains_key(&c) {
                            return Some(c);
                        }
                    }
                }
                return Some(m.to_vec());
            }
        }
        None
    }
}

fn tree() -> (Tree, BTreeMap<Vec<String>, String>) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut tree = Tree { files: BTreeMap::new(), reexports: BTreeMap::new() };
    let mut codes = BTreeMap::new();
    for f in files {
        let m = module_of(&f);
        if f.ends_with("main.rs") {
            continue;
        }
        let c = code(&std::fs::read_to_string(&f).unwrap());
        if f.ends_with("mod.rs") || f.ends_with("lib.rs") {
            let mut re = BTreeMap::new();
            for line in c.lines().map(str::trim).filter(|l| l.starts_with("pub use ")) {
                let body = line.trim_start_matches("pub use ").trim_end_matches(';');
                let Some((child, items)) = body.split_once("::") else { continue };
                let items = items.trim_start_matches('{').trim_end_matches('}');
                for it in items.split(',') {
                    let name = it.trim().rsplit("::").next().unwrap_or("").trim().to_string();
                    re.insert(name, child.trim().to_string());
                }
            }
            tree.reexports.insert(m.clone(), re);
        }
        tree.files.insert(m.clone(), f);
        codes.insert(m, c);
    }
    (tree, codes)
}

/// Module → the modules (files) it imports.
fn imports() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let (tree, codes) = tree();
    let mut graph = BTreeMap::new();
    for (m, c) in &codes {
        let is_dir = tree.files[m].ends_with("mod.rs") || tree.files[m].ends_with("lib.rs");
        let mut out = BTreeSet::new();
        for p in paths(c) {
            let abs = absolute(&p, m, is_dir);
            let Some(target) = tree.file_of(&abs) else { continue };
            // A module naming itself, or a child naming its own folder's root, is no edge.
            let parent = &m[..m.len().saturating_sub(1)];
            if &target == m || (target.as_slice() == parent && !is_dir) || target.is_empty() {
                continue;
            }
            out.insert(target);
        }
        graph.insert(m.clone(), out);
    }
    graph
}

#[test]
fn rooms_import_only_rooms_below_them() {
    let rank = |m: &[String]| m.first().and_then(|r| ROOMS.iter().position(|x| x == r));
    let mut wrong = Vec::new();
    for (m, deps) in imports() {
        let Some(r) = rank(&m) else {
            assert!(
                m.is_empty(),
                "{m:?} is in no room: add it to a room (and to ROOMS, lib.rs and docs/architecture.md)"
            );
            continue;
        };
        for d in deps {
            let s = rank(&d).unwrap_or_else(|| panic!("{m:?} imports {d:?}, which is in no room"));
            if s > r {
                wrong.push(format!("{} imports {}", m.join("::"), d.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that flow upward (rooms, lowest first: {ROOMS:?}):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let graph = imports();
    // Depth-first search for a back edge, reporting the circle.
    fn visit(
        m: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for d in g.get(m).into_iter().flatten() {
            match state.get(d) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == d).unwrap();
                    return Some(stack[at..].iter().chain([d]).map(|x| x.join("::")).collect());
                }
                None => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if !state.contains_key(m) {
            if let Some(circle) = visit(m, &graph, &mut state, &mut Vec::new()) {
                panic!("an import cycle: {}", circle.join(" -> "));
            }
        }
    }
}

/// The test reads what it should: known edges are found, and a made-up upward import is seen.
#[test]
fn the_import_reader_finds_known_edges() {
    let g = imports();
    let key = |s: &str| s.split("::").map(str::to_string).collect::<Vec<_>>();
    let stepper = &g[&key("control::stepper")];
    assert!(stepper.contains(&key("robot::env")), "{stepper:?}");
    assert!(stepper.contains(&key("control::supervisor")), "{stepper:?}");
    assert!(g[&key("session::train")].contains(&key("control::stepper")));
    // An item the crate root re-exports is an import of its room.
    let (tree, _) = tree();
    assert_eq!(tree.file_of(&key("Bundle")), Some(key("bundle")));
    assert_eq!(tree.file_of(&key("control::Decisions")), Some(key("control::decisions")));
    let p = paths("use crate::a::{b, c::{d, e}};\nlet x = super::f::G;");
    assert_eq!(p, ["crate::a::b", "crate::a::c::d", "crate::a::c::e", "super::f::G"]);
}

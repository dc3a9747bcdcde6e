//! The import graph of `server/src` between files has no cycles.
//!
//! Every file is parsed with `syn`; every path it names (`use` trees, and paths in types,
//! expressions and patterns) that starts at `crate`, `super` or `self`, or at a name a `use`
//! of the file bound to such a path, is resolved to the deepest file module it reaches
//! (following `pub use` re-exports, which only name things: the user of a re-exported name
//! depends on the file that defines it, not on the file that re-exports it).
//! That gives a file → file graph; a strongly connected component of more than one file is
//! a cycle and fails the test, printed with the lines that make it. A module declaration
//! (`mod x;`) is not an edge, and `#[cfg(test)]` modules count like any other code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

thread_local! {
    /// The file modules of the crate being checked (a `use child::x` in `mod.rs` is relative).
    static MODULES: std::cell::RefCell<BTreeSet<ModPath>> = Default::default();
}

/// A module path below `crate`, e.g. `["delivery", "service"]`.
type ModPath = Vec<String>;

struct File {
    module: ModPath,
    ast: syn::File,
}

fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `use` bindings of one file: bound name → absolute path (segments below `crate`).
fn use_bindings(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    base: &ModPath,
    out: &mut Vec<(String, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_bindings(&p.tree, prefix, base, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut full = prefix.clone();
            let name = n.ident.to_string();
            if name != "self" {
                full.push(name.clone());
            }
            let bound = if name == "self" {
                prefix.last().cloned().unwrap_or_default()
            } else {
                name
            };
            if let Some(abs) = absolute(&full, base, &BTreeMap::new()) {
                out.push((bound, abs));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.clone();
            full.push(r.ident.to_string());
            if let Some(abs) = absolute(&full, base, &BTreeMap::new()) {
                out.push((r.rename.to_string(), abs));
            }
        }
        syn::UseTree::Glob(_) => {
            if let Some(abs) = absolute(prefix, base, &BTreeMap::new()) {
                out.push(("*".into(), abs));
            }
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_bindings(t, prefix, base, out);
            }
        }
    }
}

/// Resolves a path written in module `base` to segments below `crate`, or `None` when it
/// leaves the crate (std, dependencies) or is a local name.
fn absolute(
    segs: &[String],
    base: &ModPath,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let first = segs.first()?;
    match first.as_str() {
        "crate" => Some(segs[1..].to_vec()),
        "self" => Some([base.clone(), segs[1..].to_vec()].concat()),
        "super" => {
            let mut b = base.clone();
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                b.pop();
                rest = &rest[1..];
            }
            Some([b, rest.to_vec()].concat())
        }
        name => aliases
            .get(name)
            .map(|abs| [abs.clone(), segs[1..].to_vec()].concat())
            .or_else(|| {
                // A child module named without `self::` (2018 paths).
                let child = [base.clone(), vec![name.to_owned()]].concat();
                MODULES
                    .with(|m| m.borrow().contains(&child))
                    .then(|| [base.clone(), segs.to_vec()].concat())
            }),
    }
}

struct Paths {
    /// The module the visitor is in (the file's, or an inline module's inside it).
    base: ModPath,
    aliases: BTreeMap<String, Vec<String>>,
    found: Vec<(Vec<String>, usize)>,
}

fn uses_of(items: &[syn::Item], base: &ModPath) -> Vec<(String, Vec<String>, bool)> {
    let mut all = Vec::new();
    for item in items {
        if let syn::Item::Use(u) = item {
            let mut out = Vec::new();
            use_bindings(&u.tree, &mut Vec::new(), base, &mut out);
            let public = matches!(u.vis, syn::Visibility::Public(_));
            all.extend(out.into_iter().map(|(n, a)| (n, a, public)));
        }
    }
    all
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let Some((_, items)) = &m.content else {
            return; // `mod x;` declares a file module: not an edge
        };
        let (base, aliases) = (self.base.clone(), self.aliases.clone());
        self.base.push(m.ident.to_string());
        for (name, abs, _) in uses_of(items, &self.base) {
            self.aliases.insert(name, abs);
        }
        syn::visit::visit_item_mod(self, m);
        (self.base, self.aliases) = (base, aliases);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(abs) = absolute(&segs, &self.base, &self.aliases) {
            let line = p
                .segments
                .first()
                .map(|s| s.ident.span().start().line)
                .unwrap_or(0);
            self.found.push((abs, line));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if matches!(u.vis, syn::Visibility::Public(_)) {
            // A re-export only names things: whoever uses the name is resolved through it
            // to the defining file, and that user holds the edge.
            return;
        }
        let mut out = Vec::new();
        use_bindings(&u.tree, &mut Vec::new(), &self.base, &mut out);
        let line = u.use_token.span.start().line;
        for (_, abs) in out {
            self.found.push((abs, line));
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside macro calls (`json!`, `format!`, tracing) are tokens: parse what
        // looks like a path so `crate::x::y` in a macro still counts.
        let tokens: Vec<String> = m
            .tokens
            .clone()
            .into_iter()
            .map(|t| t.to_string())
            .collect();
        let mut i = 0;
        while i < tokens.len() {
            if matches!(tokens[i].as_str(), "crate" | "super") {
                let mut segs = vec![tokens[i].clone()];
                let mut j = i + 1;
                while j + 1 < tokens.len() && tokens[j] == ":" {
                    // `::` arrives as two `:` puncts.
                    j += 1;
                    if tokens[j] == ":" {
                        j += 1;
                    }
                    if j < tokens.len() {
                        segs.push(tokens[j].clone());
                        j += 1;
                    }
                }
                if let Some(abs) = absolute(&segs, &self.base, &self.aliases) {
                    self.found.push((abs, 0));
                }
                i = j;
            } else {
                i += 1;
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// The file module a path lands in: its longest prefix that is a file, following `pub use`
/// re-exports of gathering (`mod.rs`/`lib.rs`) files.
fn target(
    abs: &[String],
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    depth: usize,
) -> Option<ModPath> {
    let n = (0..=abs.len())
        .rev()
        .find(|&n| modules.contains(&abs[..n].to_vec()))?;
    let m = abs[..n].to_vec();
    if depth < 8
        && let Some(next) = abs.get(n)
        && let Some(to) = reexports.get(&m).and_then(|r| r.get(next))
    {
        let followed = [to.clone(), abs[n + 1..].to_vec()].concat();
        return target(&followed, modules, reexports, depth + 1);
    }
    Some(m)
}

/// Tarjan's strongly connected components.
fn components(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct T<'a> {
        g: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        on: BTreeSet<ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn strong(t: &mut T<'_>, v: &ModPath) {
        t.index.insert(v.clone(), t.next);
        t.low.insert(v.clone(), t.next);
        t.next += 1;
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                strong(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("low");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("low");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().expect("stack");
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            t.out.push(comp);
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            strong(&mut t, v);
        }
    }
    t.out
}

type Edges = BTreeMap<(ModPath, ModPath), BTreeSet<usize>>;

fn graph_of(src: &Path) -> (BTreeMap<ModPath, BTreeSet<ModPath>>, Edges) {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    // `main.rs` is the binary, a crate of its own.
    paths.retain(|p| p.file_name().is_none_or(|n| n != "main.rs"));
    let files: Vec<File> = paths
        .iter()
        .map(|p| File {
            module: module_of(src, p),
            ast: syn::parse_file(&std::fs::read_to_string(p).expect("read")).expect("parses"),
        })
        .collect();
    let modules: BTreeSet<ModPath> = files.iter().map(|f| f.module.clone()).collect();
    MODULES.with(|m| *m.borrow_mut() = modules.clone());
    let mut aliases = BTreeMap::new();
    let mut reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for f in &files {
        let mut all = BTreeMap::new();
        for (name, abs, public) in uses_of(&f.ast.items, &f.module) {
            if public && name != "*" {
                reexports
                    .entry(f.module.clone())
                    .or_default()
                    .insert(name.clone(), abs.clone());
            }
            all.insert(name, abs);
        }
        aliases.insert(f.module.clone(), all);
    }
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    let mut edges: Edges = BTreeMap::new();
    for f in &files {
        let mut v = Paths {
            base: f.module.clone(),
            aliases: aliases[&f.module].clone(),
            found: Vec::new(),
        };
        v.visit_file(&f.ast);
        let node = graph.entry(f.module.clone()).or_default();
        for (abs, line) in v.found {
            if let Some(to) = target(&abs, &modules, &reexports, 0)
                && to != f.module
            {
                node.insert(to.clone());
                edges
                    .entry((f.module.clone(), to))
                    .or_default()
                    .insert(line);
            }
        }
    }
    (graph, edges)
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn cycles(src: &Path) -> Vec<String> {
    let (graph, edges) = graph_of(src);
    components(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let set: BTreeSet<&ModPath> = c.iter().collect();
            let mut lines = vec![format!(
                "cycle: {}",
                c.iter().map(show).collect::<Vec<_>>().join(", ")
            )];
            for ((from, to), at) in &edges {
                if set.contains(from) && set.contains(to) {
                    lines.push(format!("  {} -> {} (lines {at:?})", show(from), show(to)));
                }
            }
            lines.join("\n")
        })
        .collect()
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").expect("write");
    std::fs::write(src.join("a/mod.rs"), "pub mod x;\npub use x::Thing;\n").expect("write");
    // a::x -> b (through an alias), b -> c (inline path), c -> a::x (through a re-export).
    std::fs::write(
        src.join("a/x.rs"),
        "use crate::b;\npub struct Thing;\nfn f() { b::g(); }\n",
    )
    .expect("write");
    std::fs::write(src.join("b.rs"), "pub fn g() { crate::c::h(); }\n").expect("write");
    std::fs::write(
        src.join("c.rs"),
        "use crate::a::Thing;\npub fn h() -> Option<Thing> { None }\n",
    )
    .expect("write");
    let found = cycles(src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a::x -> b") && found[0].contains("c -> a::x"),
        "{}",
        found[0]
    );
    // Cut one edge and the checker is satisfied (the re-export alone is no cycle).
    std::fs::write(src.join("b.rs"), "pub fn g() {}\n").expect("write");
    assert!(cycles(src).is_empty(), "{:?}", cycles(src));
}

#[test]
fn server_src_has_no_import_cycles_between_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (graph, _) = graph_of(&src);
    // Positive control: the graph saw the crate's files and real edges.
    assert!(graph.len() > 40, "{} files", graph.len());
    assert!(
        graph[&vec!["delivery".to_string(), "routes".to_string()]]
            .contains(&vec!["delivery".to_string(), "service".to_string()]),
        "delivery::routes -> delivery::service must be seen"
    );
    let found = cycles(&src);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

//! `MemoryStore::parse_ls_f` (`xenstore-ls -f` output, the lab captures' format) on (a) arbitrary
//! text and (b) a generated store printed as `xenstore-ls -f` prints it.
//!
//! Invariants: never a panic; only valid xenstore paths are kept; every path `directory` lists
//! reads back or has children; a child is listed once; printed keys and values come back exactly, quotes inside values included.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xen_exporter::testing::{MemoryStore, XenStore};

/// Walks the tree from `/`, checking each listing; returns the keys seen (bounded).
fn walk(store: &MemoryStore) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(path) = pending.pop() {
        let children = store.directory(&path);
        let mut unique = children.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            children.len(),
            "{path}: listed twice: {children:?}"
        );
        for child in children {
            assert!(
                !child.is_empty()
                    && child
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"-_@".contains(&c)),
                "{path}: {child:?} is no xenstore path segment"
            );
            let full = format!("{}/{child}", path.trim_end_matches('/'));
            let has_value = store.read(&full).expect("read").is_some();
            let has_children = !store.directory(&full).is_empty();
            assert!(
                has_value || has_children,
                "{full} listed but neither key nor node"
            );
            if keys.len() < 4096 {
                keys.push(full.clone());
                pending.push(full);
            }
        }
    }
    keys
}

/// One xenstore path segment: the characters xenstored accepts (`[A-Za-z0-9_@-]`).
fn segment(u: &mut Unstructured) -> arbitrary::Result<String> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_@";
    let len = u.int_in_range(1..=8)?;
    (0..len)
        .map(|_| u.choose(CHARS).map(|&c| c as char))
        .collect()
}

/// A printable value without backslashes (xenstore-ls escapes those and control characters).
fn value(u: &mut Unstructured) -> arbitrary::Result<String> {
    let len = u.int_in_range(0..=16)?;
    (0..len)
        .map(|_| {
            u.int_in_range(0x20u8..=0x7e)
                .map(|c| if c == b'\\' { 'x' } else { c as char })
        })
        .collect()
}

fn generated(u: &mut Unstructured) -> arbitrary::Result<BTreeMap<String, String>> {
    let mut entries = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=24)? {
        let depth = u.int_in_range(1..=5)?;
        let mut path = String::new();
        for _ in 0..depth {
            path.push('/');
            path.push_str(&segment(u)?);
        }
        entries.insert(path, value(u)?);
    }
    Ok(entries)
}

fuzz_target!(|data: &[u8]| {
    // (a) Any text: no panic, a consistent tree.
    let text = String::from_utf8_lossy(data);
    walk(&MemoryStore::parse_ls_f(&text));

    // (b) A store printed as `xenstore-ls -f` does (`path = "value"`), in any order.
    let mut u = Unstructured::new(data);
    let Ok(entries) = generated(&mut u) else {
        return;
    };
    let mut lines: Vec<String> = entries
        .iter()
        .map(|(path, value)| format!("{path} = \"{value}\""))
        .collect();
    if bool::arbitrary(&mut u).unwrap_or(false) {
        lines.reverse();
    }
    let store = MemoryStore::parse_ls_f(&lines.join("\n"));
    for (path, value) in &entries {
        assert_eq!(
            store.read(path).expect("read").as_deref(),
            Some(value.as_str()),
            "{path}"
        );
        let (parent, child) = path.rsplit_once('/').expect("paths start with /");
        let listed = store.directory(parent);
        assert!(
            listed.iter().any(|c| c == child),
            "{parent} lists {listed:?}, not {child}"
        );
    }
    let keys = walk(&store);
    for key in keys {
        let is_prefix = entries
            .keys()
            .any(|path| path == &key || path.starts_with(&format!("{key}/")));
        assert!(is_prefix, "{key} was never printed");
    }
});

//! Embeds the admin UI (`admin/dist`, built by Vite) into the binary: generates a table of
//! `(path, include_bytes!(..))`. A missing or empty `admin/dist` gives an empty table (the
//! server then serves a placeholder page); any change under it rebuilds the table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../admin/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut out = String::from("/// The files of admin/dist: (path relative to it, contents).\npub static FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),").expect("write to a String");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("admin_assets.rs");
    std::fs::write(dest, out).expect("write admin_assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path.clone()).to_string_lossy().into_owned();
            files.push((rel, abs));
        }
    }
}

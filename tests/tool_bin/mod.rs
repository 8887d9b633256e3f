//! Finds the binaries of the `kafka-oss-sink-tools` package (`loadgen`, `bench-consume`,
//! `bench-watch`) for the end-to-end tests of the root package. Cargo builds a test target's own
//! package's binaries only, so these come from the same target directory as the connector:
//! `cargo test --workspace` (what `scripts/test` runs) builds them, and so does
//! `cargo build -p kafka-oss-sink-tools`. A missing binary, or one older than the sources it is
//! built from, fails the test with the command to run instead of measuring old code.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The path of the tools binary `name`, next to the connector's.
pub fn tool(name: &str) -> PathBuf {
    let connector = Path::new(env!("CARGO_BIN_EXE_kafka-oss-sink"));
    let path = connector.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let build = "run `cargo build -p kafka-oss-sink-tools` (or `cargo test --workspace`) first";
    let Ok(built) = std::fs::metadata(&path).and_then(|meta| meta.modified()) else {
        panic!("{} is missing: {build}", path.display());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        "tools/src",
        "tools/Cargo.toml",
        "actors/src",
        "actors/Cargo.toml",
    ];
    if let Some(newer) = sources
        .iter()
        .find_map(|source| newer_than(&root.join(source), built))
    {
        panic!(
            "{} is older than {}: {build}",
            path.display(),
            newer.display()
        );
    }
    path
}

/// A file at or under `path` modified after `time`. Unit-test files (`tests.rs`, `*_tests.rs`)
/// are not part of a binary: cargo does not rebuild it when only they change.
fn newer_than(path: &Path, time: SystemTime) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    if name == "tests.rs" || name.ends_with("_tests.rs") {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_dir() {
        return std::fs::read_dir(path)
            .ok()?
            .flatten()
            .find_map(|entry| newer_than(&entry.path(), time));
    }
    (meta.modified().ok()? > time).then(|| path.to_owned())
}

//! The independent reader of the format tests: `scripts/read-objects.py` under a Python that has
//! `pyarrow` and `zstandard` (`scripts/test` installs them into a venv in the cache,
//! `install_python_readers` in `scripts/lib.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A Python with the reader's modules: `KOS_PYTHON`, the cache's venv, or `python3`. `Err` (the
/// reason to skip) only when there is no Python at all; a Python without the modules fails the
/// test with how to install them.
pub fn python_reader() -> Result<PathBuf, String> {
    let cache = std::env::var_os("KOS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/kafka-oss-sink"))
        });
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(python) = std::env::var_os("KOS_PYTHON") {
        candidates.push(python.into());
    }
    if let Some(cache) = cache {
        candidates.push(cache.join("py-readers/bin/python"));
    }
    candidates.push("python3".into());
    let mut found = Vec::new();
    for python in candidates {
        let Ok(output) = Command::new(&python)
            .args(["-c", "import pyarrow, zstandard"])
            .output()
        else {
            continue;
        };
        if output.status.success() {
            return Ok(python);
        }
        found.push(python.display().to_string());
    }
    if found.is_empty() {
        return Err(
            "no Python found (KOS_PYTHON, the cache's py-readers venv, python3): the \
                    format tests need an independent reader"
                .to_owned(),
        );
    }
    panic!(
        "{} lack pyarrow or zstandard: run scripts/test (it installs them into the cache's \
         py-readers venv), or `pip install pyarrow zstandard` and set KOS_PYTHON",
        found.join(", ")
    );
}

/// The records of `files` as `scripts/read-objects.py` reads them (one JSON value each).
pub fn read_objects(python: &Path, files: &[PathBuf]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read-objects.py");
    let output = Command::new(python)
        .arg(script)
        .args(files)
        .output()
        .expect("running scripts/read-objects.py");
    assert!(
        output.status.success(),
        "read-objects.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

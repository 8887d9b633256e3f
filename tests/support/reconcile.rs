//! Running `kafka-oss-sink reconcile` against a stack: the exactly-once verifier of the crash
//! tests (tests/reconcile.rs tests the command itself).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{Stack, ACCESS_KEY_ID};

/// A reconcile run: exit code and outputs.
pub struct Reconciled {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reconciled {
    /// The report of a `--json` run.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}\n{}", self.stdout, self.stderr))
    }
}

impl Stack {
    /// Runs `kafka-oss-sink reconcile --config <config> <args>` with this stack's credentials;
    /// asserts that the secret is printed nowhere.
    pub fn reconcile(&self, config: &Path, args: &[&str]) -> Reconciled {
        let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
            .args(["reconcile", "--config"])
            .arg(config)
            .args(args)
            .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", &self.secret)
            .output()
            .expect("running reconcile");
        let run = Reconciled {
            code: output.status.code().expect("reconcile exits with a code"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        };
        for text in [&run.stdout, &run.stderr] {
            assert!(
                !text.contains(&self.secret),
                "the secret is printed:\n{text}"
            );
        }
        run
    }
}

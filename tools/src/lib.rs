//! Load-testing and benchmark tools for kafka-oss-sink, kept out of the product binary. Three
//! binaries, each a thin `main` over a module here:
//!
//! - `loadgen` ([`loadgen`]): a repeatable load generator;
//! - `bench-consume` ([`consume`]): the baseline, a bare rdkafka consumer with the connector's
//!   consumer settings draining a topic's backlog;
//! - `bench-watch` ([`watch`], [`chart`]): end-to-end measurement of a running connector through
//!   the bucket, with an exactly-once check.
//!
//! They reuse the product's code where the two must agree: the object-key parser
//! (`actors::object_key`), the bucket listing (`actors::store::list_objects`) and the consumer's
//! base configuration (`actors::kafka::consumer_base_config`). `scripts/bench` drives them on the
//! local stack; `docs/benchmarking.md` describes them.

pub mod chart;
pub mod consume;
pub mod loadgen;
pub mod measure;
pub mod watch;

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

/// Parses `name=value` command-line pairs (librdkafka properties, `--other-pid`).
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not name=value")),
    }
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
    std::fs::write(path, text + "\n").map_err(|error| format!("{}: {error}", path.display()))
}

/// Prints a tool's summary, writes its JSON; exit 0 when `print` says the run was good, 1 when
/// not, 3 when it could not run.
pub fn report<T: Serialize>(
    outcome: Result<T, String>,
    json: Option<&Path>,
    print: impl FnOnce(&T) -> bool,
) -> ExitCode {
    match outcome {
        Ok(summary) => {
            let good = print(&summary);
            if let Some(path) = json {
                if let Err(error) = write_json(path, &summary) {
                    eprintln!("error: {error}");
                    return ExitCode::from(3);
                }
            }
            if good {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse() {
        assert_eq!(
            parse_property("linger.ms=5").unwrap(),
            ("linger.ms".into(), "5".into())
        );
        assert!(parse_property("nope").is_err());
    }
}

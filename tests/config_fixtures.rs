//! The config file as a user meets it: `kafka-oss-sink check --config FILE` on every fixture.
//!
//! - `tests/fixtures/config/invalid/NAME.toml`: `check` exits 2 and prints to stderr exactly the
//!   lines in `NAME.expected` (the problem count, then one `error:` line per problem, each naming
//!   its key and rule).
//! - `tests/fixtures/config/valid/NAME.toml`, and the shipped `config/*.toml` (whose expected
//!   output is `tests/fixtures/config/valid/<file stem>.expected`): `check` exits 0 and prints
//!   exactly the effective config in `NAME.expected`; that output is itself a valid config that
//!   prints the same.
//!
//! Expected files are exact, so any change to a message, to the order of problems or to the
//! rendering shows up here. To add a case, write the `.toml`, run this test with
//! `BLESS_CONFIG_FIXTURES=1` to write its `.expected`, and read what it wrote.
//!
//! No output may contain a secret: the credential variables' values, or the values the fixtures
//! mark as secret (they contain [`SECRET_MARKERS`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY_ID: &str = "fixture-key-id-value";
const KEY_SECRET: &str = "fixture-key-secret-value";
/// Substrings of every secret value used in the fixtures.
const SECRET_MARKERS: &[&str] = &[
    "Sup3rS3cret",
    "SecretValue",
    "BEGIN PRIVATE KEY",
    "pass-value",
    "secret-value",
    KEY_ID,
    KEY_SECRET,
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `.toml` files of `dir` (relative to the manifest directory), sorted.
fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join(dir))
        .unwrap_or_else(|error| panic!("{dir}: {error}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .map(|path| Path::new(dir).join(path.file_name().unwrap()))
        .collect();
    files.sort();
    files
}

/// `check --config PATH` run from the manifest directory (so the path it prints is relative),
/// with credentials in the environment and no other credential variable.
fn check(path: &Path, with_credentials: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"));
    command
        .current_dir(manifest_dir())
        .args(["check", "--config"])
        .arg(path);
    for name in [
        "OSS_ACCESS_KEY_ID",
        "OSS_ACCESS_KEY_SECRET",
        "OSS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        // The other sources' variables (`auto` would pick them).
        "ALIBABA_CLOUD_ECS_METADATA",
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    ] {
        command.env_remove(name);
    }
    if with_credentials {
        command
            .env("OSS_ACCESS_KEY_ID", KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", KEY_SECRET);
    }
    command.output().expect("run kafka-oss-sink check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("check prints UTF-8")
}

fn assert_no_secret(what: &str, output: &str) {
    for marker in SECRET_MARKERS {
        assert!(
            !output.contains(marker),
            "{what} shows a secret ({marker}):\n{output}"
        );
    }
}

/// Compares `actual` with the expected file, or writes it when blessing. Returns a failure text.
fn compare(expected_path: &Path, actual: &str) -> Option<String> {
    let path = manifest_dir().join(expected_path);
    if std::env::var_os("BLESS_CONFIG_FIXTURES").is_some() {
        std::fs::write(&path, actual).unwrap();
        return None;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(expected) => expected,
        Err(error) => return Some(format!("{}: {error}", expected_path.display())),
    };
    (expected != actual).then(|| {
        format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            expected_path.display()
        )
    })
}

fn expected_path(dir: &str, config: &Path) -> PathBuf {
    let stem = config.file_stem().unwrap().to_string_lossy();
    Path::new(dir).join(format!("{stem}.expected"))
}

/// Each invalid fixture fails `check` with exactly its expected problems, and nothing else.
#[test]
fn invalid_fixtures_print_their_expected_problems() {
    let dir = "tests/fixtures/config/invalid";
    let fixtures = toml_files(dir);
    assert!(fixtures.len() >= 20, "{fixtures:?}");
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let output = check(fixture, true);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}:\n{stderr}",
            fixture.display()
        );
        assert_eq!(stdout, "", "{}: nothing on stdout", fixture.display());
        assert_no_secret(&fixture.display().to_string(), &stderr);
        failures.extend(compare(&expected_path(dir, fixture), &stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each valid fixture and each shipped config passes `check`, which prints exactly the expected
/// effective config; that output is a config that passes `check` and prints the same again.
#[test]
fn valid_fixtures_and_shipped_configs_print_their_effective_config() {
    let dir = "tests/fixtures/config/valid";
    let mut configs = toml_files(dir);
    let shipped = toml_files("config");
    assert!(
        shipped.iter().any(|p| p.ends_with("connector.toml"))
            && shipped.iter().any(|p| p.ends_with("quickstart.toml")),
        "{shipped:?}"
    );
    configs.extend(shipped);
    let mut stems: Vec<_> = configs.iter().map(|p| p.file_stem().unwrap()).collect();
    stems.sort();
    stems.dedup();
    assert_eq!(
        stems.len(),
        configs.len(),
        "fixture names must differ from config/ names"
    );

    let scratch = std::env::temp_dir().join(format!("config-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    for config in &configs {
        let output = check(config, true);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{}:\n{stderr}", config.display());
        assert_eq!(stderr, "", "{}", config.display());
        assert_no_secret(&config.display().to_string(), &stdout);
        let header = format!("# {}: valid\n", config.display());
        assert!(stdout.starts_with(&header), "{stdout}");
        failures.extend(compare(&expected_path(dir, config), &stdout));

        // The effective config parses back to itself.
        let effective = &stdout[header.len()..];
        let again = scratch.join(config.file_name().unwrap());
        std::fs::write(&again, effective).unwrap();
        let output = check(&again, true);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let reprinted = text(&output.stdout);
        assert_eq!(
            reprinted.split_once('\n').map(|(_, rest)| rest),
            Some(effective),
            "{} does not round-trip",
            config.display()
        );
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every expected file belongs to a fixture (or a shipped config), so none is left stale.
#[test]
fn every_expected_file_has_its_config() {
    for (dir, others) in [
        ("tests/fixtures/config/invalid", None),
        ("tests/fixtures/config/valid", Some("config")),
    ] {
        for entry in std::fs::read_dir(manifest_dir().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".expected") {
                let toml = format!("{stem}.toml");
                let found = path.with_file_name(&toml).exists()
                    || others.is_some_and(|o| manifest_dir().join(o).join(&toml).exists());
                assert!(found, "{dir}/{name} has no {toml}");
            } else {
                assert!(
                    name.ends_with(".toml"),
                    "{dir}/{name}: only .toml and .expected files"
                );
            }
        }
    }
}

/// `check` reports the credential variables together with the file's problems.
#[test]
fn check_reports_missing_credential_variables_with_the_file_problems() {
    let output = check(
        Path::new("tests/fixtures/config/invalid/name-missing.toml"),
        false,
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr),
        "tests/fixtures/config/invalid/name-missing.toml: 2 problem(s)\n  \
         error: `name`: required key is missing\n  \
         error: `OSS_ACCESS_KEY_ID`: not set; set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET \
         (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) in the environment, or choose another \
         source in [sink.credentials]\n"
    );

    let output = check(Path::new("tests/fixtures/config/valid/minimal.toml"), false);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stdout), "");
    assert!(
        text(&output.stderr)
            .starts_with("tests/fixtures/config/valid/minimal.toml: 1 problem(s)\n"),
        "{}",
        text(&output.stderr)
    );
}

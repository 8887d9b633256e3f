//! The shipped deployment files (`deploy/`), checked without a cluster: the Kubernetes manifests
//! parse and hang together (selectors, ports, the config mounted where the container reads it, the admin token file from a mounted Secret),
//! the probes use `/healthz` and `/readyz` on the admin port of the shipped config, the grace
//! periods (Kubernetes and systemd) exceed `drain_timeout_ms + sink.request_timeout_ms` of the
//! configs they run, the PrometheusRule holds exactly `grafana/alerts.yml`, and the Dockerfile
//! builds and runs the right binary as a non-root user.
//!
//! After changing `grafana/alerts.yml`, regenerate the PrometheusRule with
//! `KOS_WRITE_DEPLOY=1 cargo test --test deploy`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a YAML file.
fn documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap_or_else(|e| panic!("{path}: {e}")))
        .filter(|value| !value.is_null())
        .collect()
}

/// The one document of `deploy/kubernetes/<file>`, which must be of `kind`.
fn manifest(file: &str, kind: &str) -> Value {
    let mut docs = documents(&format!("deploy/kubernetes/{file}"));
    assert_eq!(docs.len(), 1, "{file}: one document");
    let doc = docs.remove(0);
    assert_eq!(doc["kind"].as_str(), Some(kind), "{file}");
    assert!(doc["apiVersion"].as_str().is_some(), "{file}: apiVersion");
    assert_eq!(
        doc["metadata"]["name"].as_str(),
        Some("kafka-oss-sink"),
        "{file}"
    );
    doc
}

/// The effective config of `path` as `kafka-oss-sink check` prints it (defaults filled in), after
/// checking that it is valid.
fn effective_config(path: &Path) -> toml::Table {
    let output = Command::new(env!("CARGO_BIN_EXE_kafka-oss-sink"))
        .args(["check", "--config"])
        .arg(path)
        .env("OSS_ACCESS_KEY_ID", "deploy-test-id")
        .env("OSS_ACCESS_KEY_SECRET", "deploy-test-secret")
        .output()
        .expect("run kafka-oss-sink check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} is not valid:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.parse().expect("check prints TOML")
}

/// The config in the ConfigMap, written out for `check`.
fn configmap_config() -> (PathBuf, toml::Table) {
    let configmap = manifest("configmap.yaml", "ConfigMap");
    let text = configmap["data"]["connector.toml"]
        .as_str()
        .expect("connector.toml in the ConfigMap");
    // One file per test thread: the tests run in parallel.
    let thread = format!("{:?}", std::thread::current().id());
    let file = format!(
        "deploy-configmap-{}.toml",
        thread.replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&path, text).unwrap();
    let config = effective_config(&path);
    (path, config)
}

fn int(config: &toml::Table, path: &str) -> i64 {
    let mut value = config
        .get(path.split('.').next().unwrap())
        .unwrap_or_else(|| panic!("{path}"));
    for part in path.split('.').skip(1) {
        value = &value[part];
    }
    value.as_integer().unwrap_or_else(|| panic!("{path}"))
}

/// What a stop may take: the drain, then the uploads already sent (a revocation waits for both).
fn stop_budget_seconds(config: &toml::Table) -> f64 {
    (int(config, "drain_timeout_ms") + int(config, "sink.request_timeout_ms")) as f64 / 1000.0
}

#[test]
fn kubernetes_manifests_parse_and_the_kustomization_lists_them() {
    let kustomization = &documents("deploy/kubernetes/kustomization.yaml")[0];
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for (file, kind) in [
        ("configmap.yaml", "ConfigMap"),
        ("deployment.yaml", "Deployment"),
        ("service.yaml", "Service"),
        ("poddisruptionbudget.yaml", "PodDisruptionBudget"),
        ("servicemonitor.yaml", "ServiceMonitor"),
        ("prometheusrule.yaml", "PrometheusRule"),
    ] {
        manifest(file, kind);
        assert!(resources.contains(&file), "kustomization lacks {file}");
        assert!(root().join("deploy/kubernetes").join(file).is_file());
    }
    // The example Secret is documentation, never applied with the rest.
    let secret = &documents("deploy/kubernetes/secret.example.yaml")[0];
    assert_eq!(secret["kind"], "Secret");
    assert!(!resources.contains(&"secret.example.yaml"));
    for secret in documents("deploy/kubernetes/secret.example.yaml") {
        assert_eq!(secret["kind"], "Secret");
    }
}

#[test]
fn deployment_runs_replicas_of_one_connector_with_probes_on_the_admin_port() {
    let (config_path, config) = configmap_config();
    let admin = config["admin"]["address"].as_str().unwrap();
    let port: i64 = admin.rsplit_once(':').unwrap().1.parse().unwrap();
    assert!(
        admin.starts_with("0.0.0.0:") || admin.starts_with("[::]:"),
        "probes from the kubelet need a non-loopback admin address, got {admin}"
    );
    assert_eq!(config["admin"]["enabled"].as_bool(), Some(true));

    let deployment = manifest("deployment.yaml", "Deployment");
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in deployment["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&labels[key.as_str().unwrap()], value, "selector vs labels");
    }
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    // The admin port is the config's, by name, and the probes use it.
    let ports = container["ports"].as_sequence().unwrap();
    let admin_port = ports
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port");
    assert_eq!(admin_port["containerPort"].as_i64(), Some(port));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        let probe_port = &get["port"];
        assert!(
            probe_port.as_str() == Some("admin") || probe_port.as_i64() == Some(port),
            "{probe} port {probe_port:?}"
        );
    }

    // One config for every replica (so one consumer group), mounted where the args read it.
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert!(args.contains(&"run"), "{args:?}");
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| config_arg.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the config's directory is mounted");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["configMap"]["name"], "kafka-oss-sink");
    assert!(config_arg.ends_with("/connector.toml"), "{config_arg}");
    assert!(config.get("name").is_some(), "{}", config_path.display());

    // Credentials from the Secret; no secret in the manifests themselves.
    let secret_ref = &container["envFrom"][0]["secretRef"]["name"];
    assert_eq!(secret_ref, "kafka-oss-sink-credentials");
    let secret = &documents("deploy/kubernetes/secret.example.yaml")[0];
    assert_eq!(secret["metadata"]["name"], *secret_ref);
    for key in ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"] {
        assert!(secret["stringData"][key].as_str().is_some(), "{key}");
    }

    // The non-loopback admin address needs admin.token_file (check refuses the config
    // otherwise): the file is the key of a mounted Secret that secret.example.yaml shows.
    let token_file = config["admin"]["token_file"]
        .as_str()
        .expect("admin.token_file in the ConfigMap's config");
    let (directory, key) = token_file.rsplit_once('/').unwrap();
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(directory))
        .unwrap_or_else(|| panic!("{directory} (admin.token_file's directory) is not mounted"));
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let secret_name = volume["secret"]["secretName"]
        .as_str()
        .expect("admin.token_file comes from a Secret");
    let token_secret = documents("deploy/kubernetes/secret.example.yaml")
        .into_iter()
        .find(|doc| doc["kind"] == "Secret" && doc["metadata"]["name"] == secret_name)
        .unwrap_or_else(|| panic!("secret.example.yaml lacks the Secret {secret_name}"));
    assert!(
        token_secret["stringData"][key].as_str().is_some(),
        "the Secret {secret_name} has no key {key}"
    );
    // Readable by the connector's group (it runs as a non-root user).
    assert_eq!(
        pod["securityContext"]["fsGroup"],
        pod["securityContext"]["runAsGroup"]
    );

    // Not root.
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert!(pod["securityContext"]["runAsUser"].as_i64().unwrap() > 0);

    // The grace period covers the drain and the uploads already sent.
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap() as f64;
    let budget = stop_budget_seconds(&config);
    assert!(
        grace > budget,
        "terminationGracePeriodSeconds {grace} must exceed drain_timeout_ms + sink.request_timeout_ms ({budget} s)"
    );
}

#[test]
fn service_and_servicemonitor_expose_the_admin_port() {
    let deployment = manifest("deployment.yaml", "Deployment");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let service = manifest("service.yaml", "Service");
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &pod_labels[key.as_str().unwrap()],
            value,
            "service selector"
        );
    }
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "admin");
    assert_eq!(port["targetPort"], "admin");
    let (_, config) = configmap_config();
    let admin = config["admin"]["address"].as_str().unwrap();
    assert_eq!(
        port["port"].as_i64().map(|p| p.to_string()).as_deref(),
        admin.rsplit_once(':').map(|(_, p)| p)
    );

    let monitor = manifest("servicemonitor.yaml", "ServiceMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key.as_str().unwrap()], value);
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert_eq!(endpoint["path"], "/metrics");
    // The job label is the Service's name, which the alerts' `up{job=~"kafka-oss-sink.*"}` needs.
    assert!(read("grafana/alerts.yml").contains(r#"up{job=~"kafka-oss-sink.*"}"#));
}

/// The PrometheusRule's text: a header, then `grafana/alerts.yml` without its comment header,
/// indented under `spec:`.
fn prometheus_rule_text() -> String {
    let alerts = read("grafana/alerts.yml");
    let body = &alerts[alerts.find("groups:").expect("groups:")..];
    let mut text = String::from(
        "# Generated from grafana/alerts.yml (tests/deploy.rs checks that they match; regenerate with\n\
         # `KOS_WRITE_DEPLOY=1 cargo test --test deploy`). Your Prometheus's ruleSelector may ask\n\
         # for a label (e.g. `release: prometheus`): add it under metadata.labels.\n\
         apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: kafka-oss-sink\n  labels:\n    app.kubernetes.io/name: kafka-oss-sink\n\
         spec:\n",
    );
    for line in body.lines() {
        if line.is_empty() {
            text.push('\n');
        } else {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

#[test]
fn prometheus_rule_holds_the_shipped_alerts() {
    let path = "deploy/kubernetes/prometheusrule.yaml";
    if std::env::var_os("KOS_WRITE_DEPLOY").is_some() {
        std::fs::write(root().join(path), prometheus_rule_text()).unwrap();
    }
    let rule = manifest("prometheusrule.yaml", "PrometheusRule");
    let alerts = &documents("grafana/alerts.yml")[0];
    assert_eq!(
        rule["spec"], *alerts,
        "{path} differs from grafana/alerts.yml: regenerate it with KOS_WRITE_DEPLOY=1 cargo test --test deploy"
    );
    assert!(!alerts["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .is_empty());
}

/// `Key=value` lines of a systemd unit (the last one wins, as in systemd).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .next_back()
}

#[test]
fn systemd_unit_drains_on_sigterm_and_restarts_on_failure() {
    let unit = read("deploy/systemd/kafka-oss-sink@.service");
    assert_eq!(unit_value(&unit, "KillSignal"), Some("SIGTERM"));
    assert_eq!(unit_value(&unit, "Restart"), Some("on-failure"));
    // Exit 2 (invalid config or credentials) is not fixed by a restart.
    assert_eq!(unit_value(&unit, "RestartPreventExitStatus"), Some("2"));
    let env_file = unit_value(&unit, "EnvironmentFile").expect("EnvironmentFile");
    assert!(env_file.starts_with("/etc/kafka-oss-sink/"), "{env_file}");
    let user = unit_value(&unit, "User").expect("User");
    assert!(user != "root" && user != "0", "{user}");
    let exec = unit_value(&unit, "ExecStart").unwrap();
    assert!(
        exec.starts_with("/usr/local/bin/kafka-oss-sink ") && exec.contains(" run --config "),
        "{exec}"
    );

    // TimeoutStopSec in plain seconds, above the stop budget of the shipped configs.
    let timeout: f64 = unit_value(&unit, "TimeoutStopSec")
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    let shipped = effective_config(&root().join("config/connector.toml"));
    let (_, configmap) = configmap_config();
    for config in [&shipped, &configmap] {
        let budget = stop_budget_seconds(config);
        assert!(
            timeout > budget,
            "TimeoutStopSec {timeout} must exceed drain_timeout_ms + sink.request_timeout_ms ({budget} s)"
        );
    }
}

#[test]
fn dockerfile_builds_the_binary_and_runs_it_as_non_root() {
    let dockerfile = read("deploy/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .collect();
    let froms: Vec<&str> = instructions
        .iter()
        .filter(|line| line.starts_with("FROM "))
        .copied()
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"), "{}", froms[0]);
    assert!(froms[1].contains("-slim"), "slim runtime: {}", froms[1]);

    // The builder's Rust is at least the workspace's rust-version.
    let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
    let rust_version = cargo["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let image = froms[0].split_whitespace().nth(1).unwrap();
    let version = image
        .strip_prefix("rust:")
        .and_then(|tag| tag.split('-').next())
        .expect("rust:<version> builder");
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        parse(version) >= parse(rust_version),
        "{image} < {rust_version}"
    );

    // It builds, copies and runs the package's binary.
    let bin = env!("CARGO_BIN_EXE_kafka-oss-sink");
    let bin_name = Path::new(bin).file_name().unwrap().to_str().unwrap();
    assert!(dockerfile.contains(&format!("--bin {bin_name}")));
    assert!(dockerfile.contains(&format!("target/release/{bin_name}")));
    let entrypoint = instructions
        .iter()
        .find(|line| line.starts_with("ENTRYPOINT "))
        .unwrap();
    assert!(
        entrypoint.contains(&format!("/usr/local/bin/{bin_name}\"")),
        "{entrypoint}"
    );
    let copy = instructions
        .iter()
        .find(|line| line.starts_with("COPY --from=build"))
        .unwrap();
    assert!(
        copy.ends_with(&format!("/usr/local/bin/{bin_name}")),
        "{copy}"
    );

    // Non-root: the last USER is a non-zero uid, the one the Deployment runs as.
    let user = instructions
        .iter()
        .rev()
        .find(|line| line.starts_with("USER "))
        .expect("USER");
    let uid: i64 = user[5..].split(':').next().unwrap().trim().parse().unwrap();
    assert!(uid > 0);
    let deployment = manifest("deployment.yaml", "Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"].as_i64(),
        Some(uid)
    );
    assert!(instructions.contains(&"STOPSIGNAL SIGTERM"));
    assert!(instructions.contains(&"EXPOSE 9464"));
}

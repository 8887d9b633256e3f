//! kafka-oss-sink: copies a Kafka topic into an Alibaba Cloud OSS or S3-compatible bucket.
//!
//! Exit codes: 0 clean shutdown (everything buffered stored and committed); 1 shutdown with data
//! left uncommitted (drain deadline passed) or a fatal consumer error; 2 invalid configuration or
//! credentials; 3 the bucket or the topic could not be reached at start, or the admin address
//! could not be bound. `reconcile` exits 1 when it finds missing, duplicated, overlapping or
//! foreign objects, and 3 when it cannot read the bucket, the topic or the error topics.

mod admin;
mod allocator;
mod config;
mod import_connect;
mod logging;
mod partition_command;
mod reconcile;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;

use actors::error::ErrorCode;
use actors::pipeline::{self, RunOutcome};
use actors::status::StatusBoard;
use clap::{Parser, Subcommand, ValueEnum};
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "kafka-oss-sink",
    version,
    about = "Copies a Kafka topic into an Alibaba Cloud OSS or S3-compatible bucket"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the connector until SIGINT or SIGTERM.
    Run {
        /// The connector's TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the config file and the credential variables without connecting to anything;
    /// print every problem at once, or the effective config (secrets redacted).
    Check {
        #[arg(long)]
        config: PathBuf,
        /// Also probe the bucket: read, write, list, delete, conditional create and checksums
        /// under the key prefix (what `run` checks at start-up), and print what works.
        #[arg(long)]
        probe: bool,
    },
    /// Resume a PAUSED or FAILED partition of the running connector (through its admin address):
    /// held uploads are retried and a record that failed conversion goes to the dead-letter topic.
    Resume {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        partition: i32,
    },
    /// Pause a partition of the running connector (through its admin address).
    Pause {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        partition: i32,
    },
    /// Send one test record to the config's source topic (the product page's "Send Message"),
    /// wait for the broker's acknowledgement and print its partition and offset.
    Send {
        #[arg(long)]
        config: PathBuf,
        /// Partition to send to; the producer's partitioner picks one when omitted.
        #[arg(long)]
        partition: Option<i32>,
        /// Record key (UTF-8); no key when omitted.
        #[arg(long)]
        key: Option<String>,
        /// Record value (UTF-8).
        #[arg(long)]
        value: String,
        /// How long to wait for the acknowledgement, in milliseconds.
        #[arg(long, default_value_t = 30000)]
        timeout_ms: u64,
    },
    /// Compare the bucket with the topic and the group's committed offsets: print missing and
    /// duplicated offsets, overlapping and foreign objects; exit 1 if there is any.
    Reconcile {
        #[arg(long)]
        config: PathBuf,
        /// Also read every object's body and the topic's records: exact offsets per object,
        /// offsets the broker no longer has, objects whose records are not the topic's.
        #[arg(long)]
        deep: bool,
        /// Look for missing offsets from this offset (every partition) instead of each
        /// partition's low watermark.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        from_offset: Option<i64>,
        /// Do not report objects without kos-format metadata (written by a version before
        /// object metadata) as foreign; their offsets count either way.
        #[arg(long)]
        accept_unlabelled: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the config equivalent to a Kafka Connect S3 sink config (Confluent's
    /// S3SinkConnector, the JSON posted to Connect's REST API), with what cannot be mapped.
    ImportConnect {
        /// The connector's JSON: `{"name": .., "config": {..}}` or the bare config map.
        file: PathBuf,
    },
}

/// The process's exit codes (README "Running it").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Clean stop: everything buffered is stored and committed; or a command succeeded.
    Clean = 0,
    /// Stopped with records not stored before the drain deadline (not committed, read again
    /// next time), a fatal consumer error, or a refused operator command; `reconcile` found
    /// missing, duplicated, overlapping or foreign objects.
    Failed = 1,
    /// Invalid config or credential variables.
    Invalid = 2,
    /// The bucket, the topic, the Kafka-side resources or the admin address could not be used
    /// at start; `reconcile` could not read the bucket, the topic or the error topics.
    Unreachable = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    allocator::configure();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, probe } => check(&config, probe),
        Command::ImportConnect { file } => import_connect(&file),
        Command::Run { config } => run(&config, cli.log_format),
        Command::Resume { config, partition } => partition_command(&config, partition, "resume"),
        Command::Pause { config, partition } => partition_command(&config, partition, "pause"),
        Command::Send {
            config,
            partition,
            key,
            value,
            timeout_ms,
        } => send_one(&config, partition, key.as_deref(), &value, timeout_ms),
        Command::Reconcile {
            config,
            deep,
            from_offset,
            accept_unlabelled,
            json,
        } => reconcile(
            &config,
            reconcile::Options {
                deep,
                from_offset,
                accept_unlabelled,
                json,
            },
        ),
    }
}

fn import_connect(path: &std::path::Path) -> ExitCode {
    let imported = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|json| import_connect::import(&json, &config::accepts_key));
    match imported {
        Ok(imported) => {
            print!("{}", imported.toml);
            if !imported.pending.is_empty() {
                eprintln!(
                    "{} key(s) written as comments, they need format support: {}",
                    imported.pending.len(),
                    imported.pending.join(", ")
                );
            }
            if !imported.unmapped.is_empty() {
                let keys: Vec<&str> = imported.unmapped.iter().map(|(k, _)| k.as_str()).collect();
                eprintln!(
                    "{} Connect key(s) not mapped (reasons at the end of the output): {}",
                    keys.len(),
                    keys.join(", ")
                );
            }
            Exit::Clean.into()
        }
        Err(error) => {
            eprintln!("error: {error}");
            Exit::Invalid.into()
        }
    }
}

fn reconcile(path: &std::path::Path, options: reconcile::Options) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let credentials = match config.credentials(|name| std::env::var(name).ok()) {
        Ok(credentials) => credentials,
        Err(problem) => {
            eprintln!("error: {problem}");
            return Exit::Invalid.into();
        }
    };
    if let Some(problem) = config.missing_kafka_secret() {
        eprintln!("error: {problem}");
        return Exit::Invalid.into();
    }
    let settings = config.into_settings(credentials);
    match reconcile::run(&settings, options) {
        Ok(outcome) => {
            print!("{}", outcome.output);
            if outcome.clean {
                Exit::Clean.into()
            } else {
                Exit::Failed.into()
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            Exit::Unreachable.into()
        }
    }
}

/// Loads the config file, or prints every problem in it and gives the exit code (2).
fn load_or_report(path: &std::path::Path) -> Result<config::ConnectorConfig, ExitCode> {
    config::load_config(path).map_err(|errors| {
        eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
        for problem in &errors.0 {
            eprintln!("  error: {problem}");
        }
        Exit::Invalid.into()
    })
}

fn partition_command(path: &std::path::Path, partition: i32, action: &str) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let Some(address) = config.admin_address() else {
        eprintln!("error: admin.enabled is false in {}: the connector has no admin address to send the command to", path.display());
        return Exit::Invalid.into();
    };
    let token = match config
        .admin_token_file()
        .map(|path| read_token(&path))
        .transpose()
    {
        Ok(token) => token,
        Err(problem) => {
            eprintln!("error: {problem}");
            return Exit::Invalid.into();
        }
    };
    match partition_command::send(address, partition, action, token.as_ref()) {
        Ok(answer) => {
            println!("{answer}");
            Exit::Clean.into()
        }
        Err(error) => {
            eprintln!("error: {error}");
            Exit::Failed.into()
        }
    }
}

fn send_one(
    path: &std::path::Path,
    partition: Option<i32>,
    key: Option<&str>,
    value: &str,
    timeout_ms: u64,
) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    if let Some(problem) = config.missing_kafka_secret() {
        eprintln!("error: {problem}");
        return Exit::Invalid.into();
    }
    match send::send(
        &config,
        partition,
        key,
        value,
        std::time::Duration::from_millis(timeout_ms),
    ) {
        Ok(sent) => {
            println!(
                "sent to topic {} partition {} offset {}",
                sent.topic, sent.partition, sent.offset
            );
            Exit::Clean.into()
        }
        Err(error) => {
            eprintln!("error: {error}");
            Exit::Unreachable.into()
        }
    }
}

fn check(path: &std::path::Path, probe: bool) -> ExitCode {
    let parsed = config::load_config(path);
    let credentials = match &parsed {
        Ok(config) => config.credentials(|name| std::env::var(name).ok()),
        // The file's problems come first; the environment's are still worth listing.
        Err(_) => config::credentials_from_env(|name| std::env::var(name).ok()).map(Into::into),
    };
    let mut problems: Vec<String> = Vec::new();
    if let Err(errors) = &parsed {
        problems.extend(errors.0.iter().map(ToString::to_string));
    }
    if let Err(error) = &credentials {
        problems.push(error.to_string());
    }
    if let Some(error) = parsed.as_ref().ok().and_then(|c| c.missing_kafka_secret()) {
        problems.push(error.to_string());
    }
    match parsed {
        Ok(config) if problems.is_empty() => {
            println!("# {}: valid", path.display());
            print!("{}", config.to_redacted_toml());
            match credentials {
                Ok(credentials) if probe => probe_bucket(config.into_settings(credentials)),
                _ => Exit::Clean.into(),
            }
        }
        _ => {
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            for problem in problems {
                eprintln!("  error: {problem}");
            }
            Exit::Invalid.into()
        }
    }
}

/// `check --probe`: the start-up capability probe, as a table on stdout.
fn probe_bucket(settings: actors::settings::PipelineSettings) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let store = actors::store::S3Store::new(&settings.sink);
    let capabilities = runtime.block_on(store.capabilities(&settings.sink.key_prefix));
    println!(
        "# bucket `{}`, prefix `{}`",
        settings.sink.bucket, settings.sink.key_prefix
    );
    print!("{}", capabilities.table());
    if !capabilities.conditional_create {
        println!(
            "# without conditional create the connector still runs (deterministic keys and \
             recovery by listing), but a member that lost its partitions could replace an object"
        );
    }
    if capabilities.usable() {
        Exit::Clean.into()
    } else {
        Exit::Unreachable.into()
    }
}

fn run(path: &std::path::Path, log_format: LogFormat) -> ExitCode {
    init_logging(log_format);
    // Built with the `failpoints` feature (tests only): actions from the FAILPOINTS variable.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let config = match config::load_config(path) {
        Ok(config) => config,
        Err(errors) => {
            for problem in &errors.0 {
                error!(code = %ErrorCode::ConfigInvalid, "{problem}");
            }
            return Exit::Invalid.into();
        }
    };
    let credentials = match config.credentials(|name| std::env::var(name).ok()) {
        Ok(credentials) => credentials,
        Err(problem) => {
            error!(code = %ErrorCode::ConfigCredentials, "{problem}");
            return Exit::Invalid.into();
        }
    };
    if let Some(problem) = config.missing_kafka_secret() {
        error!(code = %ErrorCode::ConfigCredentials, "{problem}");
        return Exit::Invalid.into();
    }
    info!(
        name = config.name(),
        group = config.group_id(),
        topic = config.topic(),
        "starting"
    );
    let admin_address = config.admin_address();
    let admin_token = match admin_address.and(config.admin_token_file()) {
        Some(path) => match read_token(&path) {
            Ok(token) => Some(token),
            Err(problem) => {
                error!(code = %ErrorCode::ConfigInvalid, "{problem}");
                return Exit::Invalid.into();
            }
        },
        None => None,
    };
    let connector_name = config.name().to_owned();
    let flat_config = std::sync::Arc::new(admin::connect::flat_config(&config.to_redacted_toml()));
    let status = StatusBoard::new(config.topic());
    let settings = config.into_settings(credentials);

    let prometheus = match admin_address.map(|_| admin::install_recorder()).transpose() {
        Ok(prometheus) => prometheus,
        Err(error) => {
            error!(
                code = %ErrorCode::AdminBind,
                "cannot install the metrics recorder: {error}"
            );
            return Exit::Unreachable.into();
        }
    };
    let system = actix::System::new();
    let commands = admin::Commands::default();
    let outcome = system.block_on(async move {
        let mut admin_server = None;
        if let (Some(address), Some(prometheus)) = (admin_address, prometheus) {
            let state = admin::AdminState {
                prometheus: prometheus.clone(),
                status: status.clone(),
                connector_name,
                commands: commands.clone(),
                config: flat_config,
                token: admin_token,
                worker_id: Default::default(),
            };
            match admin::start(address, state) {
                Ok((server, handle, bound)) => {
                    info!(address = %bound, "admin server listening: /metrics /healthz /readyz /status /connectors");
                    actix::spawn(server);
                    // Histograms keep raw samples until upkeep folds them in.
                    let upkeep = actix::spawn(async move {
                        loop {
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                            prometheus.run_upkeep();
                        }
                    });
                    admin_server = Some((handle, upkeep));
                }
                Err(error) => {
                    error!(code = %ErrorCode::AdminBind, address = %address, "cannot listen on admin.address: {error}");
                    return None;
                }
            }
        }
        let outcome = pipeline::run(settings, status, shutdown_signal(), |running| {
            let _ = commands.set(running.commands);
        })
        .await;
        if let Some((handle, upkeep)) = admin_server {
            upkeep.abort();
            handle.stop(true).await;
        }
        Some(outcome)
    });
    let Some(outcome) = outcome else {
        return Exit::Unreachable.into();
    };
    match outcome {
        Ok(RunOutcome::Drained) => {
            info!("stopped: everything buffered is stored and committed");
            Exit::Clean.into()
        }
        Ok(RunOutcome::DrainTimedOut) => {
            error!(
                code = %ErrorCode::DrainTimeout,
                "stopped with records not stored; they were not committed and will be read again"
            );
            Exit::Failed.into()
        }
        Ok(RunOutcome::Fatal(_)) => Exit::Failed.into(),
        Err(startup) => {
            error!(code = %startup.code(), "cannot start: {startup}");
            Exit::Unreachable.into()
        }
    }
}

/// The token of `admin.token_file`; the message names the key and the path, never the contents.
fn read_token(path: &std::path::Path) -> Result<admin::Token, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("`admin.token_file`: cannot read {}: {e}", path.display()))?;
    admin::Token::parse(&text)
        .ok_or_else(|| format!("`admin.token_file`: {} holds no token", path.display()))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    // The HTTP server's own start-up chatter is not useful at info.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(logging::ErrorCodeCounter);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
}

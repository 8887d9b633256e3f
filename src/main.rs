//! kafka-oss-sink: copies a Kafka topic into an Alibaba Cloud OSS or S3-compatible bucket.
//!
//! Exit codes: 0 clean shutdown (everything buffered stored and committed); 1 shutdown with data
//! left uncommitted (drain deadline passed) or a fatal consumer error; 2 invalid configuration or
//! credentials; 3 the bucket or the topic could not be reached at start.

mod bench;
mod config;
mod loadgen;
mod send;

use std::path::PathBuf;
use std::process::ExitCode;

use actors::pipeline::{self, RunOutcome};
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
    /// Load generator: produce N records (or for a duration) of a given size and key pattern,
    /// repeatably (seeded), at a fixed rate or as fast as possible; print records/s, MB/s and
    /// produce latency percentiles.
    Loadgen(loadgen::LoadgenArgs),
    /// Benchmark baseline: a bare rdkafka consumer (the connector's librdkafka settings) reads a
    /// topic's backlog to the end; prints records/s, MB/s and CPU seconds.
    BenchConsume(bench::consume::ConsumeArgs),
    /// End-to-end measurement of a running connector through the bucket: drain throughput,
    /// record-to-object latency, CPU and peak RSS, and an exactly-once check.
    BenchWatch(bench::watch::WatchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => run(&config, cli.log_format),
        Command::Send {
            config,
            partition,
            key,
            value,
            timeout_ms,
        } => send_one(&config, partition, key.as_deref(), &value, timeout_ms),
        Command::Loadgen(args) => report(loadgen::run(&args), args.json.as_deref(), |s| {
            loadgen::print_summary(s);
            s.errors == 0
        }),
        Command::BenchConsume(args) => {
            report(bench::consume::run(&args), args.json.as_deref(), |s| {
                bench::consume::print_summary(s);
                s.complete
            })
        }
        Command::BenchWatch(args) => {
            let outcome = bench::watch::run(&args);
            if let (Ok(summary), Some(svg)) = (&outcome, &args.svg) {
                if let Err(error) = bench::chart::write_svg(svg, &summary.prefix, &summary.series) {
                    eprintln!("error: chart: {error}");
                }
            }
            report(outcome, args.json.as_deref(), |s| {
                bench::watch::print_summary(s);
                s.complete && s.exactly_once.ok
            })
        }
    }
}

/// Prints a tool's summary, writes its JSON; exit 0 when `print` says the run was good, 1 when
/// not, 3 when it could not run.
fn report<T: serde::Serialize>(
    outcome: Result<T, String>,
    json: Option<&std::path::Path>,
    print: impl FnOnce(&T) -> bool,
) -> ExitCode {
    match outcome {
        Ok(summary) => {
            let good = print(&summary);
            if let Some(path) = json {
                if let Err(error) = bench::write_json(path, &summary) {
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

fn send_one(
    path: &std::path::Path,
    partition: Option<i32>,
    key: Option<&str>,
    value: &str,
    timeout_ms: u64,
) -> ExitCode {
    let config = match config::load_config(path) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            for problem in &errors.0 {
                eprintln!("  error: {problem}");
            }
            return ExitCode::from(2);
        }
    };
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
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(3)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let parsed = config::load_config(path);
    let credentials = config::credentials_from_env(|name| std::env::var(name).ok());
    let mut problems: Vec<String> = Vec::new();
    if let Err(errors) = &parsed {
        problems.extend(errors.0.iter().map(ToString::to_string));
    }
    if let Err(error) = &credentials {
        problems.push(error.to_string());
    }
    match parsed {
        Ok(config) if problems.is_empty() => {
            println!("# {}: valid", path.display());
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            for problem in problems {
                eprintln!("  error: {problem}");
            }
            ExitCode::from(2)
        }
    }
}

fn run(path: &std::path::Path, log_format: LogFormat) -> ExitCode {
    init_logging(log_format);
    let config = match config::load_config(path) {
        Ok(config) => config,
        Err(errors) => {
            for problem in &errors.0 {
                error!(code = "CONFIG_INVALID", "{problem}");
            }
            return ExitCode::from(2);
        }
    };
    let credentials = match config::credentials_from_env(|name| std::env::var(name).ok()) {
        Ok(credentials) => credentials,
        Err(problem) => {
            error!(code = "CONFIG_CREDENTIALS", "{problem}");
            return ExitCode::from(2);
        }
    };
    info!(
        name = config.name(),
        group = config.group_id(),
        topic = config.topic(),
        "starting"
    );
    let settings = config.into_settings(credentials);

    let system = actix::System::new();
    let outcome = system.block_on(pipeline::run(settings, shutdown_signal()));
    match outcome {
        Ok(RunOutcome::Drained) => {
            info!("stopped: everything buffered is stored and committed");
            ExitCode::SUCCESS
        }
        Ok(RunOutcome::DrainTimedOut) => {
            error!(
                code = "DRAIN_TIMEOUT",
                "stopped with records not stored; they were not committed and will be read again"
            );
            ExitCode::from(1)
        }
        Ok(RunOutcome::Fatal(_)) => ExitCode::from(1),
        Err(startup) => {
            error!(code = startup.code(), "cannot start: {startup}");
            ExitCode::from(3)
        }
    }
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
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

//! `bench-consume`: see [`kafka_oss_sink_tools::consume`]. Exit 0 when the expected records were
//! read, 1 when the timeout came first, 3 when it could not run.

use std::process::ExitCode;

use clap::Parser;
use kafka_oss_sink_tools::{consume, report};

fn main() -> ExitCode {
    let args = consume::ConsumeArgs::parse();
    report(consume::run(&args), args.json.as_deref(), |summary| {
        consume::print_summary(summary);
        summary.complete
    })
}

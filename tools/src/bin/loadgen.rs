//! `loadgen`: see [`kafka_oss_sink_tools::loadgen`]. Exit 0 when every record was acknowledged,
//! 1 when some were not, 3 when it could not run.

use std::process::ExitCode;

use clap::Parser;
use kafka_oss_sink_tools::{loadgen, report};

fn main() -> ExitCode {
    let args = loadgen::LoadgenArgs::parse();
    report(loadgen::run(&args), args.json.as_deref(), |summary| {
        loadgen::print_summary(summary);
        summary.errors == 0
    })
}

//! `bench-watch`: see [`kafka_oss_sink_tools::watch`]. Exit 0 when every produced record was
//! stored exactly once, 1 when not (or the timeout came first), 3 when it could not run.

use std::process::ExitCode;

use clap::Parser;
use kafka_oss_sink_tools::{chart, report, watch};

fn main() -> ExitCode {
    let args = watch::WatchArgs::parse();
    let outcome = watch::run(&args);
    if let (Ok(summary), Some(svg)) = (&outcome, &args.svg) {
        if let Err(error) = chart::write_svg(svg, &summary.prefix, &summary.series) {
            eprintln!("error: chart: {error}");
        }
    }
    report(outcome, args.json.as_deref(), |summary| {
        watch::print_summary(summary);
        summary.complete && summary.exactly_once.ok
    })
}

//! The run chart: drained records per second (top) and end-to-end latency p50 / p99 / max
//! (bottom), per second of the run, as an SVG (no font library needed).

use plotters::prelude::*;

use crate::watch::Bin;

pub fn write_svg(path: &std::path::Path, title: &str, series: &[Bin]) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let (top, bottom) = root.split_vertically(320);
    let t_max = series.iter().map(|b| b.t_s).max().unwrap_or(1).max(1) as f64 + 1.0;

    let rate_max = series.iter().map(|b| b.records).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: records stored per second"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..rate_max)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("records/s")
        .draw()
        .map_err(|e| error(&e))?;
    chart
        .draw_series(LineSeries::new(
            series.iter().map(|b| (b.t_s as f64, b.records as f64)),
            &BLUE,
        ))
        .map_err(|e| error(&e))?;

    let latency_max = series.iter().map(|b| b.latency_max_ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "end-to-end latency (ms): p50 green, p99 orange, max red",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..t_max, 0f64..latency_max)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .draw()
        .map_err(|e| error(&e))?;
    let orange = RGBColor(230, 120, 0);
    for (color, pick) in [
        (GREEN, (|b: &Bin| b.latency_p50_ms) as fn(&Bin) -> f64),
        (orange, |b: &Bin| b.latency_p99_ms),
        (RED, |b: &Bin| b.latency_max_ms),
    ] {
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|b| (b.t_s as f64, pick(b))),
                &color,
            ))
            .map_err(|e| error(&e))?;
    }
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

//! `--plot DIR`: SVG charts of the per-second series (plotters, SVG backend only).
//! `latency.svg`: p50/p90/p99/max per second; `throughput.svg`: successes and errors per second.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::report::Report;

/// A named line: legend label, colour, (second, value) points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Writes both charts into `dir` (created if missing) and returns their paths.
pub fn write_charts(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let seconds = &report.summary.per_second;
    // Each point sits in the middle of its one-second bucket.
    let at = |i: usize| seconds[i].second as f64 + 0.5;

    let latency = dir.join("latency.svg");
    let lat = |f: fn(&crate::stats::Percentiles) -> f64| -> Vec<(f64, f64)> {
        (0..seconds.len())
            .map(|i| (at(i), f(&seconds[i].latency_ms)))
            .collect()
    };
    line_chart(
        &latency,
        &format!("{} latency per second", report.scenario),
        "ms",
        &[
            ("p50", BLUE, lat(|p| p.p50)),
            ("p90", GREEN, lat(|p| p.p90)),
            ("p99", RED, lat(|p| p.p99)),
            ("max", BLACK, lat(|p| p.max)),
        ],
    )?;

    let throughput = dir.join("throughput.svg");
    let count = |f: fn(&crate::stats::SecondSummary) -> f64| -> Vec<(f64, f64)> {
        (0..seconds.len())
            .map(|i| (at(i), f(&seconds[i])))
            .collect()
    };
    line_chart(
        &throughput,
        &format!("{} throughput per second", report.scenario),
        "requests / s",
        &[
            ("successes", BLUE, count(|s| s.successes as f64)),
            ("errors", RED, count(|s| s.errors as f64)),
        ],
    )?;
    Ok(vec![latency, throughput])
}

fn line_chart(path: &Path, title: &str, y_desc: &str, series: &[Series<'_>]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Plot(format!("{}: {e}", path.display()));
    let x_max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.0))
        .fold(0.5f64, f64::max)
        + 0.5;
    let y_max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;

    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds after warmup")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(&e))?;
    for (name, color, points) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

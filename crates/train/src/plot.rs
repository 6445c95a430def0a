//! Loss, learning-rate and accuracy curves as PNG files next to
//! `metrics.jsonl`. Text is drawn with a bundled DejaVu Sans (see
//! `assets/fonts/LICENSE-DejaVu.txt`), so nothing depends on system fonts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Result, TrainError};
use crate::metrics::{read_events, EventKind, MetricsEvent, METRICS_FILE};

/// Width and height of every plot in pixels.
pub const PLOT_SIZE: (u32, u32) = (960, 540);
pub const LOSS_PLOT: &str = "loss.png";
pub const LR_PLOT: &str = "lr.png";
pub const ACCURACY_PLOT: &str = "accuracy.png";

const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

fn register_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "the bundled DejaVu Sans font could not be read".to_string())
        })
        .clone()
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    /// Sparse series (evaluations) get a dot per point.
    markers: bool,
}

enum YAxis {
    /// From 0 to a little above the largest value.
    FromZero,
    /// 0 to 100 %.
    Fraction,
    /// Scientific labels for small numbers (learning rates).
    Scientific,
}

struct Chart<'a> {
    title: &'a str,
    y_label: &'a str,
    y_axis: YAxis,
    series: Vec<Series>,
    /// Shown in the caption when there is nothing to draw yet.
    empty_note: &'a str,
    /// Where the curves are not; `None` for a single, titled series.
    legend: Option<SeriesLabelPosition>,
}

fn series_of(
    events: &[MetricsEvent],
    kind: EventKind,
    name: &str,
    markers: bool,
    value: impl Fn(&MetricsEvent) -> Option<f64>,
) -> Series {
    Series {
        name: name.to_string(),
        points: events
            .iter()
            .filter(|e| e.event == kind)
            .filter_map(|e| {
                value(e)
                    .filter(|v| v.is_finite())
                    .map(|v| (e.step as f64, v))
            })
            .collect(),
        markers,
    }
}

/// Renders `loss.png`, `lr.png` and `accuracy.png` into `run_dir` from
/// `events`, each written atomically; returns their paths.
pub fn render_plots(run_dir: &Path, events: &[MetricsEvent]) -> Result<Vec<PathBuf>> {
    let loss = Chart {
        title: "Loss",
        y_label: "cross-entropy",
        y_axis: YAxis::FromZero,
        series: vec![
            series_of(events, EventKind::Train, "train loss", false, |e| e.loss),
            series_of(events, EventKind::Eval, "validation loss", true, |e| {
                e.val_loss
            }),
        ],
        empty_note: "no loss logged yet",
        legend: Some(SeriesLabelPosition::UpperRight),
    };
    let lr = Chart {
        title: "Learning rate",
        y_label: "learning rate",
        y_axis: YAxis::Scientific,
        series: vec![series_of(
            events,
            EventKind::Train,
            "learning rate",
            false,
            |e| e.lr,
        )],
        empty_note: "no step logged yet",
        legend: None,
    };
    let mut accuracy_series = vec![series_of(events, EventKind::Eval, "all tiers", true, |e| {
        e.exec_accuracy
    })];
    let mut tiers: Vec<&String> = events
        .iter()
        .flat_map(|e| e.exec_accuracy_by_tier.keys())
        .collect();
    tiers.sort_by_key(|t| tier_rank(t));
    tiers.dedup();
    for tier in tiers {
        accuracy_series.push(series_of(events, EventKind::Eval, tier, true, |e| {
            e.exec_accuracy_by_tier.get(tier).copied()
        }));
    }
    let accuracy = Chart {
        title: "Validation execution accuracy",
        y_label: "execution accuracy",
        y_axis: YAxis::Fraction,
        series: accuracy_series,
        empty_note: "no evaluation yet",
        // Accuracy starts low and rises: the upper left stays free.
        legend: Some(SeriesLabelPosition::UpperLeft),
    };
    let mut written = Vec::new();
    for (name, chart) in [(LOSS_PLOT, loss), (LR_PLOT, lr), (ACCURACY_PLOT, accuracy)] {
        let path = run_dir.join(name);
        text2sql_data::atomic::write_file_at(&path, ".png", |tmp| {
            draw(tmp, &chart).map_err(|message| TrainError::Plot {
                path: path.clone(),
                message,
            })
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Reads `run_dir/metrics.jsonl` and renders the plots.
pub fn render_from_log(run_dir: &Path) -> Result<Vec<PathBuf>> {
    render_plots(run_dir, &read_events(&run_dir.join(METRICS_FILE))?)
}

/// Tiers in curriculum order, anything else after them.
fn tier_rank(name: &str) -> (usize, String) {
    let rank = name
        .parse::<crate::config::Tier>()
        .map(|t| t as usize)
        .unwrap_or(usize::MAX);
    (rank, name.to_string())
}

const COLORS: [RGBColor; 6] = [
    RGBColor(20, 20, 20),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn draw(path: &Path, chart: &Chart<'_>) -> std::result::Result<(), String> {
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = BitMapBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;

    let points = chart.series.iter().flat_map(|s| s.points.iter());
    let max_step = points.clone().map(|p| p.0).fold(0f64, f64::max).max(1.0);
    let max_y = points.map(|p| p.1).fold(0f64, f64::max);
    let y_top = match chart.y_axis {
        YAxis::Fraction => 1.0,
        _ if max_y > 0.0 => max_y * 1.08,
        _ => 1.0,
    };
    let empty = chart.series.iter().all(|s| s.points.is_empty());
    let caption = if empty {
        format!("{} ({})", chart.title, chart.empty_note)
    } else {
        chart.title.to_string()
    };
    let mut ctx = ChartBuilder::on(&root)
        .caption(caption, (FONT, 26))
        .margin(18)
        .x_label_area_size(52)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..max_step, 0f64..y_top)
        .map_err(|e| err(&e))?;
    let y_format = |v: &f64| match chart.y_axis {
        YAxis::Fraction => format!("{:.0}%", v * 100.0),
        YAxis::Scientific => format!("{v:.1e}"),
        YAxis::FromZero => format!("{v:.2}"),
    };
    ctx.configure_mesh()
        .x_desc("optimizer step")
        .y_desc(chart.y_label)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&y_format)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in chart
        .series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.points.is_empty())
    {
        let color = COLORS[i % COLORS.len()];
        // The first series is the headline one (train loss, all tiers).
        let width = if i == 0 { 3 } else { 2 };
        ctx.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(width),
        ))
        .map_err(|e| err(&e))?
        .label(s.name.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        if s.markers {
            ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
    }
    if let (false, Some(position)) = (empty, &chart.legend) {
        ctx.configure_series_labels()
            .position(position.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font((FONT, 16))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsLog;

    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        assert_eq!(&bytes[12..16], b"IHDR");
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        (w, h)
    }

    fn log_run(log: &mut MetricsLog, from: u64, to: u64) {
        for step in from..=to {
            let mut e = MetricsEvent::new(EventKind::Train, step);
            e.loss = Some(6.0 * (-(step as f64) / 150.0).exp() + 0.4);
            e.lr = Some(1e-3 * (step as f64 / 50.0).min(1.0));
            log.append(&e).unwrap();
            if step % 100 == 0 {
                let mut e = MetricsEvent::new(EventKind::Eval, step);
                e.val_loss = Some(6.0 * (-(step as f64) / 170.0).exp() + 0.6);
                let acc = 1.0 - (-(step as f64) / 300.0).exp();
                e.exec_accuracy = Some(acc * 0.7);
                for (i, tier) in ["Simple", "Moderate", "Complex", "Highly Complex"]
                    .iter()
                    .enumerate()
                {
                    e.exec_accuracy_by_tier
                        .insert(tier.to_string(), acc * (0.95 - 0.22 * i as f64));
                }
                log.append(&e).unwrap();
            }
        }
    }

    #[test]
    fn plots_are_pngs_of_the_set_size_and_follow_new_points() {
        let dir = tempfile::tempdir().unwrap();
        // Before any event: the files exist and say there is no data yet.
        let paths = render_plots(dir.path(), &[]).unwrap();
        assert_eq!(paths.len(), 3);
        for p in &paths {
            assert_eq!(png_size(p), PLOT_SIZE);
        }
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        log_run(&mut log, 1, 300);
        render_from_log(dir.path()).unwrap();
        let before: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        log_run(&mut log, 301, 600);
        render_from_log(dir.path()).unwrap();
        for (p, old) in paths.iter().zip(&before) {
            assert_eq!(png_size(p), PLOT_SIZE);
            assert_ne!(
                &std::fs::read(p).unwrap(),
                old,
                "{} did not change",
                p.display()
            );
        }
        // No temporary files are left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&paths[0]).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o644,
                "plots are readable by others like any output"
            );
        }
        if let Ok(out) = std::env::var("TEXT2SQL_PLOT_SAMPLE_DIR") {
            for p in &paths {
                std::fs::copy(p, Path::new(&out).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
}

//! What every subcommand shares for talking to the user: the global flags,
//! logging, progress bars and JSON output.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Print nothing but errors (and the result itself).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print machine-readable JSON on stdout instead of tables; implies no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalOpts {
    /// Whether progress bars and human summaries should be drawn.
    pub fn interactive(&self) -> bool {
        !self.quiet && !self.json
    }
}

pub fn init_logging(global: &GlobalOpts) {
    let default = if global.quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEXT2SQL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A bar over `total` units (bytes when `bytes` is set), with rate and ETA,
/// drawn on stderr; hidden under `--quiet` / `--json`.
pub fn progress_bar(global: &GlobalOpts, total: u64, what: &str, bytes: bool) -> ProgressBar {
    if !global.interactive() {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg:>10} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
    } else {
        "{msg:>10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} ETA {eta}"
    };
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

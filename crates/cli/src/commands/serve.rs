//! `text2sql serve`: the web demo and JSON API. The arguments and the
//! start-up wiring live here; the server itself is `text2sql-serve`. It
//! answers with the model from `--model` and executes only through the SQL
//! sandbox: `run` builds those two and hands them to [`run_with`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use text2sql_model::{Device, SqlModel};
use text2sql_serve::{ModelGenerator, SandboxRunner, ServeConfig, Server, SqlGenerator, SqlRunner};

use crate::output::{print_json, GlobalOpts};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model checkpoint to answer with (Hugging Face layout: config.json,
    /// model.safetensors, tokenizer.json), e.g. a run's best checkpoint.
    #[arg(long, default_value = "runs/quickstart/best")]
    pub model: PathBuf,
    /// The databases to offer: one `<db_id>/<db_id>.sqlite` per database, with
    /// a tables.json beside them or one folder up when there is one.
    #[arg(long, default_value = "quickstart/sample/databases")]
    pub databases: PathBuf,
    /// Address to listen on. Keep it on loopback unless a proxy with
    /// authentication stands in front.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Questions answered at once; more wait in a bounded queue.
    /// [default: half the CPU cores]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Requests that may wait for a worker before new ones are told the
    /// server is busy (HTTP 503 with Retry-After).
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Candidates from beam search, shown as alternatives.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub beams: u16,
    /// Time limit of one SQL execution, in seconds.
    #[arg(long = "timeout-s", default_value_t = 5.0)]
    pub timeout_s: f64,
    /// Deadline of a whole request, queueing included, in seconds.
    #[arg(long = "request-timeout-s", default_value_t = 60.0)]
    pub request_timeout_s: f64,
    /// Rows one execution returns at most (the page shows them 25 per page).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_rows: u32,
    /// Decode without the SQL checker (by default only SQL that parses and
    /// names the database's real tables and columns can be generated).
    #[arg(long)]
    pub no_constrain: bool,
    #[command(flatten)]
    pub links: super::LinkArgs,
    #[command(flatten)]
    pub skeletons: super::SkeletonArgs,
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    text2sql_sql::timeout_from_secs(value).with_context(|| format!("--{flag}"))
}

impl Args {
    /// The server configuration these arguments describe.
    pub fn config(&self) -> Result<ServeConfig> {
        let defaults = ServeConfig::default();
        Ok(ServeConfig {
            addr: self.addr,
            databases: self.databases.clone(),
            workers: self.workers.map_or(defaults.workers, usize::from),
            queue: self.queue,
            beams: usize::from(self.beams),
            sql_timeout: seconds("timeout-s", self.timeout_s)?,
            request_timeout: seconds("request-timeout-s", self.request_timeout_s)?,
            max_rows: self.max_rows as usize,
            ..defaults
        })
    }
}

/// Loads the model and serves it, executing through the SQL sandbox.
pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    // Check the arguments before the (slow) model load.
    args.config()?;
    let mut model = SqlModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("cannot load the model from {}", args.model.display()))?;
    model.set_constrained(!args.no_constrain);
    args.links.apply(&mut model)?;
    args.skeletons.apply(&mut model)?;
    run_with(
        &args,
        global,
        Arc::new(SandboxRunner),
        Arc::new(ModelGenerator::new(model)),
    )
}

/// Serves with the given runner (the SQL sandbox) and generator (the model)
/// until Ctrl-C or SIGTERM; prints where it listens once the port is open.
pub fn run_with(
    args: &Args,
    global: &GlobalOpts,
    runner: Arc<dyn SqlRunner>,
    generator: Arc<dyn SqlGenerator>,
) -> Result<()> {
    let config = args.config()?;
    let databases = config.databases.clone();
    let mut announced = Ok(());
    text2sql_serve::serve_until_signal(config, runner, generator, |server: &Server| {
        let url = format!("http://{}/", server.local_addr());
        let catalog = server.catalog();
        if global.json {
            announced = print_json(&serde_json::json!({
                "url": url,
                "databases": catalog.len(),
                "warnings": catalog.warnings(),
            }));
        } else if !global.quiet {
            eprintln!(
                "Serving {} databases from {} at {url} (Ctrl-C to stop)",
                catalog.len(),
                databases.display()
            );
            if !catalog.warnings().is_empty() {
                eprintln!(
                    "{} folders were skipped or shown without example values (see the warnings above)",
                    catalog.warnings().len()
                );
            }
        }
    })
    .with_context(|| format!("text2sql serve --databases {}", databases.display()))?;
    announced
}

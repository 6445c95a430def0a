use std::path::PathBuf;

use anyhow::{Context, Result};
use text2sql_data::sample::{write_sample, SampleOptions, SampleSummary};

use crate::output::{print_json, progress_bar, GlobalOpts};

/// Arguments of `text2sql sample`; the long help is on the subcommand in
/// `main.rs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (created if missing; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of question/SQL records to write (2544390 is the size of SynSQL-2.5M).
    #[arg(long, default_value_t = 5000)]
    pub records: u64,
    /// Number of databases, each a seeded variant of one of the built-in domains
    /// [default: SynSQL's 150 records per database, at least 200, at most one per record].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub databases: Option<u64>,
    /// Seed of every random choice; the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Replace data.json, tables.json and databases/ in a non-empty DIR.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let opts = SampleOptions {
        records: args.records,
        databases: args.databases.map(|n| n as usize),
        seed: args.seed,
        force: args.force,
    };
    let bar = progress_bar(global, args.records, "records", false);
    let summary = write_sample(&args.out, &opts, &mut |done| bar.set_position(done))
        .with_context(|| format!("writing the sample corpus to {}", args.out.display()))?;
    bar.finish_and_clear();
    if global.json {
        return print_json(&summary);
    }
    if !global.quiet {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(summary: &SampleSummary) {
    println!(
        "wrote {} records over {} databases to {} (seed {}, {} distinct verified SQL queries)",
        summary.records,
        summary.databases,
        summary.out.display(),
        summary.seed,
        summary.distinct_sql
    );
    let share = |n: u64| 100.0 * n as f64 / summary.records.max(1) as f64;
    println!("by complexity:");
    for (tier, n) in &summary.by_tier {
        println!("  {tier:<20} {n:>10}  {:5.1}%", share(*n));
    }
    println!("by question style:");
    for (style, n) in &summary.by_style {
        println!("  {style:<20} {n:>10}  {:5.1}%", share(*n));
    }
    println!(
        "with external knowledge: {} ({:.1}%)",
        summary.with_external_knowledge,
        share(summary.with_external_knowledge)
    );
    println!(
        "bytes: data.json {}, tables.json {}, databases {}",
        summary.data_json_bytes, summary.tables_json_bytes, summary.database_bytes
    );
}

use std::path::PathBuf;

use anyhow::Result;
use text2sql_data::prepare::{
    prepare, PrepareOptions, PrepareProgress, PrepareReport, SplitBy, SplitInfo,
};
use text2sql_data::reader::Format;
use text2sql_data::store::PageCompression;

use crate::output::{print_json, progress_bar, GlobalOpts};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Splits: with --split-by database (the default) every database lies wholly in train or \
in val, so validation measures schemas the model has never seen. --format spider and \
--format bird prepare evaluation sets (dev.json): all records go to val.parquet unless \
--val-ratio is given; their training files (a name starting with `train`, as \
train_spider.json and BIRD's train.json) are split like SynSQL.

Validation: every record is checked against its format and the tables file. The first \
bad record stops the run with its file, record index, byte offset and field; with \
--skip-invalid bad records are counted per cause and reported instead. With --databases, \
a record whose database file is missing (Spider's wta_1, for example) is such a bad \
record (cause missing_database).

Output (written to a temporary folder, renamed into place when complete): \
train.parquet, val.parquet, schemas.parquet and manifest.json.")]
pub struct Args {
    /// The corpus: one JSON array of records (SynSQL data.json, Spider dev.json, BIRD dev.json).
    #[arg(long)]
    pub data: PathBuf,
    /// The Spider-style tables.json describing every database.
    #[arg(long)]
    pub tables: PathBuf,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder of <db_id>/<db_id>.sqlite: schemas get example values, and every used database must exist.
    #[arg(long)]
    pub databases: Option<PathBuf>,
    /// Keep a seeded subset of this many records, stratified by complexity.
    #[arg(long)]
    pub subset_size: Option<u64>,
    /// Share of validation [default: 0.05 for synsql and for spider/bird training files
    /// (train*.json), 1.0 (all) for spider and bird evaluation files (dev.json)].
    #[arg(long)]
    pub val_ratio: Option<f64>,
    /// database: no database on both sides (unseen schemas in val); example: each record on its own.
    #[arg(long, value_enum, default_value_t = SplitByArg::Database)]
    pub split_by: SplitByArg,
    /// Seed of the split and the subset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Layout of --data.
    #[arg(long, value_enum, default_value_t = FormatArg::Synsql)]
    pub format: FormatArg,
    /// Count invalid records per cause and go on, instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Keep SynSQL's chain-of-thought (`cot`) column.
    #[arg(long)]
    pub keep_cot: bool,
    /// Page compression of train.parquet and val.parquet: none is the fastest to write and to
    /// read; zstd makes the files about 6x smaller for about 25% more CPU time; snappy is larger
    /// than zstd at the same cost.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Worker threads [default: every core]. The output is the same for any number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SplitByArg {
    Database,
    Example,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompressionArg {
    None,
    Snappy,
    Zstd,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    Synsql,
    Spider,
    Bird,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let options = PrepareOptions {
        databases: args.databases,
        format: match args.format {
            FormatArg::Synsql => Format::Synsql,
            FormatArg::Spider => Format::Spider,
            FormatArg::Bird => Format::Bird,
        },
        split_by: match args.split_by {
            SplitByArg::Database => SplitBy::Database,
            SplitByArg::Example => SplitBy::Example,
        },
        val_ratio: args.val_ratio,
        seed: args.seed,
        subset_size: args.subset_size,
        skip_invalid: args.skip_invalid,
        keep_cot: args.keep_cot,
        compression: match args.compression {
            CompressionArg::None => PageCompression::None,
            CompressionArg::Snappy => PageCompression::Snappy,
            CompressionArg::Zstd => PageCompression::Zstd,
        },
        threads: args.threads,
        overwrite: args.overwrite,
        ..PrepareOptions::new(args.data, args.tables, args.out)
    };
    let bar = progress_bar(global, 0, "reading", true);
    let show = |at: PrepareProgress| {
        bar.set_length(at.total_bytes);
        bar.set_position(at.bytes_done);
        let per_second = at.records_read as f64 / bar.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!(
            "{:.0}k rec, {:.1}k rec/s",
            at.records_read as f64 / 1e3,
            per_second / 1e3
        ));
    };
    // The data stage's errors already name the file, record and field.
    let report = prepare(&options, &show);
    bar.finish_and_clear();
    let report = report?;
    warn_about_empty_split(&report);
    if global.json {
        return print_json(&report.manifest);
    }
    if !global.quiet {
        print_summary(&report);
    }
    Ok(())
}

/// A split left empty by a database split over few databases (the sample
/// has ten) is legal but almost never what the user wants: say so, with the
/// way out, on stderr even under --quiet.
fn warn_about_empty_split(report: &PrepareReport) {
    let m = &report.manifest;
    let kept = m.records.kept;
    for (name, rows) in [("train", m.splits.train.rows), ("val", m.splits.val.rows)] {
        let wanted = match name {
            "val" => m.val_ratio > 0.0,
            _ => m.val_ratio < 1.0,
        };
        if rows == 0 && kept > 0 && wanted {
            eprintln!(
                "warning: the {name} split is empty: {} databases were split by database with val ratio {}; \
                 use --split-by example or a larger --val-ratio",
                m.databases, m.val_ratio
            );
        }
    }
}

fn print_summary(report: &PrepareReport) {
    let m = &report.manifest;
    println!(
        "prepared {} into {}",
        m.sources.data.path,
        report.out.display()
    );
    println!(
        "records: {} read, {} valid, {} invalid, {} kept",
        m.records.read, m.records.valid, m.records.invalid, m.records.kept
    );
    let mut tiers: Vec<&String> = m
        .splits
        .train
        .tiers
        .keys()
        .chain(m.splits.val.tiers.keys())
        .collect();
    tiers.sort();
    tiers.dedup();
    print!("{:<6} {:>10} {:>10}", "split", "rows", "databases");
    for tier in &tiers {
        print!(" {:>15}", tier);
    }
    println!();
    let row = |name: &str, info: &SplitInfo| {
        print!("{name:<6} {:>10} {:>10}", info.rows, info.databases);
        for tier in &tiers {
            print!(" {:>15}", info.tiers.get(*tier).copied().unwrap_or(0));
        }
        println!();
    };
    row("train", &m.splits.train);
    row("val", &m.splits.val);
    if !m.invalid.is_empty() {
        println!("invalid records skipped, per cause:");
        for (cause, n) in &m.invalid {
            println!("  {:<20} {n}", cause.as_str());
        }
    }
    println!(
        "{} databases in schemas.parquet{}; {:.1} MB in {:.2} s ({:.0} MB/s)",
        m.databases,
        if m.enriched {
            " (with example values)"
        } else {
            ""
        },
        m.sources.data.bytes as f64 / 1e6,
        report.wall_seconds,
        report.megabytes_per_second()
    );
}

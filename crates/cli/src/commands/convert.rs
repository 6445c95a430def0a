use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use text2sql_model::{convert, DType};

use crate::output::{print_json, GlobalOpts};

/// Bring a Hugging Face T5 checkpoint (t5-small/base, t5 v1.1, flan-t5,
/// codet5) into the project's layout, which is the Hugging Face layout:
/// config.json, model.safetensors, generation_config.json and the tokenizer
/// files. Every tensor is checked against config.json first.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Checkpoint directory: config.json plus model.safetensors (or a
    /// sharded model.safetensors.index.json) or pytorch_model.bin.
    #[arg(long = "from", value_name = "DIR")]
    pub from: PathBuf,
    /// Output directory; written beside itself and renamed into place.
    #[arg(long = "to", value_name = "DIR")]
    pub to: PathBuf,
    /// Weight type of the written checkpoint.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: WeightType,
    /// Replace an existing, non-empty output directory.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum WeightType {
    F32,
    Bf16,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let occupied = args.to.is_dir()
        && std::fs::read_dir(&args.to)
            .with_context(|| format!("cannot read {}", args.to.display()))?
            .next()
            .is_some();
    if occupied && !args.force {
        bail!(
            "{} already exists and is not empty (pass --force to replace it)",
            args.to.display()
        );
    }
    let dtype = match args.dtype {
        WeightType::F32 => DType::F32,
        WeightType::Bf16 => DType::BF16,
    };
    let report = convert(&args.from, &args.to, dtype)
        .with_context(|| format!("cannot convert {}", args.from.display()))?;
    if global.json {
        return print_json(&report);
    }
    if !global.quiet {
        println!(
            "wrote {}: {} tensors, {:.1} M parameters, {} (from {}){}",
            args.to.display(),
            report.tensors,
            report.parameters as f64 / 1e6,
            report.dtype,
            report.source_weights.display(),
            if report.copied_files.is_empty() {
                String::new()
            } else {
                format!("; copied {}", report.copied_files.join(", "))
            }
        );
    }
    Ok(())
}

use std::path::PathBuf;

use anyhow::{Context, Result};
use text2sql_model::Device;
use text2sql_train::config::DeviceChoice;
use text2sql_train::{
    CacheEvent, CacheOrigin, TokenCacheOptions, TrainConfig, TrainSummary, Trainer,
};

use crate::output::{print_json, progress_bar, GlobalOpts};

/// Arguments of `text2sql train`; the long help is on the subcommand in
/// `main.rs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training config (YAML), e.g. configs/quickstart.yaml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override a config value, e.g. --set training.max_steps=100 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run from its latest checkpoint, exactly where it stopped.
    #[arg(long)]
    pub resume: bool,
    /// Device to train on (overrides training.device).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Tokenize the dataset again and replace its token cache
    /// (<processed_dir>/token_cache/), even when a valid one exists.
    #[arg(long)]
    pub rebuild_token_cache: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Metal,
}

fn open_device(choice: DeviceChoice) -> Result<Device> {
    Ok(match choice {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda => Device::new_cuda(0)
            .context("opening CUDA device 0 (was text2sql built with --features cuda?)")?,
        DeviceChoice::Metal => Device::new_metal(0)
            .context("opening the Metal device (was text2sql built with --features metal?)")?,
    })
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(device) = args.device {
        let name = match device {
            DeviceArg::Cpu => "cpu",
            DeviceArg::Cuda => "cuda",
            DeviceArg::Metal => "metal",
        };
        overrides.push(format!("training.device={name}"));
    }
    let config = TrainConfig::load(&args.config, &overrides)
        .with_context(|| format!("reading the training config {}", args.config.display()))?;
    let device = open_device(config.training.device)?;
    let max_steps = config.training.max_steps;
    let cache_options = TokenCacheOptions {
        rebuild: args.rebuild_token_cache,
        threads: None,
    };
    let mut cache_bar = None;
    let trainer =
        Trainer::with_token_cache(config, device, args.resume, &cache_options, &mut |event| {
            match event {
                CacheEvent::Building { examples, .. } => {
                    cache_bar = Some(progress_bar(global, examples, "tokenize", false));
                }
                CacheEvent::Encoded { done, .. } => {
                    if let Some(bar) = &cache_bar {
                        bar.set_position(done);
                    }
                }
                CacheEvent::Warning(message) if !global.quiet => {
                    let print = || eprintln!("warning: {message}");
                    match &cache_bar {
                        Some(bar) => bar.suspend(print),
                        None => print(),
                    }
                }
                CacheEvent::Warning(_) => {}
            }
        });
    if let Some(bar) = cache_bar.take() {
        bar.finish_and_clear();
    }
    let mut trainer = trainer.context("setting up training")?;
    if !global.quiet && !global.json {
        let cache = trainer.token_cache();
        match cache.origin() {
            CacheOrigin::Built { examples, seconds } => eprintln!(
                "token cache: built {examples} examples in {seconds:.1} s ({})",
                cache.dir().display()
            ),
            CacheOrigin::Reused => eprintln!("token cache: reused {}", cache.dir().display()),
        }
    }
    if !global.quiet && !global.json {
        eprintln!(
            "training {} parameters in {} from step {}",
            trainer.num_parameters(),
            trainer.run_dir().display(),
            trainer.step()
        );
    }
    let bar = progress_bar(global, max_steps, "steps", false);
    bar.set_position(trainer.step());
    let result = trainer.train(|report| {
        bar.set_position(report.step);
        let val = report
            .val_loss
            .map(|v| format!(" val {v:.4}"))
            .unwrap_or_default();
        bar.set_message(format!(
            "loss {:.4}{val} lr {:.2e} {:.0} tok/s",
            report.loss, report.lr, report.tokens_per_s
        ));
    });
    bar.finish_and_clear();
    let summary = result.with_context(|| {
        format!(
            "training stopped; the last good checkpoint is kept in {}",
            trainer.run_dir().display()
        )
    })?;
    if global.json {
        return print_json(&summary);
    }
    if !global.quiet {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(summary: &TrainSummary) {
    println!(
        "trained {} steps ({} tokens){}",
        summary.steps,
        summary.tokens_seen,
        if summary.stopped_early {
            ", stopped early: validation loss stopped improving"
        } else {
            ""
        }
    );
    if let Some(loss) = summary.final_loss {
        println!("final training loss: {loss:.4}");
    }
    if let (Some(value), Some(step), Some(dir)) =
        (summary.best_val_loss, summary.best_step, &summary.best_dir)
    {
        println!(
            "best validation loss {value:.4} at step {step}: {}",
            dir.display()
        );
    }
    if let Some(path) = &summary.last_checkpoint {
        println!("last checkpoint: {}", path.display());
    }
}

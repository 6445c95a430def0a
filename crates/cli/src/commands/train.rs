use std::collections::BTreeMap;
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
#[command(after_help = "Examples:
  text2sql train --config configs/quickstart.yaml
  text2sql train --config configs/quickstart.yaml --set training.max_steps=300 --set eval.exec_sample=200
  text2sql train --config configs/quickstart.yaml --resume
  text2sql train --config mix.yaml --set data.sources.1.weight=0.5

data.sources mixes several prepared datasets by weight (see the README);
--set reaches list items by index (data.sources.0.processed_dir=...).

At each evaluation (eval.every_steps) it logs the validation loss and, with
eval.exec_sample > 0 and data.databases, the execution accuracy (overall and
per tier) of a fixed seeded validation sample, as `text2sql eval --model`
would score it; the per-example outcomes go to runs/NAME/eval/step-N.jsonl.")]
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
    /// Tokenize the datasets again and replace their token caches
    /// (<processed_dir>/token_cache/), even when valid ones exist.
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
    if global.interactive() {
        let caches: Vec<_> = trainer.token_caches().collect();
        let several = caches.len() > 1;
        for (name, cache) in caches {
            let label = if several {
                format!("token cache of {name}")
            } else {
                "token cache".to_string()
            };
            match cache.origin() {
                CacheOrigin::Built { examples, seconds } => eprintln!(
                    "{label}: built {examples} examples in {seconds:.1} s ({})",
                    cache.dir().display()
                ),
                CacheOrigin::Reused => eprintln!("{label}: reused {}", cache.dir().display()),
            }
        }
    }
    if global.interactive() {
        eprintln!(
            "training {} parameters in {} from step {}{}",
            trainer.num_parameters(),
            trainer.run_dir().display(),
            trainer.step(),
            match trainer.exec_sample_len() {
                0 => String::new(),
                n => format!("; execution accuracy on {n} validation examples at each eval"),
            }
        );
    }
    let bar = progress_bar(global, max_steps, "steps", false);
    bar.set_position(trainer.step());
    let mut last_eval = String::new();
    let result = trainer.train(|report| {
        bar.set_position(report.step);
        if report.val_loss.is_some() || report.exec_accuracy.is_some() {
            // Printed above the bar: the bar's message is overwritten each step.
            if global.interactive() {
                bar.suspend(|| eprintln!("{}", eval_line(report)));
            }
            let mut short = Vec::new();
            if let Some(v) = report.val_loss {
                short.push(format!("val {v:.4}"));
            }
            if let Some(acc) = report.exec_accuracy {
                short.push(format!("acc {}", percent(acc)));
            }
            last_eval = short.join(" ");
        }
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s{}",
            report.loss,
            report.lr,
            report.tokens_per_s,
            if last_eval.is_empty() {
                String::new()
            } else {
                format!(" | {last_eval}")
            }
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

/// `step 300: val loss 1.2345, exec accuracy 12.0% (Simple 20.0%, ...)`.
fn eval_line(report: &text2sql_train::StepReport) -> String {
    let mut parts = Vec::new();
    if let Some(v) = report.val_loss {
        parts.push(format!("val loss {v:.4}"));
    }
    if !report.val_loss_by_source.is_empty() {
        let by_source: Vec<String> = report
            .val_loss_by_source
            .iter()
            .map(|(name, v)| format!("{name} {v:.4}"))
            .collect();
        parts.push(format!("by source ({})", by_source.join(", ")));
    }
    if let Some(acc) = report.exec_accuracy {
        parts.push(format!(
            "exec accuracy {}{}",
            percent(acc),
            by_tier(&report.exec_accuracy_by_tier)
        ));
    }
    if let Some(failed) = report.exec_gold_errors {
        parts.push(format!(
            "WARNING: {failed} gold queries failed to run, counted as wrong (reasons in \
             eval/step-{}.jsonl)",
            report.step
        ));
    }
    format!("step {}: {}", report.step, parts.join(", "))
}

fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

fn by_tier(tiers: &BTreeMap<String, f64>) -> String {
    if tiers.is_empty() {
        return String::new();
    }
    // Easiest tier first, as the plots and `text2sql eval` list them.
    let mut tiers: Vec<(&String, &f64)> = tiers.iter().collect();
    tiers.sort_by_key(|(name, _)| {
        name.parse::<text2sql_train::Tier>()
            .map_or(usize::MAX, |t| t as usize)
    });
    let parts: Vec<String> = tiers
        .iter()
        .map(|(name, acc)| format!("{name} {}", percent(**acc)))
        .collect();
    format!(" ({})", parts.join(", "))
}

fn print_summary(summary: &TrainSummary) {
    let metric = summary.best.as_ref().map_or("validation", |b| {
        if b.metric == "exec_accuracy" {
            "execution accuracy"
        } else {
            "validation loss"
        }
    });
    println!(
        "trained {} steps ({} tokens){}",
        summary.steps,
        summary.tokens_seen,
        if summary.stopped_early {
            format!(", stopped early: {metric} stopped improving")
        } else if summary.out_of_time {
            ", stopped at the time budget (training.max_minutes)".to_string()
        } else {
            String::new()
        }
    );
    if let Some(loss) = summary.final_loss {
        println!("final training loss: {loss:.4}");
    }
    if let Some(loss) = summary.last_val_loss {
        println!("last validation loss: {loss:.4}");
    }
    if let Some(acc) = summary.last_exec_accuracy {
        println!(
            "last execution accuracy: {} on {} validation examples{}",
            percent(acc),
            summary.exec_sample,
            by_tier(&summary.last_exec_accuracy_by_tier)
        );
    }
    if let Some(best) = &summary.best {
        let value = if best.metric == "exec_accuracy" {
            percent(best.value)
        } else {
            format!("{:.4}", best.value)
        };
        println!(
            "best {metric} {value} at step {}: {}",
            best.step,
            best.dir.display()
        );
    }
    if let Some(path) = &summary.last_checkpoint {
        println!("last checkpoint: {}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_line_warns_when_gold_queries_failed() {
        let mut report = text2sql_train::StepReport {
            step: 300,
            max_steps: 1000,
            loss: 1.0,
            lr: 1e-3,
            grad_norm: 1.0,
            tokens_per_s: 1.0,
            val_loss: Some(1.2345),
            val_loss_by_source: BTreeMap::new(),
            exec_accuracy: Some(0.0),
            exec_accuracy_by_tier: BTreeMap::new(),
            exec_gold_errors: None,
        };
        assert_eq!(
            eval_line(&report),
            "step 300: val loss 1.2345, exec accuracy 0.0%"
        );
        report.exec_gold_errors = Some(100);
        let line = eval_line(&report);
        assert!(
            line.ends_with(
                "WARNING: 100 gold queries failed to run, counted as wrong (reasons in \
                 eval/step-300.jsonl)"
            ),
            "{line}"
        );
    }
}

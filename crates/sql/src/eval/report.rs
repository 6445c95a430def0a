//! The numbers people read: overall and per-group accuracy, error and
//! timeout rates, latency percentiles; as JSON and as a text table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{EvalOptions, ExampleOutcome, Verdict};
use crate::compare::Rule;
use crate::hardness::Hardness;

/// Accuracy of one group of examples (a tier, a hardness level).
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub name: String,
    /// Examples with a database (scored).
    pub examples: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub exact_match_rate: f64,
}

/// Percentiles of prediction execution time, in milliseconds, over the
/// examples whose prediction was executed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// How the predictions were made, when a model made them in the same run
/// (`eval --model`): decoding time is what constrained decoding costs, so
/// the report carries it next to the accuracy it buys.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationStats {
    pub questions: usize,
    pub beams: usize,
    pub constrained: bool,
    /// Wall-clock seconds of generation alone (inputs built, model loaded
    /// and scoring not counted).
    pub seconds: f64,
    pub ms_per_question: f64,
}

impl GenerationStats {
    pub fn new(questions: usize, beams: usize, constrained: bool, seconds: f64) -> Self {
        GenerationStats {
            questions,
            beams,
            constrained,
            seconds,
            ms_per_question: 1000.0 * seconds / questions.max(1) as f64,
        }
    }
}

/// The report without the per-example lines.
#[derive(Debug, Clone, Serialize)]
pub struct EvalSummary {
    pub rule: Rule,
    pub keep_distinct: bool,
    pub execution_guided: bool,
    pub timeout_s: f64,
    /// Every example given.
    pub total: usize,
    /// Examples with a database: the denominator of every rate below.
    pub scored: usize,
    /// Examples without a database file: counted here, never scored.
    pub no_database: usize,
    pub correct: usize,
    /// Execution accuracy: correct / scored.
    pub accuracy: f64,
    /// Correct answers where the gold result has no rows, so any query
    /// returning nothing (a join on a condition no row meets) matches it:
    /// one database cannot tell those apart, which is why Spider's test
    /// suite runs each query on many databases. Part of `correct`.
    pub correct_with_no_rows: usize,
    /// Scored examples whose gold result has no rows.
    pub gold_with_no_rows: usize,
    /// Normalised exact string match (not Spider's component exact match).
    pub normalized_exact_match: usize,
    pub normalized_exact_match_rate: f64,
    pub wrong_result: usize,
    pub sql_errors: usize,
    pub refused: usize,
    pub timeouts: usize,
    pub gold_errors: usize,
    /// (sql_errors + refused) / scored.
    pub error_rate: f64,
    pub timeout_rate: f64,
    pub by_tier: Vec<Bucket>,
    pub by_hardness: Vec<Bucket>,
    pub prediction_latency: Latency,
    /// Set by `eval --model`; absent when predictions came from a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationStats>,
}

/// The summary and one outcome per example, in input order.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub summary: EvalSummary,
    pub examples: Vec<ExampleOutcome>,
}

fn rate(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

fn bucket(name: String, outcomes: &[&ExampleOutcome]) -> Bucket {
    let correct = outcomes.iter().filter(|o| o.correct).count();
    let exact = outcomes.iter().filter(|o| o.exact_match).count();
    Bucket {
        name,
        examples: outcomes.len(),
        correct,
        accuracy: rate(correct, outcomes.len()),
        exact_match_rate: rate(exact, outcomes.len()),
    }
}

/// SynSQL's and BIRD's tiers from easiest to hardest, then any other by name.
fn tier_rank(tier: &str) -> usize {
    const ORDER: [&str; 5] = [
        "simple",
        "moderate",
        "complex",
        "highly complex",
        "challenging",
    ];
    let lower = tier.to_lowercase();
    ORDER
        .iter()
        .position(|t| *t == lower)
        .unwrap_or(ORDER.len())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl EvalReport {
    pub fn from_outcomes(examples: Vec<ExampleOutcome>, options: &EvalOptions) -> Self {
        let scored: Vec<&ExampleOutcome> = examples
            .iter()
            .filter(|o| o.verdict != Verdict::NoDatabase)
            .collect();
        let count = |v: Verdict| scored.iter().filter(|o| o.verdict == v).count();
        let correct = count(Verdict::Correct);
        let exact = scored.iter().filter(|o| o.exact_match).count();
        let (sql_errors, refused, timeouts) = (
            count(Verdict::SqlError),
            count(Verdict::Refused),
            count(Verdict::Timeout),
        );

        let mut tiers: BTreeMap<(usize, &str), Vec<&ExampleOutcome>> = BTreeMap::new();
        let mut hardness: BTreeMap<Hardness, Vec<&ExampleOutcome>> = BTreeMap::new();
        for outcome in &scored {
            if let Some(tier) = &outcome.tier {
                tiers
                    .entry((tier_rank(tier), tier.as_str()))
                    .or_default()
                    .push(outcome);
            }
            if let Some(level) = outcome.hardness {
                hardness.entry(level).or_default().push(outcome);
            }
        }
        let mut latencies: Vec<f64> = scored.iter().filter_map(|o| o.prediction_ms).collect();
        latencies.sort_by(f64::total_cmp);

        let summary = EvalSummary {
            rule: options.rule,
            keep_distinct: options.keep_distinct,
            execution_guided: options.execution_guided,
            timeout_s: options.limits.timeout.as_secs_f64(),
            total: examples.len(),
            scored: scored.len(),
            no_database: examples.len() - scored.len(),
            correct,
            accuracy: rate(correct, scored.len()),
            correct_with_no_rows: scored
                .iter()
                .filter(|o| o.correct && o.gold_rows == Some(0))
                .count(),
            gold_with_no_rows: scored.iter().filter(|o| o.gold_rows == Some(0)).count(),
            normalized_exact_match: exact,
            normalized_exact_match_rate: rate(exact, scored.len()),
            wrong_result: count(Verdict::WrongResult),
            sql_errors,
            refused,
            timeouts,
            gold_errors: count(Verdict::GoldError),
            error_rate: rate(sql_errors + refused, scored.len()),
            timeout_rate: rate(timeouts, scored.len()),
            by_tier: tiers
                .into_iter()
                .map(|((_, name), o)| bucket(name.to_string(), &o))
                .collect(),
            by_hardness: hardness
                .into_iter()
                .map(|(level, o)| bucket(level.name().to_string(), &o))
                .collect(),
            prediction_latency: Latency {
                count: latencies.len(),
                p50_ms: percentile(&latencies, 50.0),
                p90_ms: percentile(&latencies, 90.0),
                p99_ms: percentile(&latencies, 99.0),
                max_ms: latencies.last().copied().unwrap_or(0.0),
            },
            generation: None,
        };
        EvalReport { summary, examples }
    }
}

impl EvalSummary {
    /// The report as a plain-text table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let rule = match self.rule {
            Rule::Spider if self.keep_distinct => "spider test-suite (DISTINCT kept)",
            Rule::Spider => "spider test-suite",
            Rule::Bird => "bird / omnisql set",
        };
        let guided = if self.execution_guided {
            ", execution-guided"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "execution accuracy, {rule} rule{guided}, timeout {} s",
            self.timeout_s
        );
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>8} {:>9} {:>13}",
            "group", "examples", "correct", "accuracy", "exact (norm.)"
        );
        let mut row = |name: &str, n: usize, correct: usize, acc: f64, exact: f64| {
            let _ = writeln!(
                out,
                "{name:<14} {n:>8} {correct:>8} {:>8.2}% {:>12.2}%",
                acc * 100.0,
                exact * 100.0
            );
        };
        row(
            "all",
            self.scored,
            self.correct,
            self.accuracy,
            self.normalized_exact_match_rate,
        );
        for b in &self.by_tier {
            row(
                &format!("tier {}", b.name),
                b.examples,
                b.correct,
                b.accuracy,
                b.exact_match_rate,
            );
        }
        for b in &self.by_hardness {
            row(
                &b.name,
                b.examples,
                b.correct,
                b.accuracy,
                b.exact_match_rate,
            );
        }
        let _ = writeln!(
            out,
            "correct with an empty gold result: {} (of {} such questions; any query returning no rows matches them)",
            self.correct_with_no_rows, self.gold_with_no_rows
        );
        let _ = writeln!(
            out,
            "wrong result {}, SQL errors {}, refused {}, timeouts {}, gold errors {} (error rate {:.2}%, timeout rate {:.2}%)",
            self.wrong_result,
            self.sql_errors,
            self.refused,
            self.timeouts,
            self.gold_errors,
            self.error_rate * 100.0,
            self.timeout_rate * 100.0
        );
        let _ = writeln!(
            out,
            "no database: {} of {} examples (not scored)",
            self.no_database, self.total
        );
        let l = &self.prediction_latency;
        let _ = writeln!(
            out,
            "prediction execution: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        );
        if let Some(g) = &self.generation {
            let _ = writeln!(
                out,
                "generation: {} questions in {:.2} s ({:.1} ms per question), {} beam(s), {}",
                g.questions,
                g.seconds,
                g.ms_per_question,
                g.beams,
                if g.constrained {
                    "constrained"
                } else {
                    "unconstrained"
                }
            );
        }
        out
    }
}

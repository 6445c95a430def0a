//! What value retrieval adds to the model input, without training: on a
//! prepared split (written by `text2sql prepare --databases …`, so it has
//! `values.parquet`), the share of the gold SQL's string literals that the
//! input shows, with example values matching the question only and with
//! retrieved values too, the input length in tokens, and the time to
//! retrieve per question. `bench/value_retrieval.sh` runs it on Spider.
//!
//!   cargo run --release --example value_retrieval -- PROCESSED_DIR train|val TOKENIZER_DIR [MAX_SOURCE_TOKENS]
//!
//! With `MISSES=N` in the environment it prints up to N literals that the
//! input with retrieved values does not show as a value, with the input.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::serialize::{CompactOptions, ValuesShown};
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::InputFormat;

/// The string literals of a SQL query (single- or double-quoted, quotes
/// doubled inside), without the `%` of LIKE patterns; empty ones left out.
fn literals(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut literal = String::new();
        while let Some(d) = chars.next() {
            if d == c {
                if chars.peek() == Some(&c) {
                    chars.next();
                } else {
                    break;
                }
            }
            literal.push(d);
        }
        let literal = literal.trim_matches('%').trim().to_string();
        if !literal.is_empty() {
            out.push(literal);
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    inputs: usize,
    literals: usize,
    /// Literals found verbatim anywhere in the input (the question included).
    in_input: usize,
    /// Literals shown as a value in the schema part (`( … , literal , … )`).
    as_value: usize,
    tokens: Vec<usize>,
    pruned: usize,
}

impl Tally {
    fn report(&mut self, name: &str) {
        self.tokens.sort_unstable();
        let mean = self.tokens.iter().sum::<usize>() as f64 / self.tokens.len().max(1) as f64;
        let p95 = self
            .tokens
            .get((self.tokens.len() * 95 / 100).min(self.tokens.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        let pct = |n: usize| 100.0 * n as f64 / self.literals.max(1) as f64;
        println!(
            "{name:<34} literals in input {:>5.1}% ({}/{}), shown as a value {:>5.1}% ({}); \
             tokens mean {mean:.1}, p95 {p95}; pruned inputs {}",
            pct(self.in_input),
            self.in_input,
            self.literals,
            pct(self.as_value),
            self.as_value,
            self.pruned
        );
    }
}

fn shown_as_value(input: &str, literal: &str) -> bool {
    // Values sit between `( ` / `, ` and ` ,` / ` )` in the schema part.
    let schema = input.split_once(" | ").map_or(input, |(_, s)| s);
    [" ( ", " , "].iter().any(|before| {
        [" , ", " )"]
            .iter()
            .any(|after| schema.contains(&format!("{before}{literal}{after}")))
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        bail!("usage: value_retrieval PROCESSED_DIR train|val TOKENIZER_DIR [MAX_SOURCE_TOKENS]");
    }
    let dataset = ProcessedDataset::open(&args[0])?;
    let split = match args[1].as_str() {
        "train" => Split::Train,
        "val" => Split::Val,
        other => bail!("split must be train or val, not `{other}`"),
    };
    let tokenizer = Tokenizer::from_dir(&PathBuf::from(&args[2]))?;
    let max_source_tokens = match args.get(3) {
        Some(n) => n.parse().context("MAX_SOURCE_TOKENS")?,
        None => InputFormat::default().max_source_tokens,
    };
    let started = Instant::now();
    let schemas = dataset.schemas()?;
    let load_s = started.elapsed().as_secs_f64();
    let values: usize = schemas
        .values()
        .filter_map(|r| r.schema.values.as_ref())
        .map(|i| i.value_count())
        .sum();
    if schemas.values().any(|r| r.schema.values.is_none()) {
        bail!("{}: no values.parquet (prepare with --databases)", args[0]);
    }
    println!(
        "{} databases, {values} indexed values, schemas and values.parquet loaded in {load_s:.2} s",
        schemas.len()
    );

    let format = |values: ValuesShown, retrieved_values: bool| InputFormat {
        max_source_tokens,
        schema: CompactOptions {
            values,
            foreign_keys: true,
            retrieved_values,
            schema_linking: false,
        },
        ..InputFormat::default()
    };
    let formats = [
        (
            "examples matching the question",
            format(ValuesShown::MatchingQuestion, false),
        ),
        (
            "  + retrieved values",
            format(ValuesShown::MatchingQuestion, true),
        ),
        (
            "all examples (the default)",
            format(ValuesShown::All, false),
        ),
        ("  + retrieved values", format(ValuesShown::All, true)),
    ];
    let mut tallies: Vec<Tally> = formats.iter().map(|_| Tally::default()).collect();
    // `MISSES=N` prints up to N literals the retrieving form does not show.
    let mut misses: usize = std::env::var("MISSES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut retrieve_us = Vec::new();
    let mut retrieved = 0usize;
    for example in dataset.split(split).iter() {
        let example = example?;
        let schema = &schemas
            .get(&example.db_id)
            .with_context(|| format!("no schema for `{}`", example.db_id))?
            .schema;
        let question = formats[0]
            .1
            .question_text(&example.question, &example.external_knowledge);
        if let Some(index) = &schema.values {
            let t = Instant::now();
            let found = index.retrieve(&question);
            retrieve_us.push(t.elapsed().as_secs_f64() * 1e6);
            retrieved += found.matches.len();
        }
        let literals = literals(&example.sql);
        for (f, ((_, format), tally)) in formats.iter().zip(&mut tallies).enumerate() {
            let input = format.source_text(
                &example.question,
                &example.external_knowledge,
                schema,
                None,
                None,
                &tokenizer,
            );
            tally.inputs += 1;
            tally.tokens.push(input.pruned.tokens);
            tally.pruned += usize::from(input.pruned.any());
            for literal in &literals {
                tally.literals += 1;
                tally.in_input += usize::from(input.text.contains(literal.as_str()));
                let shown = shown_as_value(&input.text, literal);
                tally.as_value += usize::from(shown);
                if f == 1 && !shown && misses > 0 {
                    misses -= 1;
                    println!("miss: `{literal}` in {}: {}", example.sql, input.text);
                }
            }
        }
    }
    println!(
        "{} questions, {} string literals in their gold SQL; budget {max_source_tokens} tokens",
        tallies[0].inputs, tallies[0].literals
    );
    for ((name, _), tally) in formats.iter().zip(&mut tallies) {
        tally.report(name);
    }
    retrieve_us.sort_by(f64::total_cmp);
    let n = retrieve_us.len().max(1);
    println!(
        "retrieval: {:.2} values per question; {:.1} us mean, {:.1} us p95 per question",
        retrieved as f64 / n as f64,
        retrieve_us.iter().sum::<f64>() / n as f64,
        retrieve_us.get(n * 95 / 100).copied().unwrap_or(0.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_shown_values() {
        assert_eq!(
            literals("SELECT a FROM t WHERE b = 'it''s' AND c LIKE \"%Lyon%\" AND d = ''"),
            ["it's", "Lyon"]
        );
        let input = "q | db | t : city ( Lyon , Paris ) , name";
        assert!(shown_as_value(input, "Lyon") && shown_as_value(input, "Paris"));
        assert!(!shown_as_value(input, "name"));
    }
}

//! Fitting a serialized schema into a token budget by leaving out whole
//! parts (example values, then columns, then tables, least relevant first),
//! never by cutting text, and counting how often that was needed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::relevance::{relevance, sql_references};
use super::selection::SchemaSelection;
use crate::schema::DatabaseSchema;
use crate::values::ValueMatches;

/// A maximum token count and the tokenizer that counts (the data crate knows
/// no tokenizer, so the caller passes one in).
pub struct TokenBudget<'a> {
    pub max_tokens: usize,
    pub count_tokens: &'a dyn Fn(&str) -> usize,
}

/// What a budgeted serialization left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Columns whose example values were left out (the column stays).
    pub value_lists: usize,
    /// `table.column` of columns left out one by one.
    pub columns: Vec<String>,
    /// Tables left out whole.
    pub tables: Vec<String>,
    /// Tokens of the text returned.
    pub tokens: usize,
    /// Even with everything prunable gone the text is over budget (the
    /// question, the tables the gold SQL uses, or keys alone are too long).
    pub over_budget: bool,
}

impl Pruned {
    pub fn any(&self) -> bool {
        self.value_lists > 0 || !self.columns.is_empty() || !self.tables.is_empty()
    }
}

/// A serialization and what was pruned to produce it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunedText {
    pub text: String,
    pub pruned: Pruned,
}

/// How often pruning happened over many serializations (prepare and train
/// report it); [`PruneStats::merge`] combines counts from parallel workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneStats {
    pub inputs: u64,
    /// Inputs where anything was left out.
    pub pruned_inputs: u64,
    /// Inputs still over budget after pruning all that may be pruned.
    pub over_budget_inputs: u64,
    pub value_lists_dropped: u64,
    pub columns_dropped: u64,
    pub tables_dropped: u64,
}

impl PruneStats {
    pub fn record(&mut self, pruned: &Pruned) {
        self.inputs += 1;
        self.pruned_inputs += u64::from(pruned.any());
        self.over_budget_inputs += u64::from(pruned.over_budget);
        self.value_lists_dropped += pruned.value_lists as u64;
        self.columns_dropped += pruned.columns.len() as u64;
        self.tables_dropped += pruned.tables.len() as u64;
    }

    pub fn merge(&mut self, other: &PruneStats) {
        self.inputs += other.inputs;
        self.pruned_inputs += other.pruned_inputs;
        self.over_budget_inputs += other.over_budget_inputs;
        self.value_lists_dropped += other.value_lists_dropped;
        self.columns_dropped += other.columns_dropped;
        self.tables_dropped += other.tables_dropped;
    }

    /// Share of inputs that needed pruning, 0 when there were none.
    pub fn pruned_fraction(&self) -> f64 {
        if self.inputs == 0 {
            0.0
        } else {
            self.pruned_inputs as f64 / self.inputs as f64
        }
    }
}

impl fmt::Display for PruneStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "schema pruned for {} of {} inputs ({:.1}%): {} example lists, {} columns, {} tables left out; {} still over budget",
            self.pruned_inputs,
            self.inputs,
            100.0 * self.pruned_fraction(),
            self.value_lists_dropped,
            self.columns_dropped,
            self.tables_dropped,
            self.over_budget_inputs
        )
    }
}

/// Sort key of a prunable part, smallest goes first: (0 for example values,
/// 1 for columns and tables; relevance score; stage 0 values / 1 column /
/// 2 table; table score; later position first).
type PruneRank = (u8, u32, u8, u32, std::cmp::Reverse<(usize, usize)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Values(usize, usize),
    Column(usize, usize),
    Table(usize),
}

/// The parts that may be left out, in the order they go: first example
/// values of columns whose values do not occur in the question (they are
/// decoration); then columns that are neither keys nor used by the gold SQL
/// and tables the gold SQL does not use, together, least relevant to the
/// question first (a column at equal relevance before a table), later in the
/// schema first. So an unrelated table goes before a column that shares a
/// word with the question. The most relevant table, and in every table its
/// keys (or its most relevant column when it has none), always stay.
///
/// Columns holding a value the question retrieved (`matches`) are kept
/// with their values, and so are their tables, as if the gold SQL used them.
fn prunable_parts(
    schema: &DatabaseSchema,
    question: &str,
    gold_sql: Option<&str>,
    matches: Option<&ValueMatches>,
) -> Vec<Part> {
    let relevance = relevance(schema, question);
    let gold = gold_sql.map(|sql| sql_references(schema, sql));
    let matched = |t: usize, c: usize| matches.is_some_and(|m| m.has_column(t, c));
    let gold_table = |t: usize| {
        gold.as_ref().is_some_and(|g| g.tables[t])
            || matches.is_some_and(|m| m.matches.iter().any(|v| v.table == t))
    };
    let gold_column =
        |t: usize, c: usize| gold.as_ref().is_some_and(|g| g.columns[t][c]) || matched(t, c);

    let mut keys: Vec<Vec<bool>> = schema
        .tables
        .iter()
        .map(|t| {
            let mut k = vec![false; t.columns.len()];
            for &c in &t.primary_key {
                k[c] = true;
            }
            k
        })
        .collect();
    for fk in &schema.foreign_keys {
        keys[fk.table][fk.column] = true;
        keys[fk.ref_table][fk.ref_column] = true;
    }
    for (t, table_keys) in keys.iter_mut().enumerate() {
        if !table_keys.contains(&true) {
            // Highest score, earliest on ties.
            let best = (0..table_keys.len())
                .max_by_key(|&c| (relevance.columns[t][c], std::cmp::Reverse(c)));
            if let Some(best) = best {
                table_keys[best] = true;
            }
        }
    }
    let top_table =
        (0..schema.tables.len()).max_by_key(|&t| (relevance.tables[t], std::cmp::Reverse(t)));

    let mut ranked: Vec<(PruneRank, Part)> = Vec::new();
    for (t, table) in schema.tables.iter().enumerate() {
        let table_score = relevance.tables[t];
        for (c, column) in table.columns.iter().enumerate() {
            // A column's own match counts double, plus its table's name:
            // `continents.Continent` outranks a `Maker` column of an unrelated
            // `model_list` and the table `countries` that merely holds a
            // `Continent` column.
            let column_score = 2 * relevance.columns[t][c] + relevance.table_names[t];
            let position = std::cmp::Reverse((t, c));
            if !column.sample_values.is_empty() && !relevance.value_matches[t][c] && !matched(t, c)
            {
                ranked.push((
                    (0, column_score, 0, table_score, position),
                    Part::Values(t, c),
                ));
            }
            if !keys[t][c] && !gold_column(t, c) {
                ranked.push((
                    (1, column_score, 1, table_score, position),
                    Part::Column(t, c),
                ));
            }
        }
        if !gold_table(t) && Some(t) != top_table {
            let position = std::cmp::Reverse((t, 0));
            ranked.push(((1, table_score, 2, table_score, position), Part::Table(t)));
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, part)| part).collect()
}

fn selection_without(schema: &DatabaseSchema, parts: &[Part]) -> SchemaSelection {
    let mut selection = SchemaSelection::all(schema);
    for part in parts {
        match *part {
            Part::Values(t, c) => selection.values[t][c] = false,
            Part::Column(t, c) => selection.columns[t][c] = false,
            Part::Table(t) => selection.tables[t] = false,
        }
    }
    selection
}

/// Renders the schema with `render`, leaving out the fewest parts (in the
/// order of relevance described on `prunable_parts`) that bring the text
/// within `budget`. Token counts only shrink as parts go, so a binary search
/// over how many parts to leave out needs about log2(parts) counts.
pub fn prune_to_budget(
    schema: &DatabaseSchema,
    question: &str,
    gold_sql: Option<&str>,
    budget: &TokenBudget<'_>,
    render: &dyn Fn(&SchemaSelection) -> String,
) -> PrunedText {
    prune_to_budget_keeping(schema, question, gold_sql, None, budget, render)
}

/// [`prune_to_budget`] that also keeps the columns (with their values) and
/// tables of the values the question retrieved.
pub fn prune_to_budget_keeping(
    schema: &DatabaseSchema,
    question: &str,
    gold_sql: Option<&str>,
    matches: Option<&ValueMatches>,
    budget: &TokenBudget<'_>,
    render: &dyn Fn(&SchemaSelection) -> String,
) -> PrunedText {
    let attempt = |parts: &[Part]| {
        let text = render(&selection_without(schema, parts));
        let tokens = (budget.count_tokens)(&text);
        (text, tokens)
    };
    let (text, tokens) = attempt(&[]);
    if tokens <= budget.max_tokens {
        return PrunedText {
            text,
            pruned: Pruned {
                tokens,
                ..Pruned::default()
            },
        };
    }
    let parts = prunable_parts(schema, question, gold_sql, matches);
    let (mut best_text, mut best_tokens) = attempt(&parts);
    let mut best = parts.len();
    let over_budget = best_tokens > budget.max_tokens;
    if !over_budget {
        // Invariant: leaving out `low` parts is over budget, `best` fits.
        let mut low = 0;
        while best - low > 1 {
            let middle = low + (best - low) / 2;
            let (text, tokens) = attempt(&parts[..middle]);
            if tokens <= budget.max_tokens {
                best = middle;
                best_text = text;
                best_tokens = tokens;
            } else {
                low = middle;
            }
        }
    }
    let selection = selection_without(schema, &parts[..best]);
    let mut pruned = Pruned {
        tokens: best_tokens,
        over_budget,
        ..Pruned::default()
    };
    for (t, table) in schema.tables.iter().enumerate() {
        if !selection.table_shown(t) {
            pruned.tables.push(table.name.clone());
            continue;
        }
        for (c, column) in table.columns.iter().enumerate() {
            if !selection.column_shown(t, c) {
                pruned
                    .columns
                    .push(format!("{}.{}", table.name, column.name));
            } else if !column.sample_values.is_empty() && !selection.values_shown(t, c) {
                pruned.value_lists += 1;
            }
        }
    }
    PrunedText {
        text: best_text,
        pruned,
    }
}

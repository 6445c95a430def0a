//! The compact form T5 text-to-SQL models are trained on:
//! `question | db_id | table : col , col ( v1 , v2 ) | table2 : … | t.c = t2.c`.
//!
//! Choices, for a T5 model with a short input:
//! - names are printed as they are in SQL; one that holds characters other
//!   than `[A-Za-z0-9_]` is double-quoted (T5's vocabulary has no back-quote,
//!   and the model must learn to quote such names in its SQL anyway);
//! - example values go in parentheses after their column ([`ValuesShown`]):
//!   by default all of them (1–2 from enrichment), which shows the model
//!   spellings and formats (`'america'`, `'2023-01-01'`) it must reproduce in
//!   literals; under a budget the values that do not occur in the question
//!   go first;
//! - foreign keys follow the tables as `| t.c = t2.c` segments, since joins
//!   are where models most often go wrong;
//! - optionally ([`CompactOptions::schema_linking`]) each name the question
//!   mentions is marked, `@` when the question has every word of it and `~`
//!   when it has some, as IRNet and RAT-SQL feed their models schema-linking
//!   types: a model trained from scratch has no word embeddings that tell
//!   it `singers` in a question is the `Singer` table.

use super::budget::{prune_to_budget_keeping, PrunedText, TokenBudget};
use super::python_repr::python_float;
use super::relevance::{value_in_question, words};
use super::selection::SchemaSelection;
use super::symbols::SchemaSymbols;
use crate::schema::{DatabaseSchema, SampleValue};
use crate::values::ValueMatches;

/// Which example values the compact form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValuesShown {
    None,
    /// Only values that occur in the question (as PICARD does).
    MatchingQuestion,
    #[default]
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactOptions {
    pub values: ValuesShown,
    pub foreign_keys: bool,
    /// Show the database values the question mentions (retrieved from the
    /// schema's value index, see [`crate::values`]) before a column's
    /// example values, and keep their columns when pruning. Left out of
    /// the JSON when off, so formats saved before it read back unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrieved_values: bool,
    /// Mark the tables and columns whose names the question mentions: ` @`
    /// after a name all of whose words (`snake_case`/`camelCase` split,
    /// plural `s` and stop words dropped) are in the question, ` ~` after one
    /// that shares some. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_linking: bool,
}

/// The mark [`CompactOptions::schema_linking`] puts after a name all of whose
/// words the question has.
pub const EXACT_LINK_MARK: &str = "@";
/// The mark after a name that shares some of its words with the question.
pub const PARTIAL_LINK_MARK: &str = "~";

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            values: ValuesShown::All,
            foreign_keys: true,
            retrieved_values: false,
            schema_linking: false,
        }
    }
}

impl CompactOptions {
    /// The values `question` retrieves from the schema's value index when
    /// these options show retrieved values and the schema has an index.
    pub fn retrieve(&self, schema: &DatabaseSchema, question: &str) -> Option<ValueMatches> {
        if !self.retrieved_values {
            return None;
        }
        schema
            .values
            .as_ref()
            .map(|index| index.retrieve(&one_line(question)))
    }
}

/// The schema part of the compact T5 input, `db_id | table : col , … | …`,
/// with all example values and foreign keys.
pub fn compact_schema(schema: &DatabaseSchema) -> String {
    compact_schema_selected(
        schema,
        &SchemaSelection::all(schema),
        &CompactOptions::default(),
        "",
        None,
        None,
    )
}

/// The whole compact input, `question | db_id | …`, with nothing pruned
/// (the schema part alone when the question is empty).
pub fn compact_input(question: &str, schema: &DatabaseSchema, options: &CompactOptions) -> String {
    let matches = options.retrieve(schema, question);
    render_input(
        question,
        schema,
        &SchemaSelection::all(schema),
        options,
        matches.as_ref(),
        None,
    )
}

/// The compact input within `budget`: when the full text is too long,
/// example values, then columns, then tables are left out, least relevant to
/// the question first; keys and (at training time) whatever `gold_sql` uses
/// stay, and so do the columns of retrieved values with those values. Names
/// and values are never cut. With `symbols`, each name is preceded by its
/// symbol and foreign keys are written in symbols (see [`SchemaSymbols`]).
pub fn compact_input_within_budget(
    question: &str,
    schema: &DatabaseSchema,
    options: &CompactOptions,
    symbols: Option<&SchemaSymbols>,
    gold_sql: Option<&str>,
    budget: &TokenBudget<'_>,
) -> PrunedText {
    let matches = options.retrieve(schema, question);
    prune_to_budget_keeping(
        schema,
        question,
        gold_sql,
        matches.as_ref(),
        budget,
        &|selection| {
            render_input(
                question,
                schema,
                selection,
                options,
                matches.as_ref(),
                symbols,
            )
        },
    )
}

fn render_input(
    question: &str,
    schema: &DatabaseSchema,
    selection: &SchemaSelection,
    options: &CompactOptions,
    matches: Option<&ValueMatches>,
    symbols: Option<&SchemaSymbols>,
) -> String {
    let question = one_line(question);
    let schema_text =
        compact_schema_selected(schema, selection, options, &question, matches, symbols);
    if question.is_empty() {
        schema_text
    } else {
        format!("{question} | {schema_text}")
    }
}

/// The schema part for the parts `selection` keeps; `question` decides which
/// values [`ValuesShown::MatchingQuestion`] shows, and `matches` (the values
/// the question retrieved) go first in their columns' lists; `symbols`
/// label the names (and replace them in foreign keys).
pub fn compact_schema_selected(
    schema: &DatabaseSchema,
    selection: &SchemaSelection,
    options: &CompactOptions,
    question: &str,
    matches: Option<&ValueMatches>,
    symbols: Option<&SchemaSymbols>,
) -> String {
    let label = |name: &str| match symbols {
        Some(symbols) => symbols.labelled(name),
        None => compact_identifier(name),
    };
    let reference = |name: &str| match symbols {
        Some(symbols) => symbols.reference(name),
        None => compact_identifier(name),
    };
    let question_lower = question.to_lowercase();
    let question_words = if options.schema_linking {
        words(question)
    } else {
        Default::default()
    };
    let link = |name: &str, text: &mut String| {
        if !options.schema_linking {
            return;
        }
        let name_words = words(name);
        let shared = name_words.intersection(&question_words).count();
        let mark = if shared == 0 {
            return;
        } else if shared == name_words.len() {
            EXACT_LINK_MARK
        } else {
            PARTIAL_LINK_MARK
        };
        text.push(' ');
        text.push_str(mark);
    };
    let mut out = schema.db_id.clone();
    for (t, table) in schema.tables.iter().enumerate() {
        if !selection.table_shown(t) {
            continue;
        }
        let mut columns = Vec::new();
        for (c, column) in table.columns.iter().enumerate() {
            if !selection.column_shown(t, c) {
                continue;
            }
            let mut text = label(&column.name);
            link(&column.name, &mut text);
            if selection.values_shown(t, c) {
                let mut values: Vec<String> = matches
                    .into_iter()
                    .flat_map(|m| m.for_column(t, c))
                    .map(one_line)
                    .collect();
                let examples = column
                    .sample_values
                    .iter()
                    .filter(|v| match options.values {
                        ValuesShown::None => false,
                        ValuesShown::MatchingQuestion => value_in_question(v, &question_lower),
                        ValuesShown::All => true,
                    })
                    .map(compact_value);
                for example in examples {
                    if !values.contains(&example) {
                        values.push(example);
                    }
                }
                values.retain(|v| !v.is_empty());
                if !values.is_empty() {
                    text.push_str(&format!(" ( {} )", values.join(" , ")));
                }
            }
            columns.push(text);
        }
        let mut table_text = label(&table.name);
        link(&table.name, &mut table_text);
        out.push_str(&format!(" | {table_text} : {}", columns.join(" , ")));
    }
    if options.foreign_keys {
        for fk in &schema.foreign_keys {
            if selection.column_shown(fk.table, fk.column)
                && selection.column_shown(fk.ref_table, fk.ref_column)
            {
                let source = &schema.tables[fk.table];
                let target = &schema.tables[fk.ref_table];
                // Spaced with symbols: each symbol is a token with the
                // space before it.
                let dot = if symbols.is_some() { " . " } else { "." };
                out.push_str(&format!(
                    " | {}{dot}{} = {}{dot}{}",
                    reference(&source.name),
                    reference(&source.columns[fk.column].name),
                    reference(&target.name),
                    reference(&target.columns[fk.ref_column].name)
                ));
            }
        }
    }
    out
}

/// A name as the compact form prints it: double-quoted (quotes doubled) when
/// it holds characters other than `[A-Za-z0-9_]`.
pub fn compact_identifier(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty() {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn compact_value(value: &SampleValue) -> String {
    match value {
        SampleValue::Integer(i) => i.to_string(),
        SampleValue::Real(f) => python_float(*f),
        SampleValue::Text(s) => one_line(s),
    }
}

/// Runs of whitespace (newlines of multi-turn questions included) become one
/// space, so the input stays one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, ForeignKey, Table};

    fn column(name: &str, values: Vec<SampleValue>) -> Column {
        Column {
            name: name.into(),
            description: name.into(),
            data_type: "TEXT".into(),
            sample_values: values,
        }
    }

    fn table(name: &str, columns: Vec<Column>, primary_key: Vec<usize>) -> Table {
        Table {
            name: name.into(),
            natural_name: name.replace('_', " "),
            columns,
            primary_key,
        }
    }

    fn text(s: &str) -> SampleValue {
        SampleValue::Text(s.into())
    }

    /// A shop database with one table the test questions are about
    /// (`singers`) and several long unrelated ones.
    fn shop() -> DatabaseSchema {
        let mut tables = vec![
            table(
                "singers",
                vec![
                    column(
                        "singer_id",
                        vec![SampleValue::Integer(1), SampleValue::Integer(2)],
                    ),
                    column("name", vec![text("Joe Sharp"), text("Timbaland")]),
                    column("country", vec![text("Netherlands"), text("United States")]),
                    column("birth_year", vec![SampleValue::Real(1948.0)]),
                ],
                vec![0],
            ),
            table(
                "concerts",
                vec![
                    column("concert_id", vec![SampleValue::Integer(1)]),
                    column("singer_id", vec![SampleValue::Integer(1)]),
                    column("Stadium Name", vec![text("Stark's \"Park\"")]),
                ],
                vec![0],
            ),
        ];
        for i in 0..6 {
            tables.push(table(
                &format!("inventory_ledger_{i}"),
                (0..8)
                    .map(|c| {
                        column(
                            &format!("warehouse_metric_{c}"),
                            vec![text("somewhat long filler value")],
                        )
                    })
                    .collect(),
                vec![],
            ));
        }
        DatabaseSchema {
            db_id: "concert_singer".into(),
            tables,
            foreign_keys: vec![ForeignKey {
                table: 1,
                column: 1,
                ref_table: 0,
                ref_column: 0,
            }],
            ddls: vec![],
            values: None,
        }
    }

    /// Whitespace-separated pieces, a stand-in tokenizer.
    fn count_words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn full_form_shows_values_quotes_names_and_foreign_keys() {
        let mut schema = shop();
        schema.tables.truncate(2);
        let text = compact_input(
            "How many singers\nare there?",
            &schema,
            &CompactOptions::default(),
        );
        assert_eq!(
            text,
            "How many singers are there? | concert_singer \
             | singers : singer_id ( 1 , 2 ) , name ( Joe Sharp , Timbaland ) , country ( Netherlands , United States ) , birth_year ( 1948.0 ) \
             | concerts : concert_id ( 1 ) , singer_id ( 1 ) , \"Stadium Name\" ( Stark's \"Park\" ) \
             | concerts.singer_id = singers.singer_id"
        );
        let matching = CompactOptions {
            values: ValuesShown::MatchingQuestion,
            foreign_keys: false,
            ..CompactOptions::default()
        };
        assert_eq!(
            compact_input("singers from the netherlands", &schema, &matching),
            "singers from the netherlands | concert_singer \
             | singers : singer_id , name , country ( Netherlands ) , birth_year \
             | concerts : concert_id , singer_id , \"Stadium Name\""
        );
    }

    #[test]
    fn schema_linking_marks_the_names_the_question_mentions() {
        let mut schema = shop();
        schema.tables.truncate(2);
        let options = CompactOptions {
            values: ValuesShown::None,
            foreign_keys: false,
            schema_linking: true,
            ..CompactOptions::default()
        };
        // `singers` is the table (plural dropped), `birth year` all of
        // `birth_year`, `Stadium` part of `Stadium Name`; `the` is a stop
        // word and `singer_id`'s `id` is not in the question.
        assert_eq!(
            compact_input(
                "Which singers' stadium hosted the concerts by birth year?",
                &schema,
                &options
            ),
            "Which singers' stadium hosted the concerts by birth year? | concert_singer \
             | singers @ : singer_id ~ , name , country , birth_year @ \
             | concerts @ : concert_id ~ , singer_id ~ , \"Stadium Name\" ~"
        );
        // Off, nothing is marked; and a question without names marks nothing.
        let plain = CompactOptions {
            schema_linking: false,
            ..options
        };
        let text = compact_input("Which singers?", &schema, &plain);
        assert!(!text.contains(EXACT_LINK_MARK) && !text.contains(PARTIAL_LINK_MARK));
        let text = compact_input("How old is everyone?", &schema, &options);
        assert!(!text.contains(EXACT_LINK_MARK) && !text.contains(PARTIAL_LINK_MARK));
    }

    #[test]
    fn symbols_label_names_and_write_foreign_keys() {
        let mut schema = shop();
        schema.tables.truncate(2);
        let symbols = SchemaSymbols::new(&schema, 16);
        let options = CompactOptions {
            values: ValuesShown::None,
            ..CompactOptions::default()
        };
        let budget = TokenBudget {
            max_tokens: 10_000,
            count_tokens: &count_words,
        };
        let text = compact_input_within_budget(
            "How many singers?",
            &schema,
            &options,
            Some(&symbols),
            None,
            &budget,
        )
        .text;
        assert_eq!(
            text,
            "How many singers? | concert_singer \
             | <sym0> singers : <sym2> singer_id , <sym3> name , <sym4> country , <sym5> birth_year \
             | <sym1> concerts : <sym6> concert_id , <sym2> singer_id , <sym7> \"Stadium Name\" \
             | <sym1> . <sym2> = <sym0> . <sym2>"
        );
    }

    #[test]
    fn fitting_input_is_not_pruned() {
        let schema = shop();
        let budget = TokenBudget {
            max_tokens: 10_000,
            count_tokens: &count_words,
        };
        let question = "What is the name of singers from the Netherlands?";
        let result = compact_input_within_budget(
            question,
            &schema,
            &CompactOptions::default(),
            None,
            None,
            &budget,
        );
        assert!(!result.pruned.any());
        assert_eq!(
            result.text,
            compact_input(question, &schema, &CompactOptions::default())
        );
        assert_eq!(result.pruned.tokens, count_words(&result.text));
    }

    #[test]
    fn pruning_fits_the_budget_keeps_the_relevant_table_and_whole_names() {
        let schema = shop();
        let question = "What is the name of singers from the Netherlands?";
        let options = CompactOptions::default();
        let full = compact_input(question, &schema, &options);
        let full_tokens = count_words(&full);
        let mut stats = crate::serialize::PruneStats::default();
        for max_tokens in [full_tokens - 1, full_tokens / 2, 60, 40] {
            let budget = TokenBudget {
                max_tokens,
                count_tokens: &count_words,
            };
            let result =
                compact_input_within_budget(question, &schema, &options, None, None, &budget);
            stats.record(&result.pruned);
            assert!(result.pruned.any());
            assert!(!result.pruned.over_budget, "budget {max_tokens}");
            assert!(count_words(&result.text) <= max_tokens, "{}", result.text);
            assert_eq!(result.pruned.tokens, count_words(&result.text));
            assert!(
                result.text.contains("| singers : singer_id"),
                "{}",
                result.text
            );
            assert!(
                result.text.contains(" country ( Netherlands"),
                "{}",
                result.text
            );
            // Every piece of the pruned text is a piece of the full text:
            // nothing is cut mid-name.
            let full_pieces: std::collections::HashSet<&str> = full.split_whitespace().collect();
            for piece in result.text.split_whitespace() {
                assert!(
                    full_pieces.contains(piece),
                    "`{piece}` is not in the full text"
                );
            }
            // Unrelated ledgers go before the singers' columns.
            if !result.pruned.tables.is_empty() {
                assert!(result
                    .pruned
                    .tables
                    .iter()
                    .all(|t| t.starts_with("inventory_ledger")));
            }
        }
        assert_eq!(stats.inputs, 4);
        assert_eq!(stats.pruned_inputs, 4);
        assert!(stats.tables_dropped > 0 && stats.value_lists_dropped > 0);
        // Just under the full size only example values need to go.
        let budget = TokenBudget {
            max_tokens: full_tokens - 1,
            count_tokens: &count_words,
        };
        let light = compact_input_within_budget(question, &schema, &options, None, None, &budget);
        assert!(light.pruned.columns.is_empty() && light.pruned.tables.is_empty());
        assert!(light.pruned.value_lists >= 1);
    }

    #[test]
    fn gold_sql_tables_and_columns_survive_any_budget() {
        let schema = shop();
        let gold =
            "SELECT warehouse_metric_5 FROM inventory_ledger_3 WHERE warehouse_metric_5 = 'x'";
        let budget = TokenBudget {
            max_tokens: 1,
            count_tokens: &count_words,
        };
        let result = compact_input_within_budget(
            "What is the name of singers?",
            &schema,
            &CompactOptions::default(),
            None,
            Some(gold),
            &budget,
        );
        assert!(result.pruned.over_budget);
        assert!(
            result.text.contains("| inventory_ledger_3 : "),
            "{}",
            result.text
        );
        assert!(
            result.text.contains("warehouse_metric_5"),
            "{}",
            result.text
        );
        assert!(
            !result.text.contains("warehouse_metric_4"),
            "{}",
            result.text
        );
        // The most relevant table stays even when nothing is asked of it.
        assert!(
            result.text.contains("| singers : singer_id"),
            "{}",
            result.text
        );
        assert!(!result
            .pruned
            .tables
            .contains(&"inventory_ledger_3".to_string()));
    }

    #[test]
    fn stats_merge_and_report() {
        let mut a = crate::serialize::PruneStats::default();
        a.record(&crate::serialize::Pruned {
            columns: vec!["t.c".into()],
            tokens: 10,
            ..Default::default()
        });
        let mut b = crate::serialize::PruneStats::default();
        b.record(&crate::serialize::Pruned::default());
        a.merge(&b);
        assert_eq!((a.inputs, a.pruned_inputs, a.columns_dropped), (2, 1, 1));
        assert!(a.to_string().contains("1 of 2 inputs (50.0%)"), "{a}");
    }
}

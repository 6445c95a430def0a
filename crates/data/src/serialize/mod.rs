//! Schema serializers: the OmniSQL DDL form (what OmniSQL-style prompts use,
//! byte-identical to OmniSQL's own output) and the compact form T5
//! text-to-SQL models are trained on, both optionally fitted to a token
//! budget by leaving out the parts least relevant to the question.

mod budget;
mod compact;
mod omnisql;
mod python_repr;
#[cfg(test)]
mod real_samples;
mod relevance;
mod selection;
mod symbols;

pub use budget::{
    prune_to_budget, prune_to_budget_keeping, PruneStats, Pruned, PrunedText, TokenBudget,
};
pub use compact::{
    compact_identifier, compact_input, compact_input_within_budget, compact_schema,
    compact_schema_selected, CompactOptions, ValuesShown, EXACT_LINK_MARK, PARTIAL_LINK_MARK,
};
pub use omnisql::{
    description_adds_information, format_identifier, needs_quotes, omnisql_ddl,
    omnisql_ddl_selected, OMNISQL_MAX_VALUES,
};
pub use python_repr::{python_float, python_list, python_str, python_value};
pub use relevance::{
    is_stop_word, name_words, relevance, sql_references, stem, value_in_question, words, Relevance,
    SqlReferences, WHOLE_NAME_SCORE, WORD_SCORE,
};
pub use selection::SchemaSelection;
pub use symbols::{starts_word_after_symbol, symbol_token, SchemaSymbols};

use crate::schema::DatabaseSchema;

/// The OmniSQL form within `budget`, pruned as
/// [`compact_input_within_budget`] prunes (the question is not part of the
/// text here: OmniSQL prompts carry it elsewhere).
pub fn omnisql_ddl_within_budget(
    schema: &DatabaseSchema,
    question: &str,
    gold_sql: Option<&str>,
    budget: &TokenBudget<'_>,
) -> PrunedText {
    prune_to_budget(schema, question, gold_sql, budget, &|selection| {
        omnisql_ddl_selected(schema, selection)
    })
}

//! Schema linking at decoding time: a table whose name the question uses
//! (`How many farms are there?` and `farm`) is preferred where the SQL
//! names a table.
//!
//! A model trained from scratch on a few hundred databases links questions
//! to an unseen schema poorly: the 5,000-step Spider model answered `How
//! many farms are there?` with `SELECT count(*) FROM city`, the first
//! table of the schema. A lexical match (the one the compact form's pruner
//! ranks tables by, [`text2sql_data::serialize::relevance`]) knows better
//! there, so constrained decoding adds a bonus to the log-probability of a
//! named table's symbol right after FROM or JOIN, until the query has used
//! it, as IRNet and RAT-SQL feed schema-linking matches to their decoders.
//! Where the model is confident the bonus changes nothing; where it hesitates
//! between tables the question's words decide. A table whose whole name
//! the question has counts a little more than one sharing as many of its
//! words: that farm question gets `farm`, not `farm_competition`.

use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{relevance, SchemaSymbols};

use crate::tokenizer::Tokenizer;

/// A schema name the question names: its symbol's token and the bonus
/// added to its log-probability where such a name may come (a table until
/// the query uses it; a column of a query held to a shape, see
/// [`crate::fill_links`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolLink {
    pub token: u32,
    pub bonus: f32,
}

/// [`crate::GenerationConfig::table_link_bonus`]'s default, per word of a
/// table's name in the question. Chosen on Spider train's 17 tuning
/// databases (1,067 questions, never trained on), 5,000-step Spider model,
/// constrained: right answers greedy 61 / 65 / 65 at 3 / 6 / 9 a word, 45
/// without; with 4 beams 58 / 57 / 50, 33 without.
pub const DEFAULT_TABLE_LINK_BONUS: f32 = 6.0;

/// What a table whose whole name the question has gets on top of its
/// words, in words: `farm` (1.5) beats `farm_competition` (1) for "How
/// many farms are there?", which both matched once. Chosen on Spider
/// train's tuning databases, right answers (with rows to find) at 0 / 0.5
/// / 1: greedy 65 (50) / 67 (52) / 67 (52); with query shapes, greedy 72
/// (56) / 74 (58), 4 execution-guided beams 76 (63) / 78 (66) / 78 (66);
/// but 4 beams without shapes 57 (51) / 54 (47) / 49 (42).
pub const WHOLE_NAME_SHARE: f32 = 0.5;

/// The tables of `schema` that `question` names, as the symbols (numbered
/// by `symbols`, tokens of `tokenizer`) the model writes for them, each
/// with `bonus_per_word` times the words of its name the question has
/// (and [`WHOLE_NAME_SHARE`] more when it has them all).
/// Empty when the bonus is 0 or no table is named.
pub fn table_links(
    question: &str,
    schema: &DatabaseSchema,
    symbols: &SchemaSymbols,
    tokenizer: &Tokenizer,
    bonus_per_word: f32,
) -> Vec<SymbolLink> {
    if bonus_per_word <= 0.0 {
        return Vec::new();
    }
    let relevance = relevance(schema, question);
    let mut links: Vec<SymbolLink> = Vec::new();
    for (t, table) in schema.tables.iter().enumerate() {
        let words = relevance.table_words(t);
        let token = symbols
            .symbol_of(&table.name)
            .and_then(|index| tokenizer.symbol_id(index));
        let (Some(token), true) = (token, words > 0) else {
            continue;
        };
        let whole = if relevance.table_whole_name(t) {
            WHOLE_NAME_SHARE
        } else {
            0.0
        };
        let bonus = bonus_per_word * (words as f32 + whole);
        // Two tables whose names differ only in case share a symbol.
        match links.iter_mut().find(|link| link.token == token) {
            Some(link) => link.bonus = link.bonus.max(bonus),
            None => links.push(SymbolLink { token, bonus }),
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{farm_schema, symbol_tokenizer};

    fn links(question: &str, bonus: f32) -> Vec<(String, f32)> {
        let tokenizer = symbol_tokenizer();
        let schema = farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        table_links(question, &schema, &symbols, &tokenizer, bonus)
            .into_iter()
            .map(|link| {
                let index = (0..8)
                    .find(|&i| tokenizer.symbol_id(i) == Some(link.token))
                    .unwrap();
                (symbols.name_of(index).unwrap().to_string(), link.bonus)
            })
            .collect()
    }

    #[test]
    fn the_tables_a_question_names_get_a_bonus_per_word() {
        // The whole name: a word and a half.
        assert_eq!(
            links("How many farms are there?", 6.0),
            [("farm".into(), 9.0)]
        );
        // Both words of `competition_record`; `city` and `farm` once each,
        // all whole names.
        assert_eq!(
            links("List the competition records of each farm and city.", 2.0),
            [
                ("city".into(), 3.0),
                ("farm".into(), 3.0),
                ("competition_record".into(), 5.0)
            ]
        );
        // One word each, but only `farm` whole.
        assert_eq!(
            links("Show the records of each farm.", 2.0),
            [("farm".into(), 3.0), ("competition_record".into(), 2.0)]
        );
        // A table between two named ones is needed for their join.
        assert_eq!(
            links("Which farms are in which city?", 1.0),
            [
                ("city".into(), 1.5),
                ("farm".into(), 1.5),
                ("competition_record".into(), 1.0)
            ]
        );
    }

    #[test]
    fn decoding_prefers_a_named_table_where_a_table_is_named_until_used() {
        let tokenizer = symbol_tokenizer();
        let schema = farm_schema();
        let symbols = SchemaSymbols::new(&schema, 8);
        let texts = crate::TokenTexts::new(&tokenizer);
        let checker = text2sql_sql::SqlChecker::new(std::sync::Arc::new(
            text2sql_sql::SchemaIndex::new(&schema),
        ));
        let links = table_links(
            "How many farms are there?",
            &schema,
            &symbols,
            &tokenizer,
            6.0,
        );
        let constraint =
            crate::Constraint::new(&texts, &tokenizer, vec![checker], &[Some(&symbols)])
                .with_table_links(vec![links]);
        let id = |piece: &str| tokenizer.token_to_id(piece).unwrap();
        let symbol = |name: &str| {
            tokenizer
                .symbol_id(symbols.symbol_of(name).unwrap())
                .unwrap()
        };
        let (farm, city) = (symbol("farm"), symbol("city"));
        let bonus = |history: &[u32]| {
            let mut row = vec![0.0; tokenizer.vocab_size()];
            constraint.prefer_links(0, &mut row, history);
            (row[farm as usize], row[city as usize])
        };
        let (select, from, join) = (id("▁SELECT"), id("▁FROM"), id("▁JOIN"));
        assert_eq!(bonus(&[select, from]), (9.0, 0.0));
        assert_eq!(bonus(&[select, city, from]), (9.0, 0.0));
        // Nowhere else, not once used, and not inside a subquery.
        assert_eq!(bonus(&[select]), (0.0, 0.0));
        assert_eq!(bonus(&[select, from, farm, join]), (0.0, 0.0));
        let open = (0..tokenizer.vocab_size() as u32)
            .find(|&t| texts.text(t).is_some_and(|text| text.trim() == "("))
            .unwrap();
        assert_eq!(bonus(&[select, from, city, open, select, from]), (0.0, 0.0));
    }

    #[test]
    fn no_named_table_or_no_bonus_gives_no_links() {
        assert!(links("What is the largest population?", 6.0).is_empty());
        assert!(links("How many farms are there?", 0.0).is_empty());
    }
}

//! Normalised exact match: a secondary figure, NOT Spider's component-wise
//! exact match. Two queries match when their normalised texts are equal:
//! `> =` style operators closed up, trailing semicolons dropped, a sqlparser round-trip when the text parses
//! as one statement, then tokens re-joined with single spaces, keywords and
//! identifiers case-folded, identifier quotes dropped; string literals keep
//! their case.

use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The normalised text of `sql`.
pub fn normalize_sql(sql: &str) -> String {
    let closed_up = crate::compare::close_up_operators(sql);
    let trimmed = closed_up
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let dialect = SQLiteDialect {};
    let text = match Parser::parse_sql(&dialect, trimmed) {
        Ok(statements) if statements.len() == 1 => statements[0].to_string(),
        _ => trimmed.to_string(),
    };
    match Tokenizer::new(&dialect, &text).tokenize() {
        Ok(tokens) => tokens
            .iter()
            .filter_map(normalize_token)
            .collect::<Vec<_>>()
            .join(" "),
        // Text sqlparser cannot even tokenize (an unclosed quote): compare it
        // with whitespace collapsed and case folded.
        Err(_) => text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

fn normalize_token(token: &Token) -> Option<String> {
    match token {
        Token::Whitespace(_) | Token::SemiColon => None,
        Token::Word(word) => Some(word.value.to_lowercase()),
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
            Some(format!("'{}'", s.replace('\'', "''")))
        }
        other => Some(other.to_string().to_lowercase()),
    }
}

/// Whether `prediction` and `gold` are equal after [`normalize_sql`].
pub fn normalized_exact_match(prediction: &str, gold: &str) -> bool {
    normalize_sql(prediction) == normalize_sql(gold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_spacing_quotes_and_semicolons_do_not_matter() {
        assert!(normalized_exact_match(
            "select  name ,  count(*) from Singer group by name;",
            "SELECT name, COUNT(*) FROM singer GROUP BY name"
        ));
        assert!(normalized_exact_match(
            "SELECT \"name\" FROM `t`",
            "select name from t"
        ));
        assert!(normalized_exact_match(
            "SELECT a FROM t WHERE b > = 1",
            "SELECT a FROM t WHERE b >= 1"
        ));
    }

    #[test]
    fn literals_and_structure_do_matter() {
        assert!(!normalized_exact_match(
            "SELECT a FROM t WHERE b = 'Abc'",
            "SELECT a FROM t WHERE b = 'abc'"
        ));
        assert!(!normalized_exact_match(
            "SELECT a, b FROM t",
            "SELECT b, a FROM t"
        ));
        assert!(!normalized_exact_match(
            "SELECT a FROM t WHERE b = 1",
            "SELECT a FROM t WHERE b = 2"
        ));
    }

    #[test]
    fn unparseable_text_is_still_compared() {
        assert!(normalized_exact_match(
            "SELECT 'unclosed",
            "select   'UNCLOSED"
        ));
        assert!(!normalized_exact_match("SELEC x", "SELECT x"));
    }
}

//! How relevant each table and column is to a question (word overlap of
//! names, descriptions and example values), and which ones a gold SQL query
//! uses. A lexical score is enough to decide what to prune first; it needs no
//! model and is deterministic.

use std::collections::HashSet;

use crate::schema::{DatabaseSchema, SampleValue};

/// Words that carry no schema meaning in questions.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "by", "can", "did", "do",
    "does", "each", "for", "from", "give", "has", "have", "how", "i", "in", "is", "it", "its",
    "list", "me", "many", "much", "of", "on", "or", "show", "that", "the", "their", "them",
    "there", "these", "this", "those", "to", "was", "were", "what", "when", "where", "which",
    "who", "whose", "with",
];

/// The matching words of a text: lower-cased runs of letters and digits, with
/// `camelCase` and `snake_case` split, a plural `s` removed and stop words
/// dropped.
pub fn words(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for word in name_words(text) {
        push_word(&mut out, &word);
    }
    out
}

/// The words of a name as a question would write them, in order:
/// lower-cased runs of letters and digits, `camelCase` and `snake_case`
/// split (`Total_Horses` and `totalHorses` are `total horses`).
pub fn name_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        let mut word = String::new();
        let mut previous_lower = false;
        for c in run.chars() {
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

/// Whether a lower-cased word is one that carries no schema meaning in
/// questions (`the`, `of`, `how`, ...).
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

fn push_word(out: &mut HashSet<String>, word: &str) {
    if word.is_empty() || is_stop_word(word) {
        return;
    }
    out.insert(stem(word).to_string());
}

/// A lower-cased word without its plural `s` (`singers` is `singer`;
/// `bus` and `class` stay), as matching compares words.
pub fn stem(word: &str) -> &str {
    match word.strip_suffix('s') {
        Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem,
        _ => word,
    }
}

/// Relevance scores of every table and column for one question.
#[derive(Debug, Clone)]
pub struct Relevance {
    /// The table's name overlap plus its best column's score.
    pub tables: Vec<u32>,
    /// The overlap of the table's own names (original and natural) alone.
    pub table_names: Vec<u32>,
    /// The question has every word of the table's name (`farm` in "How
    /// many farms are there?", where `farm_competition` has one of two).
    pub table_whole_names: Vec<bool>,
    pub columns: Vec<Vec<u32>>,
    /// `value_matches[t][c]`: one of the column's example values appears in
    /// the question.
    pub value_matches: Vec<Vec<bool>>,
}

impl Relevance {
    /// How many words of table `t`'s names (original and natural) the
    /// question has; a table joining two named tables counts one.
    pub fn table_words(&self, t: usize) -> u32 {
        self.table_names
            .get(t)
            .map_or(0, |score| score / NAME_WEIGHT)
    }

    /// Whether the question has every word of table `t`'s name.
    pub fn table_whole_name(&self, t: usize) -> bool {
        self.table_whole_names.get(t).copied().unwrap_or(false)
    }
}

const NAME_WEIGHT: u32 = 3;
const VALUE_WEIGHT: u32 = 3;
const DESCRIPTION_WEIGHT: u32 = 1;
const WHOLE_NAME_BONUS: u32 = 2;

/// A column's score where the question has every word of a one-word name
/// (`population`), or two words of a longer one.
pub const WHOLE_NAME_SCORE: u32 = NAME_WEIGHT + WHOLE_NAME_BONUS;

/// A table's or column's score from one word of its name.
pub const WORD_SCORE: u32 = NAME_WEIGHT;

pub fn relevance(schema: &DatabaseSchema, question: &str) -> Relevance {
    let question_words = words(question);
    let question_lower = question.to_lowercase();
    let overlap = |text: &str| words(text).intersection(&question_words).count() as u32;
    let mut tables = Vec::with_capacity(schema.tables.len());
    let mut table_names = Vec::with_capacity(schema.tables.len());
    let mut table_whole_names = Vec::with_capacity(schema.tables.len());
    let mut columns = Vec::with_capacity(schema.tables.len());
    let mut value_matches = Vec::with_capacity(schema.tables.len());
    for table in &schema.tables {
        let mut column_scores = Vec::with_capacity(table.columns.len());
        let mut matches = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let name_words = words(&column.name);
            let matched = name_words.intersection(&question_words).count() as u32;
            let mut score = NAME_WEIGHT * matched;
            if matched > 0 && matched as usize == name_words.len() {
                // the whole name is in the question: `Continent` beats `FullName` for "continent name"
                score += WHOLE_NAME_BONUS;
            }
            if !column.description.eq_ignore_ascii_case(&column.name) {
                score += DESCRIPTION_WEIGHT * overlap(&column.description);
            }
            let value_matched = column
                .sample_values
                .iter()
                .any(|v| value_in_question(v, &question_lower));
            if value_matched {
                score += VALUE_WEIGHT;
            }
            column_scores.push(score);
            matches.push(value_matched);
        }
        let name_words: HashSet<String> = words(&table.name)
            .union(&words(&table.natural_name))
            .cloned()
            .collect();
        let matched = name_words.intersection(&question_words).count();
        let name_score = NAME_WEIGHT * matched as u32;
        tables.push(name_score + column_scores.iter().copied().max().unwrap_or(0));
        table_names.push(name_score);
        table_whole_names.push(matched > 0 && matched == name_words.len());
        columns.push(column_scores);
        value_matches.push(matches);
    }
    // A table joining two tables the question names (`countries` between
    // `car_makers` and `continents`) is needed for the join: it counts as
    // named too.
    let named: Vec<bool> = table_names.iter().map(|&s| s > 0).collect();
    for (t, score) in table_names.iter_mut().enumerate() {
        if named[t] {
            continue;
        }
        let mut neighbours: Vec<usize> = schema
            .foreign_keys
            .iter()
            .filter_map(|fk| match (fk.table == t, fk.ref_table == t) {
                (true, false) => Some(fk.ref_table),
                (false, true) => Some(fk.table),
                _ => None,
            })
            .filter(|&n| named[n])
            .collect();
        neighbours.sort_unstable();
        neighbours.dedup();
        if neighbours.len() >= 2 {
            *score += NAME_WEIGHT;
            tables[t] += NAME_WEIGHT;
        }
    }
    Relevance {
        tables,
        table_names,
        table_whole_names,
        columns,
        value_matches,
    }
}

/// A value matches when the question contains it as whole words
/// (case-insensitive; text values of at least two characters).
pub fn value_in_question(value: &SampleValue, question_lower: &str) -> bool {
    let text = value.text().trim().to_lowercase();
    let long_enough = matches!(value, SampleValue::Integer(_)) || text.chars().count() >= 2;
    long_enough && contains_as_words(question_lower, &text)
}

/// `needle` occurs in `haystack` not inside a longer word.
fn contains_as_words(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(start, _)| {
        let before = haystack[..start].chars().next_back();
        let after = haystack[start + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The tables and columns a SQL query names: `tables[t]` when the query
/// names table `t`, `columns[t][c]` when it also names that table's column
/// `c`. String literals are skipped; quoted identifiers (`"x"`, `` `x` ``,
/// `[x]`) count. Matching is by name and case-insensitive, so a name that
/// also appears as an alias is kept too (keeping too much is harmless).
pub struct SqlReferences {
    pub tables: Vec<bool>,
    pub columns: Vec<Vec<bool>>,
}

pub fn sql_references(schema: &DatabaseSchema, sql: &str) -> SqlReferences {
    let identifiers = sql_identifiers(sql);
    let mut tables = Vec::with_capacity(schema.tables.len());
    let mut columns = Vec::with_capacity(schema.tables.len());
    for table in &schema.tables {
        let used = identifiers.contains(&table.name.to_lowercase());
        tables.push(used);
        columns.push(
            table
                .columns
                .iter()
                .map(|c| used && identifiers.contains(&c.name.to_lowercase()))
                .collect(),
        );
    }
    SqlReferences { tables, columns }
}

fn sql_identifiers(sql: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let closing = match c {
            '\'' => {
                // a string literal, with '' as an escaped quote
                while let Some(d) = chars.next() {
                    if d == '\'' && chars.peek() != Some(&'\'') {
                        break;
                    }
                    if d == '\'' {
                        chars.next();
                    }
                }
                continue;
            }
            '"' => Some('"'),
            '`' => Some('`'),
            '[' => Some(']'),
            _ => None,
        };
        if let Some(closing) = closing {
            let name: String = chars.by_ref().take_while(|&d| d != closing).collect();
            out.insert(name.to_lowercase());
        } else if c.is_alphanumeric() || c == '_' {
            let mut name = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    name.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.insert(name.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_question_words_in_order() {
        assert_eq!(name_words("Total_Horses"), ["total", "horses"]);
        assert_eq!(name_words("hostCityID"), ["host", "city", "id"]);
        assert_eq!(name_words("Area_km_2"), ["area", "km", "2"]);
        assert_eq!(name_words("\"Full Name\""), ["full", "name"]);
        assert!(name_words("__").is_empty());
    }

    #[test]
    fn words_split_case_and_plurals() {
        let w = words("How many carMakers are in each continents? full_name");
        for expected in ["car", "maker", "continent", "full", "name"] {
            assert!(w.contains(expected), "{expected} missing from {w:?}");
        }
        assert!(!w.contains("how") && !w.contains("each"));
        assert!(words("class").contains("class"));
    }

    #[test]
    fn sql_identifiers_skip_literals_and_unquote() {
        let ids = sql_identifiers(
            "SELECT T1.\"Full Name\", `Year`, [x y] FROM car_makers AS T1 WHERE name = 'it''s model_list'",
        );
        for expected in ["t1", "full name", "year", "x y", "car_makers", "name"] {
            assert!(ids.contains(expected), "{expected} missing from {ids:?}");
        }
        assert!(!ids.contains("model_list"), "inside a string literal");
    }

    #[test]
    fn values_match_whole_words_only() {
        let q = "cars made in usa in 1970";
        assert!(value_in_question(&SampleValue::Text("USA".into()), q));
        assert!(!value_in_question(&SampleValue::Text("us".into()), q));
        assert!(value_in_question(&SampleValue::Integer(1970), q));
        assert!(!value_in_question(&SampleValue::Integer(197), q));
        assert!(value_in_question(
            &SampleValue::Real(2.5),
            "rated 2.5 or more"
        ));
    }

    #[test]
    fn whole_names_and_values_in_the_question_score_higher() {
        use crate::schema::{Column, Table};
        let column = |name: &str, values: Vec<SampleValue>| Column {
            name: name.into(),
            description: name.into(),
            data_type: "text".into(),
            sample_values: values,
        };
        let schema = DatabaseSchema {
            db_id: "car_1".into(),
            tables: vec![
                Table {
                    name: "continents".into(),
                    natural_name: "continents".into(),
                    columns: vec![column("Continent", vec![]), column("ContId", vec![])],
                    primary_key: vec![1],
                },
                Table {
                    name: "car_makers".into(),
                    natural_name: "car makers".into(),
                    columns: vec![
                        column("FullName", vec![]),
                        column("Country", vec![SampleValue::Text("usa".into())]),
                    ],
                    primary_key: vec![],
                },
            ],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        };
        let r = relevance(&schema, "List the continent name of car makers from USA");
        assert!(r.columns[0][0] > r.columns[1][0], "{:?}", r.columns);
        assert_eq!(r.columns[0][1], 0);
        assert!(r.value_matches[1][1] && !r.value_matches[1][0]);
        assert!(r.tables[1] > r.tables[0], "{:?}", r.tables);
    }
}

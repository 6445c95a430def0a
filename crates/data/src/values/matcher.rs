//! Matching a question against a [`ValueIndex`].

use std::collections::HashSet;

use super::{ValueIndex, MAX_MATCHES_PER_COLUMN, MAX_MATCHES_PER_INPUT};
use crate::serialize::is_stop_word;

/// One word of a question or value: lower-cased, a plural `s` dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Word {
    pub stem: String,
    /// A word with no schema meaning (`the`, `of`, ...): it never starts a
    /// match on its own.
    pub stop: bool,
    /// Holds a letter (a run of digits alone is a number, which the
    /// question writes as the SQL does).
    pub alphabetic: bool,
}

/// The words of `text`: runs of letters and digits, lower-cased.
pub(super) fn words(text: &str) -> Vec<Word> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_lowercase();
            let stem = match lower.strip_suffix('s') {
                Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_string(),
                _ => lower.clone(),
            };
            Word {
                stop: is_stop_word(&lower),
                alphabetic: lower.chars().any(char::is_alphabetic),
                stem,
            }
        })
        .collect()
}

/// A partial match of a single word needs the word to be this rare: held by
/// at most this many values of the database (`Kennedy` for `John F Kennedy
/// International Airport`, not `airport`).
const RARE_WORD_VALUES: usize = 3;

/// One retrieved value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMatch {
    pub table: usize,
    pub column: usize,
    /// As stored in the database.
    pub value: String,
    /// Every word of the value occurs in the question, in order.
    pub exact: bool,
    /// The question words `[start, end)` the value matched.
    pub span: (usize, usize),
}

/// The values retrieved for one question, best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueMatches {
    pub matches: Vec<ValueMatch>,
}

impl ValueMatches {
    /// The values retrieved for a column, best first.
    pub fn for_column(&self, table: usize, column: usize) -> impl Iterator<Item = &str> {
        self.matches
            .iter()
            .filter(move |m| m.table == table && m.column == column)
            .map(|m| m.value.as_str())
    }

    /// Whether any value of the column was retrieved.
    pub fn has_column(&self, table: usize, column: usize) -> bool {
        self.for_column(table, column).next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }
}

/// A candidate before ranking.
struct Candidate {
    entry: u32,
    exact: bool,
    /// Matched words.
    length: usize,
    /// Share of the value's characters matched, in thousandths.
    coverage: u32,
    span: (usize, usize),
}

impl ValueIndex {
    /// The values `question` mentions: exact matches of all of a value's
    /// words, then partial ones, longer first; a value whose match lies
    /// inside a longer exact match is dropped; at most
    /// [`MAX_MATCHES_PER_COLUMN`] per column and [`MAX_MATCHES_PER_INPUT`] in
    /// all.
    pub fn retrieve(&self, question: &str) -> ValueMatches {
        let question = words(question);
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        for word in question.iter().filter(|w| !w.stop) {
            let Some(entries) = self.words.postings.get(word.stem.as_str()) else {
                continue;
            };
            for &entry in entries {
                if seen.insert(entry) {
                    if let Some(candidate) = self.candidate(entry, &question) {
                        candidates.push(candidate);
                    }
                }
            }
        }
        candidates.sort_by_key(|c| (std::cmp::Reverse((c.exact, c.length, c.coverage)), c.entry));
        let mut taken: Vec<ValueMatch> = Vec::new();
        let mut per_column = std::collections::HashMap::new();
        for candidate in candidates {
            if taken.len() >= MAX_MATCHES_PER_INPUT {
                break;
            }
            let (start, end) = candidate.span;
            let inside_longer_exact = taken.iter().any(|m| {
                m.exact
                    && m.span.0 <= start
                    && end <= m.span.1
                    && (m.span != candidate.span || !candidate.exact)
            });
            if inside_longer_exact {
                continue;
            }
            let entry = &self.words.entries[candidate.entry as usize];
            let shown = per_column.entry(entry.column).or_insert(0usize);
            if *shown >= MAX_MATCHES_PER_COLUMN {
                continue;
            }
            *shown += 1;
            let column = &self.columns[entry.column as usize];
            taken.push(ValueMatch {
                table: column.table,
                column: column.column,
                value: column.values[entry.value as usize].clone(),
                exact: candidate.exact,
                span: candidate.span,
            });
        }
        ValueMatches { matches: taken }
    }

    /// The longest run of the entry's words that occurs as consecutive
    /// question words, if it makes a match (see the module documentation).
    fn candidate(&self, entry: u32, question: &[Word]) -> Option<Candidate> {
        let value = &self.words.entries[entry as usize].words;
        // Longest common run: (length, question start, value start).
        let mut best = (0usize, 0usize, 0usize);
        for i in 0..question.len() {
            for j in 0..value.len() {
                let mut k = 0;
                while i + k < question.len()
                    && j + k < value.len()
                    && question[i + k].stem == *value[j + k]
                {
                    k += 1;
                }
                if k > best.0 {
                    best = (k, i, j);
                }
            }
        }
        let (length, start, value_start) = best;
        let matched = &question[start..start + length];
        if length == 0 || matched.iter().all(|w| w.stop) {
            return None;
        }
        let chars = |words: &[Box<str>]| words.iter().map(|w| w.chars().count()).sum::<usize>();
        let total_chars = chars(&value[..]);
        let matched_chars = chars(&value[value_start..value_start + length]);
        let exact = length == value.len();
        let accepted = if exact {
            total_chars >= 2
        } else {
            let alphabetic = matched.iter().any(|w| w.alphabetic && !w.stop);
            let rare = length == 1
                && matched_chars >= 4
                && self
                    .words
                    .postings
                    .get(&*value[value_start])
                    .is_some_and(|l| l.len() <= RARE_WORD_VALUES);
            alphabetic && (length >= 2 || rare)
        };
        accepted.then(|| Candidate {
            entry,
            exact,
            length,
            coverage: (1000 * matched_chars / total_chars.max(1)) as u32,
            span: (start, start + length),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ColumnValues;
    use super::*;

    fn index(columns: &[(usize, usize, &[&str])]) -> ValueIndex {
        ValueIndex::new(
            columns
                .iter()
                .map(|(t, c, values)| ColumnValues {
                    table: *t,
                    column: *c,
                    values: values.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        )
    }

    fn values(matches: &ValueMatches) -> Vec<&str> {
        matches.matches.iter().map(|m| m.value.as_str()).collect()
    }

    #[test]
    fn exact_matches_ignore_case_and_punctuation() {
        let index = index(&[(0, 1, &["Lyon", "Paris", "Saint-Étienne", "O'Hare"][..])]);
        let found = index.retrieve("How many orders were shipped to LYON?");
        assert_eq!(values(&found), ["Lyon"]);
        assert!(found.matches[0].exact);
        assert_eq!((found.matches[0].table, found.matches[0].column), (0, 1));
        assert_eq!(
            values(&index.retrieve("flights from Saint Étienne or O Hare")),
            ["Saint-Étienne", "O'Hare"]
        );
    }

    #[test]
    fn multi_word_values_match_and_longest_match_wins() {
        let index = index(&[
            (0, 0, &["New York", "York", "Newark"][..]),
            (1, 2, &["York"][..]),
        ]);
        // `York` lies inside the exact match `New York`: dropped in both columns.
        assert_eq!(
            values(&index.retrieve("Which stores are in new york?")),
            ["New York"]
        );
        // On its own `York` is in both columns.
        assert_eq!(
            values(&index.retrieve("Which stores are in York?")),
            ["York", "York"]
        );
    }

    #[test]
    fn partial_matches_need_enough_of_the_value_or_a_rare_word() {
        let index = index(&[(
            0,
            0,
            &[
                "John F Kennedy International Airport",
                "Lyon Saint-Exupery Airport",
                "Heathrow Airport",
                "Gatwick Airport",
                "Orly Airport",
            ][..],
        )]);
        // `kennedy` is held by one value: a partial match.
        let found = index.retrieve("flights landing at Kennedy");
        assert_eq!(values(&found), ["John F Kennedy International Airport"]);
        assert!(!found.matches[0].exact);
        // Two words of a value, or all of them.
        let found = index.retrieve("flights to lyon saint and gatwick airport");
        assert_eq!(
            values(&found),
            ["Gatwick Airport", "Lyon Saint-Exupery Airport"]
        );
        assert!(found.matches[0].exact && !found.matches[1].exact);
        // `airport` is in every value: too common to match on its own.
        assert!(index.retrieve("list every airport").is_empty());
        // Unrelated text matches nothing; stop words never match.
        assert!(index.retrieve("How many singers are there?").is_empty());
        assert!(index.retrieve("of the at").is_empty());
    }

    #[test]
    fn plurals_match_and_values_are_capped_per_column() {
        let many: Vec<String> = (0..10).map(|i| format!("Blue Bay {i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let index = index(&[(0, 0, &many[..]), (0, 1, &["Red Cars"][..])]);
        let found = index.retrieve("red car at the blue bays");
        assert_eq!(found.matches[0].value, "Red Cars");
        assert!(found.matches[0].exact);
        // Ten partial matches of equal rank: the first three of the column.
        assert_eq!(
            found.for_column(0, 0).collect::<Vec<_>>(),
            ["Blue Bay 0", "Blue Bay 1", "Blue Bay 2"]
        );
        assert_eq!(found.matches.len(), 1 + MAX_MATCHES_PER_COLUMN);
    }
}

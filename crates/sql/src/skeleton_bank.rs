//! Query shapes retrieved by question: a bank of training questions with
//! the skeletons of their gold SQL ([`Skeleton`]), searched by word overlap
//! with a new question whose schema words are masked, so that "How many
//! singers are there?" finds "How many heads of departments are there?"
//! on another database. DAIL-SQL and RESDSQL pick examples and skeletons
//! this way; here the retrieved shapes hold constrained decoding to them
//! ([`crate::SqlChecker::with_skeletons`]).
//!
//! The index is written here rather than with a search crate: it holds a
//! few thousand short questions in memory, its terms are masked words and
//! word pairs, and the answer is a vote over the nearest questions'
//! skeletons, none of which a text search engine offers.

use std::collections::{BTreeMap, HashMap, HashSet};

use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{name_words, stem, words};
use text2sql_data::DataError;

use crate::Skeleton;

/// How many nearest training questions vote for the skeletons suggested.
pub const NEIGHBOURS: usize = 10;

/// What a question's words become where they name the schema: the shape
/// of "How many <s> are there?" does not depend on what is counted.
const SCHEMA_WORD: &str = "<s>";

/// Training questions' terms and the skeletons of their gold SQL.
#[derive(Debug, Clone, Default)]
pub struct SkeletonBank {
    skeletons: Vec<Skeleton>,
    /// Per term, the questions having it and the term's weight in each
    /// (TF-IDF, each question's vector of unit length).
    postings: HashMap<String, Vec<(u32, f32)>>,
    /// Per question, the index of its skeleton.
    question_skeleton: Vec<u32>,
    /// Per term, how many questions have it.
    document_frequency: HashMap<String, u32>,
}

impl SkeletonBank {
    /// The bank of `examples` (question, gold SQL, its schema); SQL that
    /// does not tokenize is left out. Returns the bank and how many were
    /// left out.
    pub fn build<'a>(
        examples: impl IntoIterator<Item = (&'a str, &'a str, &'a DatabaseSchema)>,
    ) -> (Self, usize) {
        let mut bank = SkeletonBank::default();
        let mut skeleton_index: HashMap<Skeleton, u32> = HashMap::new();
        let mut masks: HashMap<&str, HashSet<String>> = HashMap::new();
        let mut questions: Vec<BTreeMap<String, u32>> = Vec::new();
        let mut skipped = 0;
        for (question, sql, schema) in examples {
            let Ok(skeleton) = Skeleton::of_sql(sql) else {
                skipped += 1;
                continue;
            };
            let next = skeleton_index.len() as u32;
            let index = *skeleton_index.entry(skeleton.clone()).or_insert_with(|| {
                bank.skeletons.push(skeleton);
                next
            });
            let mask = masks
                .entry(schema.db_id.as_str())
                .or_insert_with(|| schema_words(schema));
            let terms = terms(question, mask);
            for term in terms.keys() {
                *bank.document_frequency.entry(term.clone()).or_default() += 1;
            }
            questions.push(terms);
            bank.question_skeleton.push(index);
        }
        for (id, terms) in questions.iter().enumerate() {
            for (term, weight) in bank.weights(terms) {
                bank.postings
                    .entry(term)
                    .or_default()
                    .push((id as u32, weight));
            }
        }
        (bank, skipped)
    }

    /// The bank of the training split of a folder made by `text2sql
    /// prepare`: the questions a model trained on it has seen. Returns it
    /// and how many examples were left out (SQL that does not tokenize).
    pub fn from_processed(dir: &std::path::Path) -> Result<(Self, usize), DataError> {
        let data = ProcessedDataset::open(dir)?;
        let schemas = data.schemas()?;
        let mut examples = Vec::new();
        for example in data.split(Split::Train).iter() {
            let example = example?;
            if !schemas.contains_key(&example.db_id) {
                return Err(DataError::Invalid(format!(
                    "{}: example {} names database `{}`, which its schemas.parquet lacks",
                    dir.display(),
                    example.id,
                    example.db_id
                )));
            }
            examples.push(example);
        }
        Ok(Self::build(examples.iter().map(|example| {
            (
                example.question.as_str(),
                example.sql.as_str(),
                &schemas[&example.db_id].schema,
            )
        })))
    }

    /// Training questions in the bank.
    pub fn len(&self) -> usize {
        self.question_skeleton.len()
    }

    pub fn is_empty(&self) -> bool {
        self.question_skeleton.is_empty()
    }

    /// Up to `count` skeletons for `question` about `schema`, most likely
    /// first: those of the [`NEIGHBOURS`] most similar training questions,
    /// each weighted by its similarity. Empty when no training question
    /// shares a term with it.
    pub fn suggest(&self, question: &str, schema: &DatabaseSchema, count: usize) -> Vec<Skeleton> {
        let terms = terms(question, &schema_words(schema));
        let mut similarity: HashMap<u32, f32> = HashMap::new();
        for (term, weight) in self.weights(&terms) {
            for &(id, other) in self.postings.get(&term).into_iter().flatten() {
                *similarity.entry(id).or_default() += weight * other;
            }
        }
        let mut nearest: Vec<(u32, f32)> = similarity.into_iter().collect();
        // Ties go to the earlier question, so the answer does not depend
        // on hashing order.
        nearest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        nearest.truncate(NEIGHBOURS);
        let mut votes: Vec<(u32, f32, usize)> = Vec::new();
        for (rank, (id, score)) in nearest.into_iter().enumerate() {
            let skeleton = self.question_skeleton[id as usize];
            match votes.iter_mut().find(|v| v.0 == skeleton) {
                Some(vote) => vote.1 += score,
                None => votes.push((skeleton, score, rank)),
            }
        }
        votes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
        votes
            .into_iter()
            .take(count)
            .map(|(skeleton, _, _)| self.skeletons[skeleton as usize].clone())
            .collect()
    }

    /// TF-IDF weights of a question's term counts, as a unit vector.
    fn weights(&self, terms: &BTreeMap<String, u32>) -> Vec<(String, f32)> {
        let questions = self.len().max(1) as f32;
        let mut weights: Vec<(String, f32)> = terms
            .iter()
            .map(|(term, &count)| {
                let df = self.document_frequency.get(term).copied().unwrap_or(0) as f32;
                let idf = (questions / (1.0 + df)).ln() + 1.0;
                (term.clone(), (1.0 + (count as f32).ln()) * idf)
            })
            .collect();
        let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            for (_, weight) in &mut weights {
                *weight /= norm;
            }
        }
        weights
    }
}

/// The words of a schema's table and column names, as matching compares them.
fn schema_words(schema: &DatabaseSchema) -> HashSet<String> {
    let mut out = HashSet::new();
    for table in &schema.tables {
        out.extend(words(&table.name));
        out.extend(words(&table.natural_name));
        for column in &table.columns {
            out.extend(words(&column.name));
        }
    }
    out
}

/// A question's terms and their counts: its words (plural `s` removed,
/// schema words masked) and pairs of consecutive words. In term order, so
/// that similarities are summed in the same order in every run (a hash
/// map's order changed which of two near-equal shapes won).
fn terms(question: &str, schema_words: &HashSet<String>) -> BTreeMap<String, u32> {
    let words: Vec<String> = name_words(question)
        .iter()
        .map(|word| {
            let word = stem(word);
            if schema_words.contains(word) {
                SCHEMA_WORD.to_string()
            } else {
                word.to_string()
            }
        })
        .collect();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in &words {
        *counts.entry(word.clone()).or_default() += 1;
    }
    for pair in words.windows(2) {
        *counts
            .entry(format!("{} {}", pair[0], pair[1]))
            .or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use text2sql_data::schema::{Column, Table};

    use super::*;

    fn schema(db_id: &str, tables: &[(&str, &[&str])]) -> DatabaseSchema {
        DatabaseSchema {
            db_id: db_id.into(),
            tables: tables
                .iter()
                .map(|(name, columns)| Table {
                    name: name.to_string(),
                    natural_name: name.replace('_', " "),
                    columns: columns
                        .iter()
                        .map(|c| Column {
                            name: c.to_string(),
                            description: c.replace('_', " "),
                            data_type: "text".into(),
                            sample_values: Vec::new(),
                        })
                        .collect(),
                    primary_key: vec![0],
                })
                .collect(),
            foreign_keys: Vec::new(),
            ddls: Vec::new(),
            values: None,
        }
    }

    fn bank() -> SkeletonBank {
        let farm = schema("farm", &[("farm", &["Farm_ID", "Total_Horses", "Cows"])]);
        let school = schema("school", &[("student", &["id", "name", "age", "city"])]);
        let examples = [
            (
                "How many farms are there?",
                "SELECT count(*) FROM farm",
                &farm,
            ),
            (
                "List the total horses of farms in ascending order.",
                "SELECT Total_Horses FROM farm ORDER BY Total_Horses ASC",
                &farm,
            ),
            (
                "What are the names of students older than 20?",
                "SELECT name FROM student WHERE age > 20",
                &school,
            ),
            (
                "How many students live in each city?",
                "SELECT city, count(*) FROM student GROUP BY city",
                &school,
            ),
            ("Broken", "SELECT 'unclosed FROM student", &school),
        ];
        let (bank, skipped) =
            SkeletonBank::build(examples.iter().map(|(q, sql, s)| (*q, *sql, *s)));
        assert_eq!((bank.len(), skipped), (4, 1));
        bank
    }

    #[test]
    fn a_question_on_a_new_database_gets_the_shape_of_the_question_phrased_alike() {
        let bank = bank();
        let concert = schema(
            "concert_singer",
            &[("singer", &["Singer_ID", "Name", "Age", "Country"])],
        );
        let shapes = |question: &str| -> Vec<String> {
            bank.suggest(question, &concert, 2)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        // "singers" is the new schema's word, masked as "farms" was.
        assert_eq!(
            shapes("How many singers are there?")[0],
            "select count ( * ) from _"
        );
        assert_eq!(
            shapes("What are the names of singers older than 30?")[0],
            "select _ from _ where _ > v"
        );
        assert_eq!(
            shapes("How many singers come from each country?")[0],
            "select _ , count ( * ) from _ group by _"
        );
        assert_eq!(shapes("How many singers come from each country?").len(), 2);
        assert!(
            shapes("zebra quokka").is_empty(),
            "no shared word, no shape"
        );
    }
}

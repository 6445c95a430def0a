//! Query shapes predicted from a question: the skeletons of training
//! questions' gold SQL ([`Skeleton`]), and a linear classifier from a
//! question's words (its schema words masked, so that "How many singers
//! are there?" reads like "How many heads of departments are there?" on
//! another database) and how it links to its schema, to the skeleton of
//! its gold SQL. DAIL-SQL and RESDSQL pick examples and skeletons by
//! question similarity; here the predicted shapes hold constrained
//! decoding to them ([`crate::SqlChecker::with_skeletons`]).
//!
//! The classifier is a multinomial logistic regression (softmax over the
//! shapes) on TF-IDF weights, trained by stochastic gradient descent,
//! written here: its input is a few dozen sparse terms per question and a
//! few thousand questions, trained in about three seconds when the bank is
//! built (Spider train's 5,837 questions, 822 classes of shapes), and the crates that
//! fit linear models (linfa, smartcore) take dense input matrices, which
//! here would be thousands of questions by ten thousand terms. On Spider
//! train's 17 tuning databases the gold shape was its first for 338 of
//! 1,067 questions (the averaged perceptron with a margin it replaced:
//! 313; scikit-learn's `LogisticRegression` on the same terms: 339), and
//! among its three first for 503 (445). Shapes that run alike counted as
//! one: 350 first and 514 among three; then with those shapes one class
//! 356 and 525, and with [`tables_to_cover`] too 372 and 531.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{
    name_words, relevance, stem, words, Relevance, WHOLE_NAME_SCORE, WORD_SCORE,
};
use text2sql_data::DataError;

use crate::Skeleton;

/// What a question's words become where they name the schema: the shape
/// of "How many <s> are there?" does not depend on what is counted.
const SCHEMA_WORD: &str = "<s>";

/// Passes of stochastic gradient descent over the training questions.
/// Chosen on Spider train's tuning databases (gold shape first, of 1,067):
/// 8, 15 and 30 passes gave 336, 338 and 338 (at a rate of 1 and no
/// regularisation); more passes only cost time.
const EPOCHS: usize = 15;

/// The first pass's learning rate; pass `e` (from 0) takes it divided by
/// `sqrt(e + 1)`. The questions' vectors have unit length. Rates of 0.5, 1
/// and 2 gave 325, 336 and 337 (with an L2 penalty of 1e-5, which gave
/// 336 against 338 without; 1e-4 gave 322). Without a penalty, the few
/// passes are what keeps the weights small.
const LEARNING_RATE: f32 = 1.0;

/// The shapes of training questions' gold SQL and a classifier from
/// questions to them.
#[derive(Debug, Clone, Default)]
pub struct SkeletonBank {
    /// Per class of shapes that run alike ([`Skeleton::canonical`]), its
    /// most frequent spelling.
    skeletons: Vec<Skeleton>,
    /// Training questions (the classifier's examples).
    questions: usize,
    /// Each term's index into `document_frequency` and `weights`.
    term_ids: HashMap<String, u32>,
    /// Per term, how many training questions have it.
    document_frequency: Vec<u32>,
    /// Each term's weight for each shape, term after term (terms ×
    /// shapes).
    weights: Vec<f32>,
}

impl SkeletonBank {
    /// The bank of `examples` (question, gold SQL, its schema); SQL that
    /// does not tokenize is left out. Returns the bank and how many were
    /// left out.
    pub fn build<'a>(
        examples: impl IntoIterator<Item = (&'a str, &'a str, &'a DatabaseSchema)>,
    ) -> (Self, usize) {
        Self::build_within(examples, MAX_WEIGHTS)
    }

    /// [`SkeletonBank::build`] with at most about `max_weights` weights:
    /// where terms × shapes would be more, only the most frequent shapes
    /// are kept (and learnt from), as many as fit.
    fn build_within<'a>(
        examples: impl IntoIterator<Item = (&'a str, &'a str, &'a DatabaseSchema)>,
        max_weights: usize,
    ) -> (Self, usize) {
        let mut bank = SkeletonBank::default();
        let mut skeleton_index: HashMap<Skeleton, u32> = HashMap::new();
        let mut masks: HashMap<&str, HashSet<String>> = HashMap::new();
        let mut questions: Vec<(Vec<(u32, u32)>, u32)> = Vec::new();
        // Per class of shapes, its spellings and how many questions each.
        let mut spellings: Vec<Vec<(Skeleton, usize)>> = Vec::new();
        let mut skipped = 0;
        for (question, sql, schema) in examples {
            let Ok(skeleton) = Skeleton::of_sql(sql) else {
                skipped += 1;
                continue;
            };
            // Shapes that run alike are one class: the questions of
            // `… ORDER BY _ ASC ;` teach `… ORDER BY _` too. The class is
            // suggested as its most frequent spelling: a model trained to
            // end its queries with `;` finds no other end.
            let next = skeleton_index.len() as u32;
            let index = *skeleton_index
                .entry(skeleton.canonical())
                .or_insert_with(|| {
                    spellings.push(Vec::new());
                    next
                });
            let class = &mut spellings[index as usize];
            match class.iter_mut().find(|(spelling, _)| *spelling == skeleton) {
                Some((_, count)) => *count += 1,
                None => class.push((skeleton, 1)),
            }
            let mask = masks
                .entry(schema.db_id.as_str())
                .or_insert_with(|| schema_words(schema));
            let terms = terms(question, schema, mask)
                .into_iter()
                .map(|(term, count)| {
                    let next = bank.term_ids.len() as u32;
                    let id = *bank.term_ids.entry(term).or_insert(next);
                    if id == next {
                        bank.document_frequency.push(0);
                    }
                    bank.document_frequency[id as usize] += 1;
                    (id, count)
                })
                .collect();
            questions.push((terms, index));
        }
        // Every question counts in the terms' document frequencies.
        bank.questions = questions.len();
        bank.skeletons = spellings
            .into_iter()
            .filter_map(|class| {
                // The most frequent spelling, ties to the first seen (a
                // class is never without one).
                let most = class.iter().map(|(_, count)| *count).max()?;
                class.into_iter().find(|(_, count)| *count == most)
            })
            .map(|(spelling, _)| spelling)
            .collect();
        let limit = (max_weights / bank.term_ids.len().max(1)).max(1);
        keep_frequent_shapes(&mut bank.skeletons, &mut questions, limit);
        let examples: Vec<(Vec<(u32, f32)>, u32)> = questions
            .iter()
            .map(|(terms, shape)| (bank.term_weights(terms), *shape))
            .collect();
        bank.weights = train(&examples, bank.term_ids.len(), bank.skeletons.len());
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
        self.questions
    }

    pub fn is_empty(&self) -> bool {
        self.questions == 0
    }

    /// Up to `count` skeletons for `question` about `schema`, most likely
    /// first. Empty when none of the question's words is a training
    /// question's.
    pub fn suggest(&self, question: &str, schema: &DatabaseSchema, count: usize) -> Vec<Skeleton> {
        let mut knows_a_word = false;
        let terms: Vec<(u32, u32)> = terms(question, schema, &schema_words(schema))
            .into_iter()
            .filter_map(|(term, count)| {
                let id = *self.term_ids.get(&term)?;
                knows_a_word |= !term.starts_with(LINK_TERM);
                Some((id, count))
            })
            .collect();
        if !knows_a_word {
            return Vec::new();
        }
        let mut scores = vec![0.0f32; self.skeletons.len()];
        add_scores(&mut scores, &self.weights, &self.term_weights(&terms));
        let mut ranked: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
        // Ties go to the shape seen first.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(count)
            .map(|(shape, _)| self.skeletons[shape].clone())
            .collect()
    }

    /// TF-IDF weights of a question's term counts (term ids), as a unit
    /// vector.
    fn term_weights(&self, terms: &[(u32, u32)]) -> Vec<(u32, f32)> {
        let questions = self.questions.max(1) as f32;
        let mut weights: Vec<(u32, f32)> = terms
            .iter()
            .map(|&(term, count)| {
                let df = self.document_frequency[term as usize] as f32;
                let idf = (questions / (1.0 + df)).ln() + 1.0;
                (term, (1.0 + (count as f32).ln()) * idf)
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

/// The most weights (terms × shapes, 4 bytes each) a bank holds: 256 MiB.
/// Spider train's bank has 10,677 terms × 822 classes of shapes (8.8 M),
/// the quickstart's 21,492 × 136 (2.9 M); a corpus the size of SynSQL's has
/// far more distinct shapes, and keeps its most frequent ones.
const MAX_WEIGHTS: usize = 1 << 26;

/// Keeps the `limit` shapes the most `questions` (terms, shape index)
/// have, ties to the shape seen first, and only the questions of those,
/// with their shapes renumbered.
fn keep_frequent_shapes(
    skeletons: &mut Vec<Skeleton>,
    questions: &mut Vec<(Vec<(u32, u32)>, u32)>,
    limit: usize,
) {
    if skeletons.len() <= limit {
        return;
    }
    let mut counts = vec![0usize; skeletons.len()];
    for (_, shape) in questions.iter() {
        counts[*shape as usize] += 1;
    }
    let mut ranked: Vec<usize> = (0..skeletons.len()).collect();
    ranked.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let mut kept = vec![false; skeletons.len()];
    for &shape in &ranked[..limit] {
        kept[shape] = true;
    }
    let mut renumbered = vec![u32::MAX; skeletons.len()];
    let mut next = 0u32;
    for (shape, &keep) in kept.iter().enumerate() {
        if keep {
            renumbered[shape] = next;
            next += 1;
        }
    }
    let mut shape = 0;
    skeletons.retain(|_| {
        shape += 1;
        kept[shape - 1]
    });
    questions.retain_mut(|(_, shape)| {
        *shape = renumbered[*shape as usize];
        *shape != u32::MAX
    });
}

/// Adds each shape's score for a question's term weights to `scores`
/// (`weights`: terms × shapes, one row of `scores.len()` per term).
fn add_scores(scores: &mut [f32], weights: &[f32], terms: &[(u32, f32)]) {
    let shapes = scores.len();
    for &(term, x) in terms {
        let row = &weights[term as usize * shapes..][..shapes];
        for (score, w) in scores.iter_mut().zip(row) {
            *score += x * w;
        }
    }
}

/// The weights (terms × shapes) of a softmax regression from `examples`
/// (term weights and the gold shape's index) to their shapes, by
/// stochastic gradient descent on the cross-entropy: after each question,
/// its terms' weights move towards its gold shape and away from every
/// shape in proportion to the probability the model gives it.
fn train(examples: &[(Vec<(u32, f32)>, u32)], terms: usize, shapes: usize) -> Vec<f32> {
    let mut weights = vec![0.0f32; terms * shapes];
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut gradient = vec![0.0f32; shapes];
    for epoch in 0..EPOCHS {
        order.shuffle(&mut rng);
        let rate = LEARNING_RATE / ((epoch + 1) as f32).sqrt();
        for &i in &order {
            let (terms, gold) = &examples[i];
            gradient.fill(0.0);
            add_scores(&mut gradient, &weights, terms);
            softmax(&mut gradient);
            gradient[*gold as usize] -= 1.0;
            for &(term, x) in terms {
                let row = &mut weights[term as usize * shapes..][..shapes];
                for (w, g) in row.iter_mut().zip(&gradient) {
                    *w -= rate * x * g;
                }
            }
        }
    }
    weights
}

/// Turns scores into probabilities, in place.
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        sum += *score;
    }
    for score in scores.iter_mut() {
        *score /= sum;
    }
}

/// The prefix of the terms that say how a question links to its schema
/// rather than which words it has.
const LINK_TERM: &str = "#";

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
/// schema words masked), pairs of consecutive words, and how it links to
/// the schema and what literals it has (terms starting with
/// [`LINK_TERM`]): how many tables it names, how many a query needs for
/// what it names ([`tables_to_cover`]), how many columns it names
/// whole, how many columns' example values it mentions, whether it has a
/// digit or a quote, how many capitalised words follow its first. These
/// tell a join or a condition apart where the words alone do not ("the
/// name of the singer of the song X" is one table or two by the schema).
/// In term order, so that scores are summed in the same order in every
/// run.
fn terms(
    question: &str,
    schema: &DatabaseSchema,
    schema_words: &HashSet<String>,
) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut words: Vec<String> = Vec::new();
    for word in name_words(question) {
        let word = stem(&word);
        if schema_words.contains(word) {
            *counts.entry(format!("{SCHEMA_WORD}{word}")).or_default() += 1;
            words.push(SCHEMA_WORD.to_string());
        } else {
            words.push(word.to_string());
        }
    }
    for word in &words {
        *counts.entry(word.clone()).or_default() += 1;
    }
    for pair in words.windows(2) {
        *counts
            .entry(format!("{} {}", pair[0], pair[1]))
            .or_default() += 1;
    }
    for term in link_terms(question, schema) {
        counts.insert(term, 1);
    }
    counts
}

/// The [`LINK_TERM`] terms of [`terms`].
fn link_terms(question: &str, schema: &DatabaseSchema) -> Vec<String> {
    let relevance = relevance(schema, question);
    let named_tables = relevance.table_names.iter().filter(|&&s| s > 0).count();
    let linked_tables = relevance
        .tables
        .iter()
        .filter(|&&s| s >= WORD_SCORE)
        .count();
    let whole_columns = relevance
        .columns
        .iter()
        .flatten()
        .filter(|&&s| s >= WHOLE_NAME_SCORE)
        .count();
    let value_columns = relevance
        .value_matches
        .iter()
        .flatten()
        .filter(|&&m| m)
        .count();
    let capitalised = question
        .split_whitespace()
        .skip(1)
        .filter(|word| word.chars().next().is_some_and(char::is_uppercase))
        .count();
    let mut out = vec![
        format!("{LINK_TERM}tables={}", named_tables.min(3)),
        format!("{LINK_TERM}linked={}", linked_tables.min(4)),
        format!("{LINK_TERM}columns={}", whole_columns.min(4)),
        format!("{LINK_TERM}values={}", value_columns.min(2)),
        format!("{LINK_TERM}capitalised={}", capitalised.min(2)),
    ];
    out.push(format!(
        "{LINK_TERM}cover={}",
        tables_to_cover(schema, &relevance).min(4)
    ));
    if question.chars().any(|c| c.is_ascii_digit()) {
        out.push(format!("{LINK_TERM}digit"));
    }
    if opens_a_quote(question) {
        out.push(format!("{LINK_TERM}quote"));
    }
    out
}

/// How many tables a query needs for what the question names: the tables
/// it names whole, those of the columns storing a value it mentions, and,
/// for each column it names whole that none of those has (by name), that
/// column's table. "the name of the singer of the song X" is one table or
/// two by where `name` is: the words alone cannot say whether to join.
fn tables_to_cover(schema: &DatabaseSchema, relevance: &Relevance) -> usize {
    let mut cover: Vec<usize> = (0..schema.tables.len())
        .filter(|&t| relevance.table_whole_name(t) || relevance.value_matches[t].iter().any(|&m| m))
        .collect();
    for (t, table) in schema.tables.iter().enumerate() {
        for (c, column) in table.columns.iter().enumerate() {
            if relevance.columns[t][c] < WHOLE_NAME_SCORE || cover.contains(&t) {
                continue;
            }
            let covered = cover.iter().any(|&u| {
                schema.tables[u]
                    .columns
                    .iter()
                    .any(|other| other.name.eq_ignore_ascii_case(&column.name))
            });
            if !covered {
                cover.push(t);
            }
        }
    }
    cover.len()
}

/// Whether a quote in `question` opens or closes a quoted text (not an
/// apostrophe between letters: "singer's").
fn opens_a_quote(question: &str) -> bool {
    let chars: Vec<char> = question.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        let between_letters = i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        (c == '"' || c == '\'') && !between_letters
    })
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
    fn a_bank_too_large_for_its_weight_budget_keeps_its_most_frequent_shapes() {
        let farm = schema("farm", &[("farm", &["Farm_ID", "Total_Horses"])]);
        let mut examples = vec![("How many farms are there?", "SELECT count(*) FROM farm"); 2];
        examples.push((
            "List the total horses of farms.",
            "SELECT Total_Horses FROM farm",
        ));
        examples.push((
            "How many farms have horses?",
            "SELECT count(*) FROM farm WHERE Total_Horses > 0",
        ));
        let build = |budget: usize| {
            let (bank, _) = SkeletonBank::build_within(
                examples.iter().map(|&(q, sql)| (q, sql, &farm)),
                budget,
            );
            bank
        };
        let all = build(MAX_WEIGHTS);
        assert_eq!(all.skeletons.len(), 3);
        // Room for one shape's weights: the one two questions have.
        let terms = all.term_ids.len();
        let small = build(terms);
        assert_eq!(small.len(), 4, "every question still counts in the idf");
        assert_eq!(small.skeletons.len(), 1);
        assert_eq!(small.weights.len(), terms);
        assert_eq!(
            small.suggest("List the total horses of farms.", &farm, 3)[0].to_string(),
            "select count ( * ) from _"
        );
        // Two shapes: the frequent one and, of the ties, the first seen.
        let two = build(2 * terms);
        let shapes: Vec<String> = two.skeletons.iter().map(ToString::to_string).collect();
        assert_eq!(shapes, ["select count ( * ) from _", "select _ from _"]);
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

    #[test]
    fn whether_a_question_names_one_table_or_two_decides_a_join_the_words_cannot() {
        // The same words, "What are the <s> of the <s>?", ask for a column
        // of one table or for rows of a table joined to another; only the
        // schema tells which. Each training pair names other things, so
        // the words they are named by cannot decide.
        let pairs = [
            ("student", "teacher", "grade"),
            ("ship", "captain", "tonnage"),
            ("album", "artist", "genre"),
            ("player", "team", "salary"),
            ("flight", "airline", "duration"),
            ("movie", "studio", "budget"),
        ];
        let schemas: Vec<DatabaseSchema> = pairs
            .iter()
            .map(|(child, parent, column)| {
                schema(
                    child,
                    &[
                        (child, &["id", column, "parent_id"]),
                        (parent, &["id", "name"]),
                    ],
                )
            })
            .collect();
        let mut examples: Vec<(String, &str, &DatabaseSchema)> = Vec::new();
        for ((child, parent, column), schema) in pairs.iter().zip(&schemas) {
            examples.push((
                format!("What are the {column}s of the {child}s?"),
                "SELECT T1.x FROM a AS T1",
                schema,
            ));
            examples.push((
                format!("What are the {parent}s of the {child}s?"),
                "SELECT T2.name FROM a AS T1 JOIN b AS T2 ON T1.parent_id = T2.id",
                schema,
            ));
        }
        let (bank, _) =
            SkeletonBank::build(examples.iter().map(|(q, sql, s)| (q.as_str(), *sql, *s)));
        let shop = schema(
            "shop",
            &[
                ("order", &["id", "total", "parent_id"]),
                ("customer", &["id", "name"]),
            ],
        );
        let shape = |question: &str| bank.suggest(question, &shop, 1)[0].to_string();
        assert_eq!(
            shape("What are the totals of the orders?"),
            "select _ from _"
        );
        assert_eq!(
            shape("What are the customers of the orders?"),
            "select _ from _ join _ on _ = _"
        );
    }

    #[test]
    fn shapes_with_a_semicolon_or_asc_are_one_class_spelt_as_most_often() {
        let farm = schema("farm", &[("farm", &["Farm_ID", "Total_Horses", "Cows"])]);
        let build = |sqls: [&'static str; 3]| {
            let questions = [
                "List the cows of farms in ascending order.",
                "List the total horses of farms in ascending order.",
                "List the farm ids, ordered.",
            ];
            let examples = questions
                .into_iter()
                .zip(sqls)
                .map(|(q, sql)| (q, sql, &farm));
            let (bank, _) = SkeletonBank::build(examples);
            let suggested = bank.suggest("List the farm ids in ascending order.", &farm, 3);
            assert_eq!(suggested.len(), 1, "one class: {suggested:?}");
            suggested[0].to_string()
        };
        assert_eq!(
            build([
                "SELECT Cows FROM farm ORDER BY Cows ASC;",
                "SELECT Total_Horses FROM farm ORDER BY Total_Horses",
                "SELECT Farm_ID FROM farm ORDER BY Farm_ID",
            ]),
            "select _ from _ order by _"
        );
        assert_eq!(
            build([
                "SELECT Cows FROM farm ORDER BY Cows;",
                "SELECT Total_Horses FROM farm ORDER BY Total_Horses ASC;",
                "SELECT Farm_ID FROM farm ORDER BY Farm_ID;",
            ]),
            "select _ from _ order by _ ;"
        );
    }

    #[test]
    fn the_tables_a_question_needs_are_those_it_names_and_those_of_other_columns() {
        let concert = schema(
            "concert",
            &[
                ("singer", &["singer_id", "name", "country"]),
                ("song", &["song_id", "title", "singer_id", "sales"]),
            ],
        );
        let cover = |question: &str| tables_to_cover(&concert, &relevance(&concert, question));
        assert_eq!(cover("How many singers are there?"), 1);
        // `name` is the singer's: one table.
        assert_eq!(cover("What is the name and country of each singer?"), 1);
        // `sales` is only the song's.
        assert_eq!(cover("What are the sales of songs by each singer?"), 2);
        assert_eq!(
            cover("What is the name of the singer with the most sales?"),
            2
        );
        assert_eq!(cover("hello"), 0);
    }

    #[test]
    fn literal_terms_tell_a_quoted_value_from_an_apostrophe() {
        let concert = schema("concert", &[("singer", &["name", "country"])]);
        let terms = |question: &str| link_terms(question, &concert);
        let quoted = terms("Which singers sang \"Hey\" in 2014?");
        assert!(quoted.contains(&"#quote".to_string()), "{quoted:?}");
        assert!(quoted.contains(&"#digit".to_string()), "{quoted:?}");
        assert!(quoted.contains(&"#tables=1".to_string()), "{quoted:?}");
        let plain = terms("What is each singer's country?");
        assert!(
            !plain.iter().any(|t| t == "#quote" || t == "#digit"),
            "{plain:?}"
        );
        assert!(plain.contains(&"#columns=1".to_string()), "{plain:?}");
    }
}

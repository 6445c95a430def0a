//! Turns a domain (the logical schema) into one database of the sample: a
//! seeded variant with a subset of the domain's tables closed under foreign
//! keys, a naming style (snake_case, camelCase, PascalCase or UPPER_SNAKE;
//! abbreviations such as `qty`; table prefixes such as `tbl_`; singular or
//! plural table names), shuffled column order, unrelated extra columns and
//! sometimes an unrelated extra table, other row counts and value ranges,
//! and the synonyms its questions use for tables and columns.
//!
//! The result is again a [`Domain`], with physical names: everything
//! downstream (rows, DDL, `tables.json`, templates) uses the variant's real
//! names, and each column keeps its logical name for the question wording.

use std::collections::{HashMap, HashSet};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::catalog::Words;
use super::spec::{ColumnSpec, Concept, Domain, Gen, TableSpec};

/// How identifiers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    Snake,
    Camel,
    Pascal,
    UpperSnake,
}

/// The naming choices of one database.
#[derive(Debug, Clone)]
pub(crate) struct Style {
    pub case: Case,
    /// Replace words by their abbreviation (`quantity` -> `qty`).
    pub abbreviate: bool,
    /// Singular table names (`order_item`) instead of plural (`order_items`).
    pub singular_tables: bool,
    /// A word before every table name (`tbl`), or none.
    pub table_prefix: Option<String>,
}

impl Style {
    fn draw(words: &Words, rng: &mut ChaCha8Rng) -> Style {
        let case = match rng.random_range(0..20) {
            0..=7 => Case::Snake,
            8..=12 => Case::Camel,
            13..=17 => Case::Pascal,
            _ => Case::UpperSnake,
        };
        let table_prefix = if rng.random_bool(0.25) {
            words.table_prefixes.choose(rng).cloned()
        } else {
            None
        };
        Style {
            case,
            abbreviate: rng.random_bool(0.4),
            singular_tables: rng.random_bool(0.5),
            table_prefix,
        }
    }

    /// The identifier made of `words` in this style.
    pub fn identifier(&self, words: &[&str], abbreviations: &HashMap<&str, &str>) -> String {
        let words: Vec<String> = words
            .iter()
            .filter(|w| !w.is_empty())
            .map(|w| {
                let w = w.to_lowercase();
                match abbreviations.get(w.as_str()) {
                    Some(short) if self.abbreviate => short.to_string(),
                    _ => w,
                }
            })
            .collect();
        let capital = |w: &str| super::spec::capitalise(w);
        match self.case {
            Case::Snake => words.join("_"),
            Case::UpperSnake => words.join("_").to_uppercase(),
            Case::Pascal => words.iter().map(|w| capital(w)).collect(),
            Case::Camel => words
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 { w.clone() } else { capital(w) })
                .collect(),
        }
    }
}

/// Database `db_id`: a seeded variant of `domain`.
pub(crate) fn variant(
    domain: &Domain,
    words: &Words,
    db_id: String,
    rng: &mut ChaCha8Rng,
) -> Domain {
    let style = Style::draw(words, rng);
    let abbreviations: HashMap<&str, &str> = words
        .abbreviations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let chosen = table_subset(domain, rng);
    let plain = |name: &str| words.is_plain_identifier(name);

    // Physical table names first: foreign keys refer to them.
    let mut table_names: HashMap<&str, String> = HashMap::new();
    let mut used_tables: HashSet<String> = HashSet::new();
    for &t in &chosen {
        let table = &domain.tables[t];
        let name = table_name(&plain, table, &style, &abbreviations, &used_tables, rng);
        used_tables.insert(name.to_lowercase());
        table_names.insert(table.name.as_str(), name);
    }

    let row_scale = rng.random_range(0.3..0.9);
    let physical = |table: &TableSpec, name: String, rng: &mut ChaCha8Rng| {
        physical_table(
            table,
            name,
            &table_names,
            &style,
            &abbreviations,
            words,
            row_scale,
            rng,
        )
    };
    let mut tables: Vec<TableSpec> = Vec::with_capacity(chosen.len() + 1);
    let mut concepts = Vec::new();
    for &t in &chosen {
        let table = &domain.tables[t];
        let (spec, renames) = physical(table, table_names[table.name.as_str()].clone(), rng);
        for concept in domain.concepts.iter().filter(|c| c.table == table.name) {
            concepts.push(rename_concept(concept, &spec.name, &renames));
        }
        tables.push(spec);
    }
    if rng.random_bool(0.3) {
        if let Some(extra) = words.extra_tables.choose(rng) {
            let name = table_name(&plain, extra, &style, &abbreviations, &used_tables, rng);
            let (spec, _) = physical(extra, name, rng);
            tables.push(spec);
        }
    }
    Domain {
        db_id,
        topic: domain.topic.clone(),
        tables,
        concepts,
    }
}

/// The tables a variant keeps, in the domain's order: at least three (or
/// all, when the domain has fewer), grown from a table with a foreign key
/// and closed under foreign keys, so the subset always has a join.
fn table_subset(domain: &Domain, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let n = domain.tables.len();
    let parents = |t: usize| -> Vec<usize> {
        domain.tables[t]
            .columns
            .iter()
            .filter_map(|c| match &c.gen {
                Gen::Ref(parent) => domain.table_index(parent),
                _ => None,
            })
            .collect()
    };
    let want = rng.random_range(n.min(3)..=n);
    let mut keep = vec![false; n];
    let add = |start: usize, keep: &mut Vec<bool>| {
        let mut stack = vec![start];
        while let Some(t) = stack.pop() {
            if !keep[t] {
                keep[t] = true;
                stack.extend(parents(t));
            }
        }
    };
    let children: Vec<usize> = (0..n).filter(|&t| !parents(t).is_empty()).collect();
    let start = children
        .choose(rng)
        .copied()
        .unwrap_or_else(|| rng.random_range(0..n));
    add(start, &mut keep);
    while keep.iter().filter(|&&k| k).count() < want {
        let left: Vec<usize> = (0..n).filter(|&t| !keep[t]).collect();
        match left.choose(rng) {
            Some(&t) => add(t, &mut keep),
            None => break,
        }
    }
    (0..n).filter(|&t| keep[t]).collect()
}

/// A table's physical name: from its own name or a synonym, singular or
/// plural, with the style's prefix; never a reserved word or a repeat.
fn table_name(
    plain: &impl Fn(&str) -> bool,
    table: &TableSpec,
    style: &Style,
    abbreviations: &HashMap<&str, &str>,
    used: &HashSet<String>,
    rng: &mut ChaCha8Rng,
) -> String {
    let (singular, plural) = match table.synonyms.choose(rng) {
        Some([s, p]) if rng.random_bool(0.25) => (s.clone(), p.clone()),
        _ => (table.singular.clone(), table.name.replace('_', " ")),
    };
    let base = if style.singular_tables {
        singular
    } else {
        plural
    };
    let mut words: Vec<&str> = Vec::new();
    if let Some(prefix) = &style.table_prefix {
        words.push(prefix);
    }
    words.extend(base.split([' ', '_']));
    let mut name = style.identifier(&words, abbreviations);
    if !plain(&name) || used.contains(&name.to_lowercase()) {
        words.insert(0, "tbl");
        name = style.identifier(&words, abbreviations);
    }
    let mut n = 2;
    let stem = name.clone();
    while used.contains(&name.to_lowercase()) {
        name = format!("{stem}{n}");
        n += 1;
    }
    name
}

/// The physical table and the map from its logical column names to the
/// physical ones.
#[allow(clippy::too_many_arguments)]
fn physical_table(
    table: &TableSpec,
    name: String,
    table_names: &HashMap<&str, String>,
    style: &Style,
    abbreviations: &HashMap<&str, &str>,
    words: &Words,
    row_scale: f64,
    rng: &mut ChaCha8Rng,
) -> (TableSpec, HashMap<String, String>) {
    let mut columns: Vec<ColumnSpec> = table.columns.clone();
    // Unrelated extra columns, none that the table already has.
    let extras = rng.random_range(0..=2usize);
    let mut candidates: Vec<&ColumnSpec> = words
        .extra_columns
        .iter()
        .filter(|e| table.column_index(&e.name).is_none())
        .collect();
    candidates.shuffle(rng);
    columns.extend(candidates.into_iter().take(extras).cloned());

    // Column order: the key first (most often), the rest shuffled.
    let key_first = rng.random_bool(0.6);
    let (mut head, mut tail): (Vec<ColumnSpec>, Vec<ColumnSpec>) = columns
        .into_iter()
        .partition(|c| key_first && table.primary_key.contains(&c.name));
    tail.shuffle(rng);
    head.append(&mut tail);
    let mut columns = head;

    // Physical names, unique in the table and never reserved words.
    let first_word = table
        .singular
        .split(' ')
        .next()
        .unwrap_or("row")
        .to_string();
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut used: HashSet<String> = HashSet::new();
    for column in &columns {
        let parts: Vec<&str> = column.name.split('_').collect();
        let mut physical = style.identifier(&parts, abbreviations);
        if !words.is_plain_identifier(&physical) || used.contains(&physical.to_lowercase()) {
            let mut prefixed = vec![first_word.as_str()];
            prefixed.extend(&parts);
            physical = style.identifier(&prefixed, abbreviations);
        }
        let stem = physical.clone();
        let mut n = 2;
        while used.contains(&physical.to_lowercase()) {
            physical = format!("{stem}{n}");
            n += 1;
        }
        used.insert(physical.to_lowercase());
        renames.insert(column.name.clone(), physical);
    }

    for column in &mut columns {
        column.logical = std::mem::take(&mut column.name);
        column.name = renames[&column.logical].clone();
        // The question's phrasing of the column: one of the domain's.
        if let Some(phrase) = column.phrases.choose(rng).cloned() {
            column.phrases = vec![phrase];
        }
        column.gen = vary_gen(&column.gen, table_names, &renames, rng);
    }

    let (singular, plural) = match table.synonyms.choose(rng) {
        Some([s, p]) if rng.random_bool(0.4) => (s.clone(), p.clone()),
        _ => (table.singular.clone(), table.plural.clone()),
    };
    let jitter = rng.random_range(0.8..1.25);
    let rows = ((table.rows as f64 * row_scale * jitter) as usize).max(40);
    let spec = TableSpec {
        name,
        plural,
        singular,
        synonyms: Vec::new(),
        rows,
        primary_key: table
            .primary_key
            .iter()
            .map(|k| renames.get(k).cloned().unwrap_or_else(|| k.clone()))
            .collect(),
        columns,
    };
    (spec, renames)
}

/// The generator with physical names and this database's value ranges:
/// wide numeric ranges scaled, dates and years shifted, categories skewed.
fn vary_gen(
    gen: &Gen,
    table_names: &HashMap<&str, String>,
    renames: &HashMap<String, String>,
    rng: &mut ChaCha8Rng,
) -> Gen {
    match gen {
        Gen::Ref(parent) => Gen::Ref(
            table_names
                .get(parent.as_str())
                .cloned()
                .unwrap_or_else(|| parent.clone()),
        ),
        Gen::DateAfter(other, low, high) => Gen::DateAfter(
            renames.get(other).cloned().unwrap_or_else(|| other.clone()),
            *low,
            *high,
        ),
        Gen::Real(low, high) => {
            let s = rng.random_range(0.7..1.5);
            Gen::Real(low * s, high * s)
        }
        // Years move a little, like dates.
        Gen::Int(low, high) if *low >= 1000 => {
            let shift = rng.random_range(-3..=1);
            Gen::Int(low + shift, high + shift)
        }
        Gen::Int(low, high) if high - low >= 20 => {
            let s = rng.random_range(0.7..1.5);
            Gen::Int(
                (*low as f64 * s).round() as i64,
                (*high as f64 * s).round() as i64,
            )
        }
        Gen::Date(from, to) => {
            let shift = rng.random_range(-2..=1);
            Gen::Date(from + shift, to + shift)
        }
        Gen::Pick(values) => {
            let mut values = values.clone();
            values.shuffle(rng);
            // The first value again, up to twice: a skewed distribution.
            if let Some(first) = values.first().cloned() {
                for _ in 0..rng.random_range(0..=2) {
                    values.push(first.clone());
                }
            }
            Gen::Pick(values)
        }
        other => other.clone(),
    }
}

/// A concept with the variant's table and column names.
fn rename_concept(concept: &Concept, table: &str, renames: &HashMap<String, String>) -> Concept {
    Concept {
        term: concept.term.clone(),
        table: table.to_string(),
        condition: rename_identifiers(&concept.condition, renames),
        explanation: rename_identifiers(&concept.explanation, renames),
    }
}

/// `text` with every whole word that is a logical column name replaced by
/// the physical one; quoted literals are left alone.
fn rename_identifiers(text: &str, renames: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let mut quoted = false;
    let flush = |word: &mut String, out: &mut String| {
        match renames.get(word.as_str()) {
            Some(physical) => out.push_str(physical),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if !quoted && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(c);
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::sample::catalog::catalog;

    fn abbreviations() -> HashMap<&'static str, &'static str> {
        [("quantity", "qty"), ("date", "dt")].into_iter().collect()
    }

    #[test]
    fn styles_write_identifiers() {
        let style = |case, abbreviate| Style {
            case,
            abbreviate,
            singular_tables: false,
            table_prefix: None,
        };
        let a = abbreviations();
        let words = ["order", "date"];
        assert_eq!(
            style(Case::Snake, false).identifier(&words, &a),
            "order_date"
        );
        assert_eq!(
            style(Case::Camel, false).identifier(&words, &a),
            "orderDate"
        );
        assert_eq!(style(Case::Pascal, true).identifier(&words, &a), "OrderDt");
        assert_eq!(
            style(Case::UpperSnake, true).identifier(&words, &a),
            "ORDER_DT"
        );
    }

    #[test]
    fn concepts_follow_the_renamed_columns_but_not_literals() {
        let renames: HashMap<String, String> = [("status".to_string(), "OrderStatus".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            rename_identifiers("{a}status IN ('status', 'Shipped')", &renames),
            "{a}OrderStatus IN ('status', 'Shipped')"
        );
    }

    #[test]
    fn variants_keep_foreign_keys_closed_and_names_unique() {
        let catalog = catalog().unwrap();
        let mut cases = HashSet::new();
        for (i, domain) in catalog.domains.iter().enumerate() {
            for v in 0..12u64 {
                let mut rng = ChaCha8Rng::seed_from_u64(v);
                rng.set_stream(i as u64);
                let db = variant(domain, &catalog.words, format!("db{v}"), &mut rng);
                assert!(db.tables.len() >= domain.tables.len().min(3));
                let names: HashSet<String> =
                    db.tables.iter().map(|t| t.name.to_lowercase()).collect();
                assert_eq!(names.len(), db.tables.len());
                let mut has_fk = false;
                for table in &db.tables {
                    assert!(
                        catalog.words.is_plain_identifier(&table.name),
                        "{}",
                        table.name
                    );
                    let cols: HashSet<String> = table
                        .columns
                        .iter()
                        .map(|c| c.name.to_lowercase())
                        .collect();
                    assert_eq!(cols.len(), table.columns.len(), "{}", table.name);
                    for key in &table.primary_key {
                        assert!(table.column_index(key).is_some(), "{key}");
                    }
                    for column in &table.columns {
                        assert!(
                            catalog.words.is_plain_identifier(&column.name),
                            "{}",
                            column.name
                        );
                        if let Gen::Ref(parent) = &column.gen {
                            has_fk = true;
                            assert!(db.table_index(parent).is_some(), "{parent} kept");
                        }
                        cases.insert(
                            column.name.contains('_')
                                || column.name.chars().any(|c| c.is_uppercase()),
                        );
                    }
                }
                assert!(has_fk, "{}: a variant has a join", db.db_id);
                for concept in &db.concepts {
                    assert!(db.table_index(&concept.table).is_some());
                }
            }
        }
    }
}

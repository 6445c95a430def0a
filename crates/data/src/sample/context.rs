//! What the question templates see of one generated database: each table's
//! columns sorted by role (label, category, measure, date), the foreign-key
//! edges, and the generated rows for drawing literal values that occur in
//! the data (so that filtered questions have answers).

use rand::seq::IndexedRandom;
use rand::Rng;
use rusqlite::types::Value;

use super::rows::TableData;
use super::spec::{Domain, Gen};

pub(crate) struct DbContext<'a> {
    pub domain: &'a Domain,
    pub data: &'a [TableData],
    pub roles: Vec<TableRoles>,
    pub edges: Vec<Edge>,
}

/// Column indices of one table by role.
pub(crate) struct TableRoles {
    /// The column that names a row (a name, title or code), if any.
    pub label: Option<usize>,
    pub categories: Vec<usize>,
    pub measures: Vec<usize>,
    pub dates: Vec<usize>,
    /// The single-column primary key, if the key is not composite.
    pub key: Option<usize>,
}

/// `child.child_col` references `parent.parent_col` (its primary key).
#[derive(Clone, Copy)]
pub(crate) struct Edge {
    pub child: usize,
    pub child_col: usize,
    pub parent: usize,
    pub parent_col: usize,
}

impl<'a> DbContext<'a> {
    pub fn new(domain: &'a Domain, data: &'a [TableData]) -> Self {
        let mut roles = Vec::new();
        let mut edges = Vec::new();
        for (t, table) in domain.tables.iter().enumerate() {
            let mut r = TableRoles {
                label: None,
                categories: Vec::new(),
                measures: Vec::new(),
                dates: Vec::new(),
                key: None,
            };
            // The label: a person's or thing's name before a code, the
            // first in column order among equals.
            r.label = [true, false].iter().find_map(|&names| {
                table.columns.iter().position(|column| match column.gen {
                    Gen::Person | Gen::Named(..) => names,
                    Gen::Code(_) => !names,
                    _ => false,
                })
            });
            for (c, column) in table.columns.iter().enumerate() {
                match &column.gen {
                    Gen::Pick(_) => r.categories.push(c),
                    Gen::Int(low, high) if high - low >= 2 => r.measures.push(c),
                    Gen::Real(..) => r.measures.push(c),
                    Gen::Date(..) | Gen::DateAfter(..) => r.dates.push(c),
                    Gen::Ref(parent) => {
                        if let Some(p) = domain.table_index(parent) {
                            let parent_col = domain
                                .referenced_key(parent)
                                .and_then(|k| domain.tables[p].column_index(k))
                                .unwrap_or(0);
                            edges.push(Edge {
                                child: t,
                                child_col: c,
                                parent: p,
                                parent_col,
                            });
                        }
                    }
                    _ => {}
                }
            }
            if let [single] = table.primary_key.as_slice() {
                r.key = table.column_index(single);
            }
            roles.push(r);
        }
        DbContext {
            domain,
            data,
            roles,
            edges,
        }
    }

    pub fn table(&self, t: usize) -> &'a str {
        &self.domain.tables[t].name
    }
    pub fn plural(&self, t: usize) -> &'a str {
        &self.domain.tables[t].plural
    }
    pub fn singular(&self, t: usize) -> &'a str {
        &self.domain.tables[t].singular
    }
    pub fn col(&self, t: usize, c: usize) -> &'a str {
        &self.domain.tables[t].columns[c].name
    }
    /// The column in words, as questions name it.
    pub fn words(&self, t: usize, c: usize) -> String {
        self.domain.tables[t].columns[c].words()
    }

    /// The parent of an edge in words. When the foreign key is not named
    /// after the parent's key (`destination_airport_id` -> `airport_id`),
    /// the role is named too, or a question could mean either edge.
    pub fn parent_plural(&self, e: Edge) -> String {
        match self.edge_role(e) {
            Some(role) => format!("{} (as {role})", self.plural(e.parent)),
            None => self.plural(e.parent).to_string(),
        }
    }

    pub fn parent_singular(&self, e: Edge) -> String {
        match self.edge_role(e) {
            Some(role) => format!("{} (as {role})", self.singular(e.parent)),
            None => self.singular(e.parent).to_string(),
        }
    }

    fn edge_role(&self, e: Edge) -> Option<String> {
        let column = |t: usize, c: usize| self.domain.tables[t].columns[c].logical_name();
        let (fk, pk) = (column(e.child, e.child_col), column(e.parent, e.parent_col));
        (fk != pk).then(|| fk.trim_end_matches("_id").replace('_', " "))
    }

    /// A random table satisfying `pred`.
    pub fn pick_table(
        &self,
        rng: &mut impl Rng,
        pred: impl Fn(&TableRoles) -> bool,
    ) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.roles.len())
            .filter(|&t| pred(&self.roles[t]))
            .collect();
        candidates.choose(rng).copied()
    }

    /// A random edge whose child and parent satisfy the predicates.
    pub fn pick_edge(
        &self,
        rng: &mut impl Rng,
        child: impl Fn(&TableRoles) -> bool,
        parent: impl Fn(&TableRoles) -> bool,
    ) -> Option<Edge> {
        let candidates: Vec<Edge> = self
            .edges
            .iter()
            .filter(|e| child(&self.roles[e.child]) && parent(&self.roles[e.parent]))
            .copied()
            .collect();
        candidates.choose(rng).copied()
    }

    /// The value of column `c` in a random row of table `t`.
    pub fn value(&self, rng: &mut impl Rng, t: usize, c: usize) -> Value {
        self.data[t]
            .rows
            .choose(rng)
            .and_then(|row| row.get(c).cloned())
            .unwrap_or(Value::Null)
    }

    /// Up to `n` distinct values of a column, drawn from random rows.
    pub fn distinct_values(&self, rng: &mut impl Rng, t: usize, c: usize, n: usize) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for _ in 0..n * 8 {
            let v = self.value(rng, t, c);
            if !out.contains(&v) {
                out.push(v);
            }
            if out.len() == n {
                break;
            }
        }
        out
    }

    /// A numeric threshold between the 20th and 80th percentile of the
    /// column, rounded to a value a person would type.
    pub fn threshold(&self, rng: &mut impl Rng, t: usize, c: usize) -> Value {
        let mut numbers: Vec<f64> = self.numbers(t, c);
        if numbers.is_empty() {
            return Value::Integer(0);
        }
        numbers.sort_by(f64::total_cmp);
        let q = rng.random_range(0.2..0.8);
        let index = ((numbers.len() - 1) as f64 * q) as usize;
        let integer_column = self.data[t]
            .rows
            .first()
            .is_some_and(|row| matches!(row.get(c), Some(Value::Integer(_))));
        match nice(numbers[index]) {
            Value::Real(r) if integer_column => Value::Integer(r.round() as i64),
            other => other,
        }
    }

    pub fn mean(&self, t: usize, c: usize) -> f64 {
        let numbers = self.numbers(t, c);
        numbers.iter().sum::<f64>() / numbers.len().max(1) as f64
    }

    fn numbers(&self, t: usize, c: usize) -> Vec<f64> {
        self.data[t]
            .rows
            .iter()
            .filter_map(|row| match row.get(c) {
                Some(Value::Integer(i)) => Some(*i as f64),
                Some(Value::Real(r)) => Some(*r),
                _ => None,
            })
            .collect()
    }

    /// Two dates of a date column in order (earlier, later).
    pub fn date_range(&self, rng: &mut impl Rng, t: usize, c: usize) -> (Value, Value) {
        let a = self.value(rng, t, c);
        let b = self.value(rng, t, c);
        match (&a, &b) {
            (Value::Text(x), Value::Text(y)) if x > y => (b, a),
            _ => (a, b),
        }
    }
}

/// A round number close to `x`: two significant digits for large values,
/// an integer from 10, one decimal below.
pub(crate) fn nice(x: f64) -> Value {
    let magnitude = x.abs();
    if magnitude >= 100.0 {
        let step = 10f64.powf(magnitude.log10().floor() - 1.0);
        Value::Integer(((x / step).round() * step) as i64)
    } else if magnitude >= 10.0 {
        Value::Integer(x.round() as i64)
    } else {
        Value::Real((x * 10.0).round() / 10.0)
    }
}

/// A value as an SQL literal.
pub(crate) fn sql_lit(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => format_real(*r),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Null | Value::Blob(_) => "NULL".to_string(),
    }
}

/// A value as a question writes it: text in single quotes, numbers bare.
pub(crate) fn q_lit(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("'{s}'"),
        other => sql_lit(other),
    }
}

fn format_real(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{r:.1}")
    } else {
        let s = format!("{r:.2}");
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_escaped() {
        assert_eq!(sql_lit(&Value::Text("O'Neil".into())), "'O''Neil'");
        assert_eq!(sql_lit(&Value::Real(12.5)), "12.5");
        assert_eq!(sql_lit(&Value::Real(3.0)), "3.0");
        assert_eq!(q_lit(&Value::Text("Gold".into())), "'Gold'");
    }

    #[test]
    fn thresholds_are_round() {
        assert_eq!(nice(1234.56), Value::Integer(1200));
        assert_eq!(nice(57.4), Value::Integer(57));
        assert_eq!(nice(3.27), Value::Real(3.3));
    }
}

//! Spider's difficulty levels (easy, medium, hard, extra), computed the way
//! Spider's `evaluation.py` `eval_hardness` does over its own parsed SQL,
//! here over sqlparser's syntax tree. The counts follow that script's
//! structure, including its quirks: only the outermost SELECT is counted (the
//! left-most one of a UNION / INTERSECT / EXCEPT, whose ORDER BY and LIMIT
//! belong to the right-hand query in Spider's parser); its `has_agg` on a
//! condition looks at the NOT flag, and on HAVING's list also counts each
//! AND/OR connector.

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, InTarget, JoinConstraint, JoinOperator, OrderByKind, Query,
    Select, SelectItem, SetExpr, Statement,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

/// One of Spider's four difficulty levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hardness {
    Easy,
    Medium,
    Hard,
    Extra,
}

impl Hardness {
    pub const ALL: [Hardness; 4] = [
        Hardness::Easy,
        Hardness::Medium,
        Hardness::Hard,
        Hardness::Extra,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hardness::Easy => "easy",
            Hardness::Medium => "medium",
            Hardness::Hard => "hard",
            Hardness::Extra => "extra",
        }
    }
}

/// The hardness of `sql`, or `None` when sqlparser cannot parse it as one query.
pub fn spider_hardness(sql: &str) -> Option<Hardness> {
    let statements = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return None;
    };
    let counts = Counts::of_query(query)?;
    Some(counts.hardness())
}

/// `count_component1`, `count_component2` and `count_others`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    component1: usize,
    component2: usize,
    others: usize,
}

impl Counts {
    fn hardness(&self) -> Hardness {
        let (c1, c2, others) = (self.component1, self.component2, self.others);
        if c1 <= 1 && others == 0 && c2 == 0 {
            Hardness::Easy
        } else if (others <= 2 && c1 <= 1 && c2 == 0) || (c1 <= 2 && others < 2 && c2 == 0) {
            Hardness::Medium
        } else if (others > 2 && c1 <= 2 && c2 == 0)
            || (2 < c1 && c1 <= 3 && others <= 2 && c2 == 0)
            || (c1 <= 1 && others == 0 && c2 <= 1)
        {
            Hardness::Hard
        } else {
            Hardness::Extra
        }
    }

    fn of_query(query: &Query) -> Option<Counts> {
        // Spider's parser gives the ORDER BY / LIMIT after a set operation to
        // its right-hand query, so they only count on a plain SELECT.
        let (select, set_operation, order_by, has_limit) = match query.body.as_ref() {
            SetExpr::Select(select) => (
                select.as_ref(),
                false,
                query.order_by.as_ref(),
                query.limit_clause.is_some(),
            ),
            SetExpr::SetOperation { .. } => (leftmost_select(&query.body)?, true, None, false),
            SetExpr::Query(inner) => return Counts::of_query(inner),
            _ => return None,
        };
        let order_exprs: Vec<&Expr> = match order_by.map(|o| &o.kind) {
            Some(OrderByKind::Expressions(exprs)) => exprs.iter().map(|o| &o.expr).collect(),
            _ => Vec::new(),
        };
        let group_by: &[Expr] = match &select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs,
            GroupByExpr::All(_) => &[],
        };
        let from_conds = join_conditions(select);
        let where_conds = select
            .selection
            .as_ref()
            .map(Conditions::of)
            .unwrap_or_default();
        let having_conds = select
            .having
            .as_ref()
            .map(Conditions::of)
            .unwrap_or_default();
        let all_conds = [&from_conds, &where_conds, &having_conds];

        let mut component1 = 0;
        component1 += usize::from(!where_conds.units.is_empty());
        component1 += usize::from(!group_by.is_empty());
        component1 += usize::from(!order_exprs.is_empty());
        component1 += usize::from(has_limit);
        let table_units: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
        component1 += table_units.saturating_sub(1);
        component1 += all_conds.iter().map(|c| c.ors).sum::<usize>();
        component1 += all_conds
            .iter()
            .flat_map(|c| &c.units)
            .filter(|unit| matches!(unit, Expr::Like { .. }))
            .count();

        let mut component2 = usize::from(set_operation);
        component2 += all_conds
            .iter()
            .flat_map(|c| &c.units)
            .map(|unit| nested_queries(unit))
            .sum::<usize>();

        let mut agg_count = select
            .projection
            .iter()
            .filter(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    starts_with_aggregate(e)
                }
                _ => false,
            })
            .count();
        agg_count += where_conds.units.iter().filter(|u| is_negated(u)).count();
        agg_count += group_by.iter().filter(|e| is_aggregate(e)).count();
        agg_count += order_exprs
            .iter()
            .map(|e| order_unit_aggregates(e))
            .sum::<usize>();
        agg_count += having_conds.units.iter().filter(|u| is_negated(u)).count();
        agg_count += having_conds.connectors;
        let mut others = usize::from(agg_count > 1);
        others += usize::from(select.projection.len() > 1);
        others += usize::from(where_conds.units.len() > 1);
        others += usize::from(group_by.len() > 1);

        Some(Counts {
            component1,
            component2,
            others,
        })
    }
}

fn leftmost_select(body: &SetExpr) -> Option<&Select> {
    match body {
        SetExpr::Select(select) => Some(select),
        SetExpr::SetOperation { left, .. } => leftmost_select(left),
        SetExpr::Query(query) => leftmost_select(&query.body),
        _ => None,
    }
}

/// A condition as Spider's parser lists it: the units between top-level
/// AND / OR, the number of connectors, and how many of them are OR.
#[derive(Default)]
struct Conditions<'a> {
    units: Vec<&'a Expr>,
    connectors: usize,
    ors: usize,
}

impl<'a> Conditions<'a> {
    fn of(expr: &'a Expr) -> Self {
        let mut conditions = Conditions::default();
        conditions.add(expr);
        conditions
    }

    fn add(&mut self, expr: &'a Expr) {
        match expr {
            Expr::BinaryOp { left, op, right }
                if matches!(op, BinaryOperator::And | BinaryOperator::Or) =>
            {
                self.connectors += 1;
                self.ors += usize::from(*op == BinaryOperator::Or);
                self.add(left);
                self.add(right);
            }
            Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { .. }) => {
                self.add(inner)
            }
            unit => self.units.push(unit),
        }
    }
}

/// Every JOIN ... ON condition, joined by AND as Spider's parser joins them.
fn join_conditions(select: &Select) -> Conditions<'_> {
    let mut conditions = Conditions::default();
    for join in select.from.iter().flat_map(|t| &t.joins) {
        let constraint = match &join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c) => c,
            _ => continue,
        };
        if let JoinConstraint::On(expr) = constraint {
            if !conditions.units.is_empty() {
                conditions.connectors += 1;
            }
            conditions.add(expr);
        }
    }
    conditions
}

/// Subqueries standing as a condition's value (`x IN (SELECT ..)`, `x > (SELECT ..)`).
fn nested_queries(unit: &Expr) -> usize {
    let is_subquery = |e: &Expr| usize::from(matches!(e, Expr::Subquery(_)));
    match unit {
        Expr::In {
            target: InTarget::Subquery(_),
            ..
        } => 1,
        Expr::BinaryOp { right, .. } => is_subquery(right),
        Expr::Between { low, high, .. } => is_subquery(low) + is_subquery(high),
        Expr::Like { pattern, .. } => is_subquery(pattern),
        _ => 0,
    }
}

/// Spider's condition unit carries a NOT flag for `NOT IN`, `NOT LIKE`, `NOT BETWEEN`.
fn is_negated(unit: &Expr) -> bool {
    match unit {
        Expr::In { negated, .. } | Expr::Like { negated, .. } | Expr::Between { negated, .. } => {
            *negated
        }
        _ => false,
    }
}

const AGGREGATES: [&str; 5] = ["max", "min", "count", "sum", "avg"];

fn is_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(function) => {
            AGGREGATES.contains(&function.name.to_string().to_lowercase().as_str())
        }
        Expr::Nested(inner) => is_aggregate(inner),
        _ => false,
    }
}

/// Spider's SELECT item takes its aggregate from the first token.
fn starts_with_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryOp { left, .. } => starts_with_aggregate(left),
        Expr::Function(_) => is_aggregate(expr),
        _ => false,
    }
}

/// An ORDER BY value unit has up to two column units, each with its aggregate.
fn order_unit_aggregates(expr: &Expr) -> usize {
    match expr {
        Expr::BinaryOp { left, right, .. } => {
            usize::from(is_aggregate(left)) + usize::from(is_aggregate(right))
        }
        other => usize::from(is_aggregate(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_spider_dev_examples() {
        let cases = [
            ("SELECT count(*) FROM singer", Hardness::Easy),
            ("SELECT name ,  country ,  age FROM singer ORDER BY age DESC", Hardness::Medium),
            (
                "SELECT avg(age) ,  min(age) ,  max(age) FROM singer WHERE country  =  'France'",
                Hardness::Medium,
            ),
            (
                "SELECT T2.name ,  count(*) FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id  =  T2.stadium_id GROUP BY T1.stadium_id",
                Hardness::Medium,
            ),
            (
                "SELECT name FROM stadium WHERE stadium_id NOT IN (SELECT stadium_id FROM concert)",
                Hardness::Hard,
            ),
            (
                "SELECT country FROM singer WHERE age  >  40 INTERSECT SELECT country FROM singer WHERE age  <  30",
                Hardness::Hard,
            ),
            (
                "SELECT T2.name ,  T2.capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id  =  T2.stadium_id WHERE T1.year  >=  2014 GROUP BY T2.stadium_id ORDER BY count(*) DESC LIMIT 1",
                Hardness::Extra,
            ),
        ];
        for (sql, expected) in cases {
            assert_eq!(spider_hardness(sql), Some(expected), "{sql}");
        }
    }

    #[test]
    fn unparseable_sql_has_no_hardness() {
        assert_eq!(spider_hardness("SELEC nonsense"), None);
    }
}

#[cfg(test)]
mod spider_dev {
    use super::*;

    /// Spider's published dev split: 248 easy, 446 medium, 174 hard, 166 extra.
    #[test]
    fn dev_gold_hardness_matches_the_published_breakdown() {
        let Some(path) = text2sql_data::test_data::shared_data("spider/dev_gold.sql") else {
            return;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (sql, _db) = line.rsplit_once('\t').unwrap();
            let hardness = spider_hardness(sql).unwrap_or_else(|| panic!("unparsed: {sql}"));
            *counts.entry(hardness).or_insert(0) += 1;
        }
        let expected = [
            (Hardness::Easy, 248),
            (Hardness::Medium, 446),
            (Hardness::Hard, 174),
            (Hardness::Extra, 166),
        ];
        assert_eq!(counts, expected.into_iter().collect());
    }
}

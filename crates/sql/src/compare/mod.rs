//! Whether a prediction's result equals the gold result, under the two
//! published execution-accuracy rules.

mod bird;
mod preprocess;
mod spider;

use serde::{Deserialize, Serialize};

pub use bird::bird_result_eq;
pub use preprocess::{close_up_operators, remove_distinct, replace_current_year};
pub use spider::spider_result_eq;

use crate::value::Value;

/// A result as the rules see it: rows of values (column names play no part).
pub type Rows = [Vec<Value>];

/// Which published rule decides execution accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// test-suite-sql-eval (`exec_eval.py`): DISTINCT removed, bag or ordered
    /// comparison, columns may be permuted.
    #[default]
    Spider,
    /// BIRD / OmniSQL: `set(pred) == set(gold)`.
    Bird,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Spider => "spider",
            Rule::Bird => "bird",
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "spider" => Ok(Rule::Spider),
            "bird" | "omnisql" => Ok(Rule::Bird),
            other => Err(format!("unknown rule `{other}` (expected spider or bird)")),
        }
    }
}

impl Rule {
    /// The SQL this rule executes for `sql` (gold or prediction alike).
    /// Spider, as `exec_eval.py`: `> =`, `< =`, `! =` closed up, DISTINCT
    /// removed unless `keep_distinct`, `YEAR(CURDATE())` replaced by 2020.
    /// BIRD: the SQL as written.
    pub fn executed_sql(self, sql: &str, keep_distinct: bool) -> String {
        match self {
            Rule::Spider => prepare_spider_side(sql, keep_distinct),
            Rule::Bird => sql.to_string(),
        }
    }

    /// Whether row order matters, given the gold SQL as executed: Spider
    /// looks for `order by` in it; BIRD never minds the order.
    pub fn order_matters(self, executed_gold: &str) -> bool {
        self == Rule::Spider && executed_gold.to_lowercase().contains("order by")
    }
}

/// [`Rule::executed_sql`] under the Spider rule.
pub fn prepare_spider_side(sql: &str, keep_distinct: bool) -> String {
    let sql = close_up_operators(sql);
    let sql = if keep_distinct {
        sql
    } else {
        remove_distinct(&sql)
    };
    replace_current_year(&sql)
}

/// Whether `prediction` rows equal `gold` rows under `rule`.
pub fn results_equal(rule: Rule, gold: &Rows, prediction: &Rows, order_matters: bool) -> bool {
    match rule {
        Rule::Spider => spider_result_eq(gold, prediction, order_matters),
        Rule::Bird => bird_result_eq(gold, prediction),
    }
}

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

/// The gold and predicted SQL as they are executed under one rule, and
/// whether row order matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPair {
    pub gold: String,
    pub prediction: String,
    pub order_matters: bool,
}

/// The SQL a rule executes. Spider: `> =`, `< =`, `! =` closed up in both
/// queries (as `exec_eval.py` does), DISTINCT removed unless `keep_distinct`,
/// `YEAR(CURDATE())` replaced by 2020, and order matters when the processed
/// gold contains `order by`. BIRD: both run as written; order never matters.
pub fn prepare_sql(rule: Rule, gold: &str, prediction: &str, keep_distinct: bool) -> PreparedPair {
    match rule {
        Rule::Spider => {
            let gold = prepare_spider_side(gold, keep_distinct);
            let prediction = prepare_spider_side(prediction, keep_distinct);
            let order_matters = gold.to_lowercase().contains("order by");
            PreparedPair {
                gold,
                prediction,
                order_matters,
            }
        }
        Rule::Bird => PreparedPair {
            gold: gold.to_string(),
            prediction: prediction.to_string(),
            order_matters: false,
        },
    }
}

/// One side of [`prepare_sql`] under the Spider rule.
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

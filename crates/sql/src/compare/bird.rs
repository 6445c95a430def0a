//! BIRD's and OmniSQL's rule: `set(predicted_res) == set(ground_truth_res)`.

use std::collections::HashSet;

use super::Rows;

/// Rows compared as sets of tuples: order and duplicates ignored, column
/// order matters, values equal as Python compares them (`1 == 1.0`).
pub fn bird_result_eq(gold: &Rows, prediction: &Rows) -> bool {
    let gold: HashSet<&[_]> = gold.iter().map(Vec::as_slice).collect();
    let prediction: HashSet<&[_]> = prediction.iter().map(Vec::as_slice).collect();
    gold == prediction
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value::{Integer as I, Real as F, Text as T};

    #[test]
    fn order_and_duplicates_are_ignored() {
        let gold = vec![vec![I(1)], vec![I(2)]];
        let pred = vec![vec![I(2)], vec![I(1)], vec![I(2)]];
        assert!(bird_result_eq(&gold, &pred));
    }

    #[test]
    fn column_order_matters() {
        let gold = vec![vec![I(1), T("a".into())]];
        let pred = vec![vec![T("a".into()), I(1)]];
        assert!(!bird_result_eq(&gold, &pred));
    }

    #[test]
    fn values_compare_like_python_sets() {
        assert!(bird_result_eq(&[vec![I(1)]], &[vec![F(1.0)]]));
        assert!(!bird_result_eq(&[vec![I(1)]], &[vec![T("1".into())]]));
        assert!(bird_result_eq(&[], &[]));
        assert!(!bird_result_eq(&[], &[vec![I(1)]]));
    }
}

//! Stop on a non-finite loss or gradient norm with a message that says what
//! to do: T5 overflows in fp16, so the fix is nearly always the dtype or lr.

use std::fmt;

/// What was found to be non-finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Loss,
    GradNorm,
    ValLoss,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quantity::Loss => "training loss",
            Quantity::GradNorm => "gradient norm",
            Quantity::ValLoss => "validation loss",
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{quantity} is {value} at step {step}: training diverged. T5 overflows in fp16; \
     train in f32 on CPU or bf16 on GPU, and try a lower learning rate or clip_norm"
)]
pub struct NonFiniteError {
    pub quantity: Quantity,
    pub value: f64,
    pub step: u64,
}

/// Returns `value` unchanged when it is finite, a [`NonFiniteError`] otherwise.
pub fn check_finite(quantity: Quantity, value: f64, step: u64) -> Result<f64, NonFiniteError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NonFiniteError {
            quantity,
            value,
            step,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_values_pass_through() {
        assert_eq!(check_finite(Quantity::Loss, 2.5, 3), Ok(2.5));
    }

    #[test]
    fn nan_and_inf_are_rejected_with_a_clear_message() {
        let err = check_finite(Quantity::Loss, f64::NAN, 120).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("training loss is NaN at step 120"), "{msg}");
        assert!(msg.contains("fp16"), "{msg}");
        let err = check_finite(Quantity::GradNorm, f64::INFINITY, 7).unwrap_err();
        assert_eq!(err.quantity, Quantity::GradNorm);
        assert!(err
            .to_string()
            .starts_with("gradient norm is inf at step 7"));
    }
}

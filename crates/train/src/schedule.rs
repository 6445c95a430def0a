//! Learning-rate schedules with linear warmup.

use serde::{Deserialize, Serialize};

use crate::config::{ScheduleConfig, ScheduleKind};

/// The learning rate as a function of the optimizer step. Pure: the trainer
/// stores only the step, so resuming needs no schedule state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub kind: ScheduleKind,
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    /// Decay ends at `base_lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
}

impl LrSchedule {
    pub fn new(config: &ScheduleConfig, base_lr: f64, total_steps: u64) -> LrSchedule {
        LrSchedule {
            kind: config.kind,
            base_lr,
            warmup_steps: config.warmup_steps,
            total_steps,
            min_lr_ratio: config.min_lr_ratio,
        }
    }

    /// The learning rate for the update made at `step` (0-based): warmup
    /// reaches `base_lr` at `step == warmup_steps`, decay reaches the floor at
    /// `total_steps` and stays there.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let floor = self.base_lr * self.min_lr_ratio;
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        let progress = if decay_steps == 0 {
            1.0
        } else {
            ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0)
        };
        match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Linear => floor + (self.base_lr - floor) * (1.0 - progress),
            ScheduleKind::Cosine => {
                floor
                    + (self.base_lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, min_lr_ratio: f64) -> LrSchedule {
        LrSchedule {
            kind,
            base_lr: 1e-3,
            warmup_steps: 9,
            total_steps: 109,
            min_lr_ratio,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn warmup_rises_linearly_to_the_base_rate() {
        for kind in [
            ScheduleKind::Constant,
            ScheduleKind::Linear,
            ScheduleKind::Cosine,
        ] {
            let s = schedule(kind, 0.0);
            assert!(close(s.lr_at(0), 1e-4), "{kind:?}");
            assert!(close(s.lr_at(4), 5e-4), "{kind:?}");
            assert!(s.lr_at(8) < 1e-3);
            assert!(close(s.lr_at(9), 1e-3), "{kind:?}");
        }
    }

    #[test]
    fn constant_stays_flat_after_warmup() {
        let s = schedule(ScheduleKind::Constant, 0.0);
        assert!(close(s.lr_at(50), 1e-3) && close(s.lr_at(10_000), 1e-3));
    }

    #[test]
    fn linear_decays_to_the_floor() {
        let s = schedule(ScheduleKind::Linear, 0.1);
        assert!(close(s.lr_at(59), 1e-4 + 0.5 * 9e-4));
        assert!(close(s.lr_at(109), 1e-4));
        assert!(close(s.lr_at(500), 1e-4));
    }

    #[test]
    fn cosine_is_half_way_at_mid_decay_and_ends_at_the_floor() {
        let s = schedule(ScheduleKind::Cosine, 0.0);
        assert!(close(s.lr_at(59), 5e-4));
        assert!(close(
            s.lr_at(34),
            1e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())
        ));
        assert!(close(s.lr_at(109), 0.0));
        assert!(s.lr_at(60) < s.lr_at(59));
    }

    #[test]
    fn no_warmup_starts_at_the_base_rate() {
        let mut s = schedule(ScheduleKind::Linear, 0.0);
        s.warmup_steps = 0;
        assert!(close(s.lr_at(0), 1e-3));
    }
}

//! Adaptive KL coefficient — "Fine-Tuning Language Models from Human Preferences" (Ziegler et al.,
//! 2019): β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n_steps/horizon).
//! CONFIRMED-CODE (verl AdaptiveKLController).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveKl {
    pub value: f64,
    pub target: f64,
    pub horizon: f64,
}

impl AdaptiveKl {
    pub fn update(&mut self, current_kl: f64, n_steps: f64) {
        let err = (current_kl / self.target - 1.0).clamp(-0.2, 0.2);
        self.value *= 1.0 + err * n_steps / self.horizon;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_towards_target() {
        let mut c = AdaptiveKl { value: 0.1, target: 0.05, horizon: 10.0 };
        c.update(0.1, 1.0); // KL twice the target: error clipped to 0.2
        assert!((c.value - 0.1 * 1.02).abs() < 1e-12);
        c.update(0.0, 1.0);
        assert!((c.value - 0.1 * 1.02 * 0.98).abs() < 1e-12);
        let v = c.value;
        c.update(0.05, 5.0);
        assert_eq!(c.value, v);
    }
}

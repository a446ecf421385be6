//! DAPO dynamic sampling — "DAPO: An Open-Source LLM Reinforcement Learning System at Scale" (2025).
//!
//! Groups whose rewards are all equal carry no group-relative signal; they are dropped and more
//! prompts are sampled until the batch holds B informative groups (or a cap on generation rounds is
//! reached). The practical filter keeps groups with mean accuracy in [low, high]
//! (PAPO uses [0.01, 0.99]). CONFIRMED-CODE (verl; PAPO examples/config.yaml).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DynamicFilter {
    /// Keep groups whose mean accuracy lies in [acc_low, acc_high] …
    pub acc_low: f64,
    pub acc_high: f64,
}

impl Default for DynamicFilter {
    fn default() -> Self {
        Self { acc_low: 0.01, acc_high: 0.99 }
    }
}

/// … and whose rewards are not all equal (non-zero variance).
pub fn group_is_informative(rewards: &[f64], correct: &[bool], f: &DynamicFilter) -> bool {
    if rewards.len() < 2 {
        return false;
    }
    let varied = rewards.iter().any(|&r| (r - rewards[0]).abs() > 1e-12);
    let acc = correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64;
    varied && acc >= f.acc_low && acc <= f.acc_high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = DynamicFilter::default();
        assert!(!group_is_informative(&[1.0, 1.0, 1.0], &[true; 3], &f));
        assert!(!group_is_informative(&[0.0, 0.0], &[false; 2], &f));
        assert!(group_is_informative(&[1.0, 0.0], &[true, false], &f));
        assert!(!group_is_informative(&[1.0], &[true], &f));
        let narrow = DynamicFilter { acc_low: 0.3, acc_high: 0.7 };
        assert!(!group_is_informative(&[1.0, 0.0, 0.0, 0.0], &[true, false, false, false], &narrow));
    }
}

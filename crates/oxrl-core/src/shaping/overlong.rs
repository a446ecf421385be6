//! DAPO soft overlong punishment — "DAPO: An Open-Source LLM Reinforcement Learning System at Scale"
//! (2025). With L_max the length limit and L_cache the buffer:
//! R_len(y) = 0 if |y| ≤ L_max − L_cache; ((L_max − L_cache) − |y|)/L_cache if inside the buffer;
//! −1 if |y| > L_max. Added to the reward. (The alternative, overlong filtering, masks truncated
//! responses out of the loss and lives in the trainer.) Formula from the paper (general knowledge).

pub fn overlong_penalty(len: usize, max_len: usize, cache: usize) -> f64 {
    let soft = max_len.saturating_sub(cache);
    if len <= soft {
        0.0
    } else if len <= max_len {
        (soft as f64 - len as f64) / cache as f64
    } else {
        -1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_at_breakpoints() {
        assert_eq!(overlong_penalty(10, 20, 4), 0.0);
        assert_eq!(overlong_penalty(16, 20, 4), 0.0);
        assert!((overlong_penalty(18, 20, 4) + 0.5).abs() < 1e-12);
        assert!((overlong_penalty(20, 20, 4) + 1.0).abs() < 1e-12);
        assert_eq!(overlong_penalty(21, 20, 4), -1.0);
        // approaching the soft limit from above tends to 0
        assert!(overlong_penalty(17, 200, 184).abs() < 0.01);
    }
}

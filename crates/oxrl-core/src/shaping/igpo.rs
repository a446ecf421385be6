//! IGPO — "Inpainting-Guided Policy Optimization for Diffusion Large Language Models" (2025), in
//! its prefix form for autoregressive models: when every sample of a group is wrong, G guided
//! samples are drawn with the first η_i of the reference solution forced into the response
//! (η_i ~ U[η_low, η_high], sorted); up to `max_replacements` wrong members are replaced by
//! correct guided samples, and of each replaced sample's forced tokens only the top `rho`
//! fraction by policy entropy (at least one) carries loss. CONFIRMED-CODE
//! (facebookresearch/igpo trainer_igpo.py); the AR prefix mapping is ours (INFERRED).

/// The group is all wrong (the trigger).
pub fn triggered(correct: &[bool]) -> bool {
    !correct.is_empty() && correct.iter().all(|c| !c)
}

/// Which wrong members (by index) to replace by which correct guided samples: pairs
/// (member, guided), at most `max_replacements`, in order.
pub fn replacements(guided_correct: &[bool], members: usize, max_replacements: usize) -> Vec<(usize, usize)> {
    guided_correct
        .iter()
        .enumerate()
        .filter(|(_, &c)| c)
        .map(|(i, _)| i)
        .take(max_replacements.min(members))
        .enumerate()
        .collect()
}

/// Of `entropy` (one value per forced hint token) the indices kept in the loss: the
/// ⌊n·rho⌋ highest-entropy ones, at least one (ties: the earlier position).
pub fn entropy_keep(entropy: &[f64], rho: f64) -> Vec<usize> {
    if entropy.is_empty() {
        return vec![];
    }
    let k = ((entropy.len() as f64 * rho).floor() as usize).max(1);
    let mut idx: Vec<usize> = (0..entropy.len()).collect();
    idx.sort_by(|&a, &b| entropy[b].total_cmp(&entropy[a]).then(a.cmp(&b)));
    let mut keep: Vec<usize> = idx.into_iter().take(k).collect();
    keep.sort();
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        assert!(triggered(&[false; 4]) && !triggered(&[false, true, false]));
        // 10 hint tokens at keep 0.2 -> the 2 highest-entropy; 3 tokens -> 1.
        let e = [0.1, 0.9, 0.3, 0.05, 0.8, 0.2, 0.0, 0.4, 0.35, 0.15];
        assert_eq!(entropy_keep(&e, 0.2), vec![1, 4]);
        assert_eq!(entropy_keep(&[0.1, 0.5, 0.2], 0.2), vec![1]);
        // Replacement: at most max_replacements correct guided samples, so with G > max the
        // group keeps a wrong member (non-degenerate).
        let r = replacements(&[true, false, true, true, true, true], 8, 4);
        assert_eq!(r, vec![(0, 0), (1, 2), (2, 3), (3, 4)]);
        assert!(replacements(&[false; 8], 8, 4).is_empty());
    }
}

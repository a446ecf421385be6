//! ExpRL — "Exploratory RL for LLM Mid-Training" (2026): a dense reward from a judge that
//! compares the response with a *hidden* human reference through a problem-specific rubric.
//!
//! The reference solution s_ref is turned into M ordered checkpoints (key reductions,
//! intermediate results, the final answer) with weights w_m ≥ 0, Σ w_m = 1. The policy samples
//! from the original prompt only — the reference never enters it — and the judge returns a score
//! g_m ∈ [0, 1] per checkpoint (and, where it can, the position where checkpoint m is first
//! achieved):
//!
//!   outcome level:  r = clamp(Σ_m w_m·g_m, 0, 1)        (one scalar per response)
//!   process level:  r_t = Σ_{m : t_m = t} w_m·g_m        (w_m·g_m on the token where m is first met)
//!
//! Used as a mid-training prior: after a number of steps the run switches back to the sparse
//! binary verifier reward. A response meeting every checkpoint gets 1, one with only the final
//! answer gets w_final, and adding a correct intermediate step never lowers r.
//!
//! INFERRED from the abstract only (references hidden, rubrics built from references, judge
//! gives outcome- or process-level dense rewards); equal weights by default, the final-answer
//! weight configurable. The built-in (programmatic) judge is the spec's CPU stand-in: a
//! checkpoint is met when its intermediate value appears in the response as the result of a step
//! (`=value`, not followed by a digit), the final answer when the task's verifier accepts it.

/// One rubric checkpoint derived from the hidden reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The reference step (what an LM judge is shown).
    pub text: String,
    /// Non-negative weight (normalised over the rubric by [`weights`]).
    pub weight: f64,
    /// The final-answer checkpoint (graded by the task's verifier in the programmatic judge).
    pub is_final: bool,
}

/// The judge's verdict on one checkpoint: score in [0, 1] and the byte offset in the response
/// where the checkpoint is first met (None: met, but the judge cannot say where).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grade {
    pub score: f64,
    pub at: Option<usize>,
}

/// A rubric from the reference's steps (the last one the final answer): equal weights, or
/// `final_weight` (in (0, 1]) for the final answer and the rest shared equally by the others.
pub fn rubric(steps: &[String], final_weight: f64) -> Vec<Checkpoint> {
    let m = steps.len();
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let is_final = i + 1 == m;
            let weight = if final_weight <= 0.0 || m == 1 {
                1.0
            } else if is_final {
                final_weight
            } else {
                (1.0 - final_weight) / (m - 1) as f64
            };
            Checkpoint { text: s.clone(), weight, is_final }
        })
        .collect()
}

/// The checkpoints' weights normalised to sum to 1 (all zero stays zero).
pub fn weights(cps: &[Checkpoint]) -> Vec<f64> {
    let total: f64 = cps.iter().map(|c| c.weight.max(0.0)).sum();
    cps.iter().map(|c| if total > 0.0 { c.weight.max(0.0) / total } else { 0.0 }).collect()
}

/// Outcome-level reward r = clamp(Σ w_m·g_m, 0, 1).
pub fn outcome_reward(cps: &[Checkpoint], grades: &[Grade]) -> f64 {
    assert_eq!(cps.len(), grades.len(), "one grade per checkpoint");
    let r: f64 = weights(cps).iter().zip(grades).map(|(w, g)| w * g.score.clamp(0.0, 1.0)).sum();
    r.clamp(0.0, 1.0)
}

/// Process-level rewards: each met checkpoint's w_m·g_m at the token `token_of(offset)` where it
/// is first met (the last token when the judge gives no position), over `len` tokens. They sum to
/// [`outcome_reward`] (before its clamp, which Σ w = 1 makes a no-op).
pub fn process_rewards(
    cps: &[Checkpoint],
    grades: &[Grade],
    len: usize,
    mut token_of: impl FnMut(usize) -> usize,
) -> Vec<f64> {
    assert_eq!(cps.len(), grades.len(), "one grade per checkpoint");
    let mut r = vec![0.0; len];
    if len == 0 {
        return r;
    }
    for (w, g) in weights(cps).iter().zip(grades) {
        let v = w * g.score.clamp(0.0, 1.0);
        if v == 0.0 {
            continue;
        }
        let t = g.at.map_or(len - 1, &mut token_of).min(len - 1);
        r[t] += v;
    }
    r
}

/// The value a reference step establishes: the text after its last `=` (or after `answer:`),
/// trimmed; the whole step when it has neither.
pub fn step_value(step: &str) -> &str {
    let s = step.trim();
    if let Some(i) = s.rfind('=') {
        return s[i + 1..].trim();
    }
    if let Some(i) = s.to_ascii_lowercase().rfind("answer:") {
        return s[i + "answer:".len()..].trim();
    }
    s
}

/// The end (byte offset) of the first place where `response` states `value` as a step result:
/// `=value` (spaces allowed after `=`) not followed by another digit; for a value without digits,
/// its first occurrence. None when absent.
pub fn find_value(response: &str, value: &str) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    if !value.chars().any(|c| c.is_ascii_digit()) {
        return response.find(value).map(|i| i + value.len());
    }
    let bytes = response.as_bytes();
    for (i, _) in response.match_indices('=') {
        let mut j = i + 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if response[j..].starts_with(value) {
            let end = j + value.len();
            let more_digits = bytes.get(end).is_some_and(|b| b.is_ascii_digit());
            if !more_digits {
                return Some(end);
            }
        }
    }
    None
}

/// The first substring of `reference` longer than `max_len` bytes that also occurs in `prompt`
/// (None: the prompt does not leak the reference). The spec's guard: the policy-side prompt
/// contains no substring of s_ref longer than 20 characters.
pub fn leaked_substring<'a>(prompt: &str, reference: &'a str, max_len: usize) -> Option<&'a str> {
    let w = max_len + 1;
    if reference.len() < w {
        return None;
    }
    (0..=reference.len() - w)
        .filter(|&i| reference.is_char_boundary(i) && reference.is_char_boundary(i + w))
        .map(|i| &reference[i..i + w])
        .find(|s| prompt.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The ARITH stand-in's mock judge: a step is met when its value is stated as a result, the
    /// final answer when `answer: <value>` is there.
    fn mock_grades(cps: &[Checkpoint], response: &str) -> Vec<Grade> {
        cps.iter()
            .map(|c| {
                let at = if c.is_final {
                    let needle = format!("answer: {}", step_value(&c.text));
                    response.find(&needle).map(|i| i + needle.len())
                } else {
                    find_value(response, step_value(&c.text))
                };
                Grade { score: at.is_some() as u8 as f64, at }
            })
            .collect()
    }

    #[test]
    fn rubric_weights() {
        let s = steps(&["step1: 3*4=12", "step2: 12+5=17", "step3: 17-2=15", "answer: 15"]);
        let eq = rubric(&s, 0.0);
        assert_eq!(weights(&eq), vec![0.25; 4]);
        assert!(eq[3].is_final && !eq[0].is_final);
        let f = rubric(&s, 0.4);
        let w = weights(&f);
        assert!((w[3] - 0.4).abs() < 1e-12 && (w[0] - 0.2).abs() < 1e-12);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(weights(&rubric(&steps(&["answer: 3"]), 0.4)), vec![1.0]);
    }

    #[test]
    fn full_rubric_is_one_and_final_only_is_w_final() {
        let s = steps(&["step1: 3*4=12", "step2: 12+5=17", "step3: 17-2=15", "answer: 15"]);
        let cps = rubric(&s, 0.0);
        let full = "step1: 3*4=12,step2: 12+5=17,step3: 17-2=15,answer: 15";
        assert_eq!(outcome_reward(&cps, &mock_grades(&cps, full)), 1.0);
        assert_eq!(outcome_reward(&cps, &mock_grades(&cps, "answer: 15")), 0.25);
        let cps = rubric(&s, 0.7);
        assert!((outcome_reward(&cps, &mock_grades(&cps, "answer: 15")) - 0.7).abs() < 1e-12);
        assert_eq!(outcome_reward(&cps, &mock_grades(&cps, "answer: 14")), 0.0);
        // scores are clamped to [0, 1]
        let g = vec![Grade { score: 3.0, at: None }; 4];
        assert_eq!(outcome_reward(&cps, &g), 1.0);
    }

    #[test]
    fn adding_a_correct_step_never_lowers_the_reward() {
        let s = steps(&["step1: 3*4=12", "step2: 12+5=17", "step3: 17-2=15", "answer: 15"]);
        let cps = rubric(&s, 0.0);
        let lines = ["step1: 3*4=12", "step2: 12+5=17", "step3: 17-2=15"];
        // every subset of the correct steps, with a right or a wrong answer
        for mask in 0u32..8 {
            for ans in ["answer: 15", "answer: 9"] {
                let pick = |m: u32| -> String {
                    let mut v: Vec<&str> = (0..3).filter(|i| m >> i & 1 == 1).map(|i| lines[i]).collect();
                    v.push(ans);
                    v.join(",")
                };
                let base = outcome_reward(&cps, &mock_grades(&cps, &pick(mask)));
                for add in 0..3 {
                    let more = outcome_reward(&cps, &mock_grades(&cps, &pick(mask | 1 << add)));
                    assert!(more >= base, "{} -> {}: {base} > {more}", pick(mask), pick(mask | 1 << add));
                }
            }
        }
    }

    #[test]
    fn values_are_matched_as_step_results() {
        assert_eq!(step_value("step1: 3*4=12"), "12");
        assert_eq!(step_value("answer: 15"), "15");
        assert_eq!(step_value(" key idea "), "key idea");
        assert_eq!(find_value("3*4=12,", "12"), Some(6));
        assert_eq!(find_value("3*4= 12", "12"), Some(7));
        assert_eq!(find_value("3*4=123", "12"), None, "a longer number is not the value");
        assert_eq!(find_value("12+3=4", "12"), None, "an operand is not a result");
        assert_eq!(find_value("x=-8", "-8"), Some(4));
        assert_eq!(find_value("so the key idea", "key idea"), Some(15));
        assert_eq!(find_value("anything", ""), None);
    }

    #[test]
    fn process_rewards_sit_where_checkpoints_are_met_and_sum_to_the_outcome() {
        let s = steps(&["step1: 3*4=12", "step2: 12+5=17", "answer: 17"]);
        let cps = rubric(&s, 0.0);
        let resp = "step1: 3*4=12,step2: 12+5=16,answer: 17";
        let g = mock_grades(&cps, resp);
        assert_eq!(g.iter().map(|g| g.score).collect::<Vec<_>>(), vec![1.0, 0.0, 1.0]);
        // one token per byte
        let r = process_rewards(&cps, &g, resp.len(), |off| off - 1);
        let third = 1.0 / 3.0;
        assert!((r[12] - third).abs() < 1e-12, "after `=12`");
        assert!((r[resp.len() - 1] - third).abs() < 1e-12, "after `answer: 17`");
        assert_eq!(r.iter().filter(|&&x| x != 0.0).count(), 2);
        assert!((r.iter().sum::<f64>() - outcome_reward(&cps, &g)).abs() < 1e-12);
        // a checkpoint met at an unknown position lands on the last token
        let g = vec![Grade { score: 0.5, at: None }, Grade { score: 0.0, at: None }, Grade { score: 1.0, at: Some(0) }];
        let r = process_rewards(&cps, &g, 4, |off| off);
        assert!((r[3] - 0.5 * third).abs() < 1e-12 && (r[0] - third).abs() < 1e-12);
        assert!(process_rewards(&cps, &g, 0, |o| o).is_empty());
    }

    #[test]
    fn leak_guard() {
        let reference = "step1: 3*4=12,step2: 12+5=17,answer: 17";
        assert_eq!(leaked_substring("3*4+5=", reference, 20), None);
        let leaky = format!("3*4+5= hint: {}", &reference[..25]);
        assert_eq!(leaked_substring(&leaky, reference, 20), Some(&reference[..21]));
        // exactly 20 shared characters are allowed
        assert_eq!(leaked_substring(&reference[3..23], reference, 20), None);
        assert_eq!(leaked_substring("abc", "short", 20), None);
    }
}

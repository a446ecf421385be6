//! Multi-turn text environments behind one trait, for agents trained with multi-turn RL.
//!
//! An episode is a transcript: the problem's prompt holds the instruction and the first
//! observation; then the agent writes one action per line and the environment answers with an
//! observation line that starts with [`OBS_MARK`]. Only the agent's action tokens are sampled
//! (and carry loss); observation lines are inserted by the rollout. Because every environment is
//! deterministic given its problem, a transcript can be verified by replaying its action lines
//! ([`replay`]) — the same code judges RL rollouts, evaluation and SFT demonstrations.

use crate::Verdict;

/// First character of every observation line of a transcript.
pub const OBS_MARK: char = '@';

/// What one action did.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvStep {
    pub observation: String,
    /// Sub-goal reward event of this step (e.g. picked up the key), 0 if none.
    pub reward: f64,
    /// The episode is over (the goal reached).
    pub done: bool,
    /// The action was executable (an invalid one answers "Nothing happens.").
    pub valid: bool,
}

/// A seeded multi-turn environment, already reset to its problem's start state.
pub trait Environment: Send {
    fn step(&mut self, action: &str) -> EnvStep;
    /// The episode's outcome (high-level) reward so far, in [0, 1].
    fn outcome(&self) -> f64;
    fn success(&self) -> bool;
    /// Turns an episode may take.
    fn max_turns(&self) -> usize;
    /// Sub-goal reward events an episode can collect (the dense-reward normaliser of a lost
    /// episode, ≥ 1).
    fn max_events(&self) -> usize {
        1
    }
    /// ReBel's ground truth after `observations` (the start state's first, then each turn's): the
    /// facts they revealed and the task phase the last one implies. None: the environment has no
    /// belief tracker.
    fn belief_truth(&self, _observations: &[String]) -> Option<BeliefTruth> {
        None
    }
    /// VSC-RL: how many of the task's ordered subgoals the episode has completed so far. None:
    /// the environment does not decompose its goal.
    fn subgoal_progress(&self) -> Option<usize> {
        None
    }
}

/// What announces the current subgoal at the end of a line (the instruction's, or the
/// observation after a subgoal is completed): `… subgoal: open the box`.
pub const SUBGOAL_MARK: &str = " subgoal: ";

/// A text with every subgoal announcement removed (from the mark to the end of its line): the
/// context conditioned on the original goal only (VSC-RL's reference).
pub fn without_subgoals(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.find(SUBGOAL_MARK) {
            Some(i) => {
                let nl = if line.ends_with('\n') { "\n" } else { "" };
                format!("{}{nl}", &line[..i])
            }
            None => line.to_string(),
        })
        .collect()
}

/// What the observations revealed ([`Environment::belief_truth`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BeliefTruth {
    pub tracker: oxrl_core::shaping::rebel::Tracker,
    pub phase: String,
}

/// An action line split into its stated belief (`<belief>…</belief>` before the action, ReBel's
/// format; None without one) and the action the environment executes.
pub fn split_belief(line: &str) -> (Option<&str>, &str) {
    let l = line.trim();
    if let Some(rest) = l.strip_prefix("<belief>") {
        if let Some(end) = rest.find("</belief>") {
            let cut = "<belief>".len() + end + "</belief>".len();
            return (Some(&l[..cut]), l[cut..].trim());
        }
    }
    (None, l)
}

/// The start observation of a problem's prompt: its last observation line, without the mark.
pub fn first_observation(prompt: &str) -> Option<&str> {
    prompt.lines().rev().find_map(|l| l.trim().strip_prefix(OBS_MARK)).map(str::trim)
}

/// An observation as its transcript line.
pub fn observation_line(obs: &str) -> String {
    format!("{OBS_MARK}{obs}\n")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The executed action (the line without its belief).
    pub action: String,
    /// The belief stated before it (`<belief>…</belief>`), if any.
    pub belief: Option<String>,
    pub step: EnvStep,
}

/// A replayed episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub turns: Vec<Turn>,
    pub success: bool,
    pub outcome: f64,
}

/// The action lines of a transcript: every line that is not an observation (and not empty after
/// trimming), in order.
pub fn actions(transcript: &str) -> Vec<&str> {
    transcript.lines().filter(|l| !l.starts_with(OBS_MARK)).map(str::trim).filter(|l| !l.is_empty()).collect()
}

/// Replay a transcript's actions from the start state until the episode is done or its turns are
/// used up (later lines are ignored).
pub fn replay(env: &mut dyn Environment, transcript: &str) -> Trajectory {
    let mut turns = Vec::new();
    for a in actions(transcript) {
        if turns.len() >= env.max_turns() {
            break;
        }
        let (belief, action) = split_belief(a);
        let step = env.step(action);
        let done = step.done;
        turns.push(Turn { action: action.to_string(), belief: belief.map(String::from), step });
        if done {
            break;
        }
    }
    Trajectory { turns, success: env.success(), outcome: env.outcome() }
}

/// A scripted demonstration as a transcript: each action and the observation it gets (none
/// after the last), as the rollout would write them.
pub fn demonstration(env: &mut dyn Environment, actions: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in actions.iter().enumerate() {
        let s = env.step(a);
        out.push_str(a);
        out.push('\n');
        if i + 1 < actions.len() {
            out.push_str(&observation_line(&s.observation));
        }
    }
    out
}

/// An agent task's verdict on a completion, replayed in the problem's environment (`env`; None
/// when the problem's meta does not describe one).
pub fn verify_in(env: Option<Box<dyn Environment>>, completion: &str) -> Verdict {
    match env {
        Some(mut env) => verdict(&replay(env.as_mut(), completion)),
        None => Verdict::bad_format("the problem's meta does not describe an environment"),
    }
}

/// The verdict on a replayed episode: correct = the goal reached, reward = the outcome; the
/// format is ok when it took at least one action and every action was executable.
pub fn verdict(t: &Trajectory) -> Verdict {
    let format_ok = !t.turns.is_empty() && t.turns.iter().all(|x| x.step.valid);
    let invalid = t.turns.iter().filter(|x| !x.step.valid).count();
    Verdict {
        reward: t.outcome as f32,
        correct: t.success,
        format_ok,
        answer: Some(if t.success { "success".into() } else { "failure".into() }),
        detail: if t.success {
            String::new()
        } else {
            format!("not done after {} turns ({invalid} invalid)", t.turns.len())
        },
    }
}

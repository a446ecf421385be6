//! A one-lane road with a stopped car ahead — the spec's CPU stand-in for VLM-RL's contrasting-
//! language-goal reward ("POINT2D with an obstacle"; [`oxrl_core::shaping::clg`]).
//!
//! A point car drives along +x: state (x, y, heading ψ, speed v); action (steer, throttle) in
//! [−1, 1]²: ψ ← clip(ψ + 0.1·steer, ±π/2), v ← clip(v + 5·throttle·Δt, 0, 10) with Δt = 0.1 s,
//! then x += v·cos ψ·Δt, y += v·sin ψ·Δt. A stopped car blocks the lane 15–30 m ahead of the start
//! and drives off after 3–40 s (both drawn per episode; in about half the episodes it is still
//! there at the 200-step (20 s) limit). Touching it (|x − x_obs| < 1.5 m, |y| < 1 m) or leaving the
//! road (|y| > 3 m) ends the episode with the penalty −10. Success — driving right: no penalty, and
//! past the stopped car's position unless it blocked the lane to the end.
//!
//! The camera is a strip of 32 cells (0.5 m each) of the lane ahead of the car, with pixel levels
//! 0 (road), 0.5 (the stopped car), 1.0 (the car's braking zone — cells within its stopping
//! distance v²/(2·5) + 1 m) or 1.5 (the whole braking zone, when it reaches the stopped car: a
//! collision course). Observation (46 values):
//! y/3, sin ψ, cos ψ, v/10, the last 10 lateral offsets y (m, newest first), then the strip.
//!
//! The environment's own reward is VLM-RL's synthesis with the semantic score fixed at 1 — the
//! hand-designed baseline that always asks for the target speed (6 m/s): r = r_speed·f_center·f_angle
//! ·f_std with d_max 3 m, angle_max 90°, std_max 0.4 m; the penalty overrides it. SAC with
//! `sac.semantic_reward = "clg"` rewrites each transition's reward from the camera strip in
//! batches ([`Semantic`]).

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::Result;
use oxrl_core::shaping::clg::{self, Projection, Synthesis, VehicleState};
use rand::Rng as _;

const DT: f64 = 0.1;
const V_MAX: f64 = 10.0;
const ACCEL: f64 = 5.0;
const STEER: f64 = 0.1;
pub const V_TARGET: f64 = 6.0;
pub const PENALTY: f64 = -10.0;
const MAX_STEPS: usize = 200;
const HISTORY: usize = 10;
pub const CELLS: usize = 32;
const CELL: f64 = 0.5;
/// Offsets of the observation's parts.
const HIST_AT: usize = 4;
pub const STRIP_AT: usize = HIST_AT + HISTORY;
pub const OBS_DIM: usize = STRIP_AT + CELLS;

pub const POSITIVE_GOAL: &str = "the road is clear with no car accidents";
pub const NEGATIVE_GOAL: &str = "two cars have collided with each other on the road";

/// VLM-RL's synthesis constants scaled to this road.
pub fn synthesis() -> Synthesis {
    Synthesis { theta: 0.03, v_target: V_TARGET, d_max: 3.0, angle_max: 90.0, std_max: 0.4 }
}

pub struct Drive {
    core: Core,
    /// x, y, ψ, v
    car: [f64; 4],
    obstacle_x: f64,
    /// The step at which the stopped car drives off.
    clear_at: usize,
    history: [f64; HISTORY],
    passed: bool,
    /// The episode ended with the penalty.
    penalised: bool,
}

impl Drive {
    pub fn new(seed: u64) -> Self {
        Self {
            core: Core::new(seed),
            car: [0.0; 4],
            obstacle_x: 0.0,
            clear_at: 0,
            history: [0.0; HISTORY],
            passed: false,
            penalised: false,
        }
    }
    fn blocked(&self) -> bool {
        self.core.elapsed < self.clear_at
    }
    /// The camera strip of the lane ahead.
    fn strip(&self) -> [f32; CELLS] {
        let [x, y, _, v] = self.car;
        let stop = v * v / (2.0 * ACCEL) + 1.0;
        let in_lane = self.blocked() && y.abs() < 1.0;
        // on a collision course: the braking zone reaches the stopped car
        let zone = if in_lane && x + stop > self.obstacle_x - 1.5 { 1.5 } else { 1.0 };
        let mut s = [0f32; CELLS];
        for (k, c) in s.iter_mut().enumerate() {
            let (lo, hi) = (x + k as f64 * CELL, x + (k + 1) as f64 * CELL);
            if lo < x + stop {
                *c = zone;
            } else if in_lane && hi > self.obstacle_x - 1.5 && lo < self.obstacle_x + 1.5 {
                *c = 0.5;
            }
        }
        s
    }
    fn obs(&self) -> Vec<f32> {
        let [_, y, psi, v] = self.car;
        let mut o = vec![(y / 3.0) as f32, psi.sin() as f32, psi.cos() as f32, (v / V_MAX) as f32];
        o.extend(self.history.iter().map(|&h| h as f32));
        o.extend(self.strip());
        o
    }
}

/// The vehicle state VLM-RL's synthesis reads, from an observation.
pub fn vehicle_state(obs: &[f32]) -> VehicleState {
    VehicleState {
        speed: obs[3] as f64 * V_MAX,
        d_center: obs[0] as f64 * 3.0,
        angle: (obs[1] as f64).atan2(obs[2] as f64).to_degrees(),
        d_history: obs[HIST_AT..STRIP_AT].iter().map(|&v| v as f64).collect(),
    }
}

/// The camera strip of an observation.
pub fn frame(obs: &[f32]) -> &[f32] {
    &obs[STRIP_AT..]
}

/// The CLIP stand-in for this road: a fixed random projection (2048 wide, so its cosine noise,
/// ~1/√2048, stays below the strip's cosines) of the strip's pixel levels; the
/// positive goal text embeds as a strip that is all braking zone on clear road, the negative as one
/// that is all collision course (a frame whose stopping distance reaches the car aligns with it).
pub fn embedder(seed: u64) -> Projection {
    Projection::new(
        &[0.5, 1.0, 1.5],
        CELLS,
        2048,
        seed,
        &[(POSITIVE_GOAL, vec![1.0; CELLS]), (NEGATIVE_GOAL, vec![1.5; CELLS])],
    )
}

/// The semantic reward of a batch of transitions: r_CLG of each next observation's strip (one
/// batched embedding call), synthesised with its vehicle state; a negative environment reward (the
/// penalty) passes through.
pub struct Semantic {
    embed: Projection,
    pos: Vec<f32>,
    neg: Vec<f32>,
    cfg: Synthesis,
}

impl Semantic {
    pub fn new(seed: u64) -> Self {
        use clg::Embedder;
        let embed = embedder(seed);
        let (pos, neg) = (embed.embed_text(POSITIVE_GOAL), embed.embed_text(NEGATIVE_GOAL));
        Self { embed, pos, neg, cfg: synthesis() }
    }
    /// (synthesised rewards, r_CLG scores) of `next_obs` with the environment's rewards.
    pub fn rewards(&self, next_obs: &[Vec<f32>], env_rewards: &[f64]) -> (Vec<f64>, Vec<f64>) {
        use clg::Embedder;
        let frames: Vec<Vec<f32>> = next_obs.iter().map(|o| frame(o).to_vec()).collect();
        let scores: Vec<f64> = self
            .embed
            .embed_images(&frames)
            .iter()
            .map(|e| clg::clg_reward(e, &self.pos, &self.neg, self.cfg.theta))
            .collect();
        let rewards = next_obs
            .iter()
            .zip(env_rewards)
            .zip(&scores)
            .map(|((o, &r), &s)| clg::synthesize(s, &vehicle_state(o), r.min(0.0), &self.cfg))
            .collect();
        (rewards, scores)
    }
}

impl Env for Drive {
    fn name(&self) -> &'static str {
        "drive"
    }
    fn observation_space(&self) -> Space {
        let mut low = vec![-1.0f32, -1.0, -1.0, 0.0];
        let mut high = vec![1.0f32; 4];
        low.extend([-3.0f32; HISTORY]);
        high.extend([3.0f32; HISTORY]);
        low.extend([0.0f32; CELLS]);
        high.extend([1.5f32; CELLS]);
        Space::Box { low, high }
    }
    fn action_space(&self) -> Space {
        Space::Box { low: vec![-1.0; 2], high: vec![1.0; 2] }
    }
    fn max_steps(&self) -> usize {
        MAX_STEPS
    }
    fn reset(&mut self) -> Vec<f32> {
        self.core.elapsed = 0;
        self.passed = false;
        self.penalised = false;
        self.car = [0.0, 0.0, 0.0, V_TARGET];
        self.history = [0.0; HISTORY];
        self.obstacle_x = uniform(&mut self.core.rng, 15.0, 30.0);
        self.clear_at = self.core.rng.random_range(30..=400);
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.vector()?;
        anyhow::ensure!(a.len() == 2, "drive: action has {} values, expected 2", a.len());
        let (steer, throttle) = ((a[0] as f64).clamp(-1.0, 1.0), (a[1] as f64).clamp(-1.0, 1.0));
        let [x, y, psi, v] = self.car;
        let psi = (psi + STEER * steer).clamp(-std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2);
        let v = (v + ACCEL * throttle * DT).clamp(0.0, V_MAX);
        self.car = [x + v * psi.cos() * DT, y + v * psi.sin() * DT, psi, v];
        self.history.rotate_right(1);
        self.history[0] = self.car[1];
        let crashed = self.blocked() && (self.car[0] - self.obstacle_x).abs() < 1.5 && self.car[1].abs() < 1.0;
        let off_road = self.car[1].abs() > 3.0;
        self.passed |= !crashed && self.car[0] > self.obstacle_x + 1.5;
        let truncated = self.core.tick(MAX_STEPS);
        let obs = self.obs();
        let terminated = crashed || off_road;
        self.penalised = terminated;
        let reward = if terminated { PENALTY } else { clg::synthesize(1.0, &vehicle_state(&obs), 0.0, &synthesis()) };
        Ok(Step { obs, reward, terminated, truncated: truncated && !terminated })
    }
    fn success(&self) -> Option<bool> {
        Some(!self.penalised && (self.passed || self.blocked()))
    }
    fn save(&self) -> EnvState {
        let mut v = self.car.to_vec();
        v.extend([self.obstacle_x, self.clear_at as f64, self.penalised as u8 as f64]);
        v.extend(self.history);
        self.core.save_flagged(&v, self.passed)
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let (v, passed) = self.core.restore_flagged(state, 7 + HISTORY, "drive")?;
        self.car.copy_from_slice(&v[..4]);
        (self.obstacle_x, self.clear_at, self.penalised) = (v[4], v[5] as usize, v[6] != 0.0);
        self.history.copy_from_slice(&v[7..]);
        self.passed = passed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive with a fixed (steer, throttle) until the episode ends; (steps, last step).
    fn drive(e: &mut Drive, a: [f32; 2]) -> (usize, Step) {
        let mut n = 0;
        loop {
            let s = e.step(&Action::Continuous(a.to_vec())).unwrap();
            n += 1;
            if s.terminated || s.truncated {
                return (n, s);
            }
        }
    }

    #[test]
    fn cruising_hits_the_stopped_car_and_waiting_passes_it_or_waits_it_out() {
        let (mut passed, mut waited) = (0, 0);
        for seed in 0..12 {
            let mut e = Drive::new(seed);
            e.reset();
            let (n, s) = drive(&mut e, [0.0, 0.0]);
            // 6 m/s from x = 0 reaches x_obs − 1.5 (13.5..28.5 m) within 23..48 steps, before it leaves
            assert!(s.terminated && s.reward == PENALTY && (23..=48).contains(&n), "{n} {s:?}");
            assert_eq!(e.success(), Some(false));
            // brake to a stop, wait while the lane is blocked, then go: never penalised, a success
            let mut e = Drive::new(seed);
            e.reset();
            let mut rewards = Vec::new();
            loop {
                let go = !e.blocked();
                let s = e.step(&Action::Continuous(vec![0.0, if go { 1.0 } else { -1.0 }])).unwrap();
                rewards.push(s.reward);
                assert!(!s.terminated);
                if s.truncated {
                    break;
                }
            }
            assert_eq!(e.success(), Some(true));
            (passed, waited) = (passed + e.passed as usize, waited + !e.passed as usize);
            // stopped on a straight lane: r_speed = 0; cruising at 6 m/s: 1
            assert_eq!(rewards[25], 0.0);
            assert!(rewards.iter().all(|r| (0.0..=1.0).contains(r)));
        }
        assert!(passed > 0 && waited > 0, "{passed} {waited}");
    }

    #[test]
    fn the_strip_shows_the_braking_zone_and_the_semantic_reward_asks_to_stop_near_the_car() {
        let mut e = Drive::new(1);
        e.reset();
        e.obstacle_x = 20.0;
        // far: zone (6²/10 + 1 = 4.6 m → 10 cells) on clear road; the car's cells at 18.5..21.5 m
        e.car = [0.0, 0.0, 0.0, 6.0];
        let far = e.obs();
        let strip = frame(&far);
        assert_eq!(strip.iter().filter(|&&c| c == 1.0).count(), 10);
        assert_eq!(strip.iter().filter(|&&c| c == 0.5).count(), 0, "the car is beyond the strip's 16 m");
        // near: the zone reaches the car
        e.car = [14.0, 0.0, 0.0, 6.0];
        let near = e.obs();
        assert!(frame(&near).contains(&1.5), "{:?}", frame(&near));
        let sem = Semantic::new(0);
        let (r, scores) = sem.rewards(&[far.clone(), near.clone()], &[1.0, 1.0]);
        assert!(scores[0] > 0.9 && scores[1] < 0.1, "{scores:?}");
        // cruising is right on a clear road and wrong in danger, where stopping would score 1
        assert!((r[0] - 1.0).abs() < 1e-6 && r[1] < 0.1, "{r:?}");
        e.car = [14.0, 0.0, 0.0, 0.0];
        let (r, _) = sem.rewards(&[e.obs()], &[0.0]);
        assert!(r[0] < 0.05, "stopped with the zone (1 m) short of the car: the road looks clear, so v_des = 6: {r:?}");
        // the penalty passes through
        assert_eq!(sem.rewards(&[near], &[PENALTY]).0[0], PENALTY);
    }

    #[test]
    fn state_round_trips() {
        let mut e = Drive::new(5);
        e.reset();
        e.step(&Action::Continuous(vec![0.3, 0.2])).unwrap();
        let saved = e.save();
        let a = e.step(&Action::Continuous(vec![-0.5, 0.9])).unwrap();
        e.restore(&saved).unwrap();
        assert_eq!(e.step(&Action::Continuous(vec![-0.5, 0.9])).unwrap(), a);
        assert_eq!(vehicle_state(&a.obs).d_history.len(), HISTORY);
    }
}

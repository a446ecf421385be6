//! Clipped value loss for PPO's critic — "Proximal Policy Optimization Algorithms" (2017), as in
//! verl compute_value_loss: ½·max((V − R)², (V_old + clip(V − V_old, −ε_v, ε_v) − R)²), per token.

use anyhow::Result;
use candle_core::Tensor;

pub fn clipped_value_loss(values: &Tensor, values_old: &Tensor, returns: &Tensor, clip: f64) -> Result<Tensor> {
    let unclipped = (values - returns)?.sqr()?;
    let v_clip = (values_old + (values - values_old)?.clamp(-clip, clip)?)?;
    let clipped = (v_clip - returns)?.sqr()?;
    Ok((unclipped.maximum(&clipped)? * 0.5)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn clipping() {
        let d = Device::Cpu;
        let v = Tensor::new(&[[1.0f64, 0.2]], &d).unwrap();
        let old = Tensor::new(&[[0.0f64, 0.0]], &d).unwrap();
        let r = Tensor::new(&[[2.0f64, 0.0]], &d).unwrap();
        let l = clipped_value_loss(&v, &old, &r, 0.5).unwrap().to_vec2::<f64>().unwrap();
        // token 0: unclipped (1−2)² = 1, clipped (0.5−2)² = 2.25 → max/2 = 1.125
        assert!((l[0][0] - 1.125).abs() < 1e-12);
        assert!((l[0][1] - 0.02).abs() < 1e-12);
    }
}

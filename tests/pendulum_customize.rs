//! End to end with continuous actions: Pendulum "save energy" (add-on `-0.05·torque²`, stated in
//! models/pendulum/manifest.toml) over the SAC prior. The customized policy must spend at least
//! 5 % less mean squared torque than the prior (measured: 12 %) while its time upright
//! (cos θ > 0.9) stays within 10 % of the prior's, within 10 000 environment steps.

use std::path::Path;

use resq::customize::{self, Options};
use resq::Bundle;

#[test]
fn sampled_residual_saves_torque_and_keeps_the_pendulum_up() {
    let out = tempfile::tempdir().unwrap();
    let b = Bundle::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/pendulum")).unwrap();
    let opts = Options { fresh: true, eval_episodes: Some(20), ..Options::new(10_000, 0, out.path()) };
    let o = customize::run(b, &opts).unwrap();
    let m = |e: &resq::evaluate::PolicyEval, k: &str| e.metrics.iter().find(|(n, _)| n == k).unwrap().1;
    let (tp, tc) = (m(&o.prior, "mean_torque_sq"), m(&o.customized, "mean_torque_sq"));
    let (up, uc) = (m(&o.prior, "upright_fraction"), m(&o.customized, "upright_fraction"));
    eprintln!(
        "torque²: prior {tp:.4} customized {tc:.4} ({:+.1} %); upright: prior {up:.3} customized {uc:.3}",
        100.0 * (tc - tp) / tp
    );
    assert!(tc <= 0.95 * tp, "customized torque² {tc} vs prior {tp}");
    assert!(uc >= 0.9 * up, "upright {uc} vs prior {up}");
    assert!(!o.diverged);
}

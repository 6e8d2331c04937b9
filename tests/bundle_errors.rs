//! Bad bundles: each gets its own clear error naming the file, the field and the fix — never a
//! panic. Bundles are built in temporary folders from the real CartPole manifest with one defect
//! each; the prior is a small real ONNX file (tests/data/onnx) so the checks do not depend on
//! which CartPole prior is committed.

use std::path::{Path, PathBuf};

use resq::{Bundle, BundleError};

const MANIFEST: &str = include_str!("../models/cartpole/manifest.toml");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx").join(name)
}

/// A bundle folder with `manifest` and the given prior file (or none).
fn bundle(manifest: Option<&str>, prior: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(m) = manifest {
        std::fs::write(dir.path().join("manifest.toml"), m).unwrap();
    }
    if let Some(p) = prior {
        std::fs::write(dir.path().join("prior.onnx"), p).unwrap();
    }
    dir
}

fn good_prior() -> Vec<u8> {
    std::fs::read(data("dense_matmul_tanh.onnx")).unwrap()
}

fn replace(from: &str, to: &str) -> String {
    assert!(MANIFEST.contains(from), "the test's anchor `{from}` is not in the manifest");
    MANIFEST.replacen(from, to, 1)
}

fn load_err(manifest: Option<&str>, prior: Option<&[u8]>) -> (BundleError, tempfile::TempDir) {
    let dir = bundle(manifest, prior);
    match Bundle::load(dir.path()) {
        Ok(_) => panic!("the bundle loaded, but it is defective"),
        Err(e) => (e, dir),
    }
}

#[test]
fn the_good_bundle_loads() {
    let dir = bundle(Some(MANIFEST), Some(&good_prior()));
    let b = Bundle::load(dir.path()).expect("a valid bundle loads");
    assert!(b.prior.is_realtime_safe());
}

struct Case {
    what: &'static str,
    manifest: Option<String>,
    prior: Option<Vec<u8>>,
    /// (field the error must name, text its message must contain)
    field: Option<&'static str>,
    says: &'static str,
    file: &'static str,
}

fn cases() -> Vec<Case> {
    let m = |s: String| Some(s);
    let p = Some(good_prior());
    vec![
        Case {
            what: "missing manifest",
            manifest: None,
            prior: p.clone(),
            field: None,
            says: "cannot read the manifest",
            file: "manifest.toml",
        },
        Case {
            what: "missing prior",
            manifest: m(MANIFEST.into()),
            prior: None,
            field: Some("prior.file"),
            says: "cannot read the prior's ONNX file",
            file: "prior.onnx",
        },
        Case {
            what: "not an ONNX file",
            manifest: m(MANIFEST.into()),
            prior: Some(b"PK\x03\x04 this is a zip, not a model".to_vec()),
            field: Some("prior.file"),
            says: "not an ONNX model",
            file: "prior.onnx",
        },
        Case {
            what: "wrong input width",
            manifest: m(replace("[[observation]]\nsignal = \"theta_dot\"\nscale = 3.5\n", "")),
            prior: p.clone(),
            field: Some("observation"),
            says: "has shape [?, 4]; the manifest lists 3 observation signal(s)",
            file: "prior.onnx",
        },
        Case {
            what: "wrong output width",
            manifest: m(replace("values = [-10.0, 10.0]", "values = [-10.0, 0.0, 10.0]")
                .replace("labels = [\"left\", \"right\"]", "")),
            prior: p.clone(),
            field: Some("action"),
            says: "for 3 action(s) a discrete_q prior outputs [batch, 3]",
            file: "prior.onnx",
        },
        Case {
            what: "unsupported op",
            manifest: m(MANIFEST.into()),
            prior: Some(std::fs::read(data("unsupported_op.onnx")).unwrap()),
            field: Some("prior.file"),
            says: "unsupported operator(s) `FrobnicateQ`",
            file: "prior.onnx",
        },
        Case {
            what: "unknown signal in a reward expression",
            manifest: m(replace("expr = \"-abs(x)/2.4\"", "expr = \"-abs(y)/2.4\"")),
            prior: p.clone(),
            field: Some("addon.term[0].expr"),
            says: "unknown name `y`",
            file: "manifest.toml",
        },
        Case {
            what: "syntax error in an expression",
            manifest: m(replace("expr = \"-abs(x)/2.4\"", "expr = \"-abs(x/2.4\"")),
            prior: p.clone(),
            field: Some("addon.term[0].expr"),
            says: "expected `)`",
            file: "manifest.toml",
        },
        Case {
            what: "negative temperature",
            manifest: m(replace("alpha = 1.0 ", "alpha = -1.0 ")),
            prior: p.clone(),
            field: Some("residual.alpha"),
            says: "found -1, expected a positive number",
            file: "manifest.toml",
        },
        Case {
            what: "negative prior temperature",
            manifest: m(replace("temperature = 1.0", "temperature = -0.5")),
            prior: p.clone(),
            field: Some("prior.temperature"),
            says: "found -0.5",
            file: "manifest.toml",
        },
        Case {
            what: "a temperature that is neither a number nor auto",
            manifest: m(replace("temperature = 1.0", "temperature = \"warm\"")),
            prior: p.clone(),
            field: Some("prior.temperature"),
            says: "`warm` is neither a number nor \"auto\"",
            file: "manifest.toml",
        },
        Case {
            what: "zero replay capacity",
            manifest: m(replace("replay_capacity = 50000", "replay_capacity = 0")),
            prior: p.clone(),
            field: Some("learning.replay_capacity"),
            says: "found 0, expected at least 1",
            file: "manifest.toml",
        },
        Case {
            what: "unknown prior kind",
            manifest: m(replace("kind = \"discrete_q\"", "kind = \"gaussian_q\"")),
            prior: p.clone(),
            field: Some("prior.kind"),
            says: "unknown value `gaussian_q`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown exploration mode",
            manifest: m(replace("mode = \"sample\"", "mode = \"random\"")),
            prior: p.clone(),
            field: Some("exploration.mode"),
            says: "unknown value `random`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown evaluation policy",
            manifest: m(replace("policy = \"greedy\"", "policy = \"argmax\"")),
            prior: p.clone(),
            field: Some("evaluation.policy"),
            says: "unknown value `argmax`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown residual activation",
            manifest: m(replace("activation = \"relu\"", "activation = \"gelu\"")),
            prior: p.clone(),
            field: Some("residual.activation"),
            says: "unknown value `gelu`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown traces",
            manifest: m(replace("n_step = 10", "n_step = 10\ntraces = \"tree-backup\"")),
            prior: p.clone(),
            field: Some("learning.traces"),
            says: "unknown value `tree-backup`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown residual method",
            manifest: m(replace("activation = \"relu\"", "activation = \"relu\"\nmethod = \"ppo\"")),
            prior: p.clone(),
            field: Some("residual.method"),
            says: "unknown value `ppo`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown episode reset",
            manifest: m(replace("success = \"time_limit\"", "success = \"time_limit\"\nreset = \"robot\"")),
            prior: p.clone(),
            field: Some("episode.reset"),
            says: "unknown value `robot`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown metric reduction",
            manifest: m(replace("reduce = \"mean\"", "reduce = \"median\"")),
            prior: p.clone(),
            field: Some("evaluation.metric.reduce"),
            says: "unknown value `median`",
            file: "manifest.toml",
        },
        Case {
            what: "residual policy gradient with greedy exploration",
            manifest: m(replace("mode = \"sample\"", "mode = \"greedy\"").replacen(
                "activation = \"relu\"",
                "activation = \"relu\"\nmethod = \"rpg\"",
                1,
            )),
            prior: p.clone(),
            field: Some("exploration.mode"),
            says: "a greedy robot draws nothing",
            file: "manifest.toml",
        },
        Case {
            what: "misspelt field",
            manifest: m(replace("omega = 1.0", "omgea = 1.0")),
            prior: p.clone(),
            field: Some("residual.omgea"),
            says: "unknown field",
            file: "manifest.toml",
        },
        Case {
            what: "unknown observation signal",
            manifest: m(replace("signal = \"x_dot\"", "signal = \"xdot\"")),
            prior: p.clone(),
            field: Some("observation[1].signal"),
            says: "unknown signal `xdot`",
            file: "manifest.toml",
        },
        Case {
            what: "unknown plant",
            manifest: m(replace("plant = \"cartpole\"", "plant = \"segway\"")),
            prior: p.clone(),
            field: Some("sim.plant"),
            says: "unknown plant `segway`",
            file: "manifest.toml",
        },
        Case {
            what: "TOML syntax error",
            manifest: m(replace("gamma = 0.99", "gamma = = 0.99")),
            prior: p.clone(),
            field: Some("residual.gamma"),
            says: "invalid manifest",
            file: "manifest.toml",
        },
        Case {
            what: "batch larger than replay",
            manifest: m(replace("batch = 64", "batch = 100000")),
            prior: p.clone(),
            field: Some("learning.batch"),
            says: "exceeds replay_capacity",
            file: "manifest.toml",
        },
        Case {
            what: "temperature on a logits prior",
            manifest: m(replace("kind = \"discrete_q\"", "kind = \"discrete_logits\"")),
            prior: p.clone(),
            field: Some("prior.temperature"),
            says: "has none",
            file: "manifest.toml",
        },
        Case {
            what: "a continuous method on discrete actions",
            manifest: m(replace("[residual]\n", "[residual]\nmethod = \"sac\"\n")),
            prior: p.clone(),
            field: Some("residual.method"),
            says: "is for continuous actions",
            file: "manifest.toml",
        },
        Case {
            what: "exploration std on a prior that has its own spread",
            manifest: m(replace("temperature = 1.0 ", "temperature = 1.0\nexploration_std = 0.3 ")),
            prior: p.clone(),
            field: Some("prior.exploration_std"),
            says: "which draws its own spread",
            file: "manifest.toml",
        },
        Case {
            what: "deterministic prior without an exploration std",
            manifest: m(replace("kind = \"discrete_q\"", "kind = \"deterministic\"")
                .replace("temperature = 1.0 ", "")),
            prior: p.clone(),
            field: Some("prior.exploration_std"),
            says: "missing for kind `deterministic`",
            file: "manifest.toml",
        },
        Case {
            what: "action outside the command's limits",
            manifest: m(replace("values = [-10.0, 10.0]", "values = [-50.0, 10.0]")),
            prior: p.clone(),
            field: Some("action.values[0]"),
            says: "is outside its limits [-10, 10]",
            file: "manifest.toml",
        },
        Case {
            what: "a command vector of the wrong length",
            manifest: m(replace("values = [-10.0, 10.0]", "table = [[-10.0], [10.0, 0.0]]")),
            prior: p.clone(),
            field: Some("action.table[1]"),
            says: "a command vector of length 2 for a robot with 1 commands (force)",
            file: "manifest.toml",
        },
        Case {
            what: "a simulated plant whose signals differ from [robot]",
            manifest: m(replace("name = \"theta_dot\"", "name = \"omega\"")),
            prior: p.clone(),
            field: Some("sim.plant"),
            says: "[robot] declares [x, x_dot, theta, omega]",
            file: "manifest.toml",
        },
        Case {
            what: "a termination over a signal the robot does not have",
            manifest: m(replace(
                "success = \"time_limit\"",
                "success = \"time_limit\"\nterminate = \"abs(phi) > 1\"",
            )),
            prior: p.clone(),
            field: Some("episode.terminate"),
            says: "phi",
            file: "manifest.toml",
        },
        Case {
            what: "episodes that never end",
            manifest: m(replace("max_steps = 500 ", "# no limit ")),
            prior: p.clone(),
            field: Some("episode.max_steps"),
            says: "episodes have no end",
            file: "manifest.toml",
        },
        Case {
            what: "a wire name that expressions cannot use, without an alias",
            manifest: m(replace("name = \"x_dot\"", "name = \"x-dot\"")),
            prior: p.clone(),
            field: Some("robot.signal[1].name"),
            says: "`x-dot` is not a name expressions can use",
            file: "manifest.toml",
        },
        Case {
            what: "a signal named twice",
            manifest: m(replace("name = \"x_dot\"", "name = \"x\"")),
            prior: p.clone(),
            field: Some("robot.signal[1].name"),
            says: "`x` is used twice or is reserved",
            file: "manifest.toml",
        },
        Case {
            what: "a failure guard that would always or never trip",
            manifest: m(replace(
                "tick_deadline_ms = 50.0",
                "tick_deadline_ms = 50.0\nguard_false_alarm = 1.5",
            )),
            prior: p.clone(),
            field: Some("safety.guard_false_alarm"),
            says: "found 1.5, expected a probability in (0, 1)",
            file: "manifest.toml",
        },
        Case {
            what: "a prior failure rate that is no rate",
            manifest: m(replace(
                "tick_deadline_ms = 50.0",
                "tick_deadline_ms = 50.0\nprior_failure_rate = 1.0",
            )),
            prior: p.clone(),
            field: Some("safety.prior_failure_rate"),
            says: "expected a rate in [0, 1)",
            file: "manifest.toml",
        },
        Case {
            what: "a signal on a ROS 2 topic without [ros2]",
            manifest: m(replace("name = \"x\"\n", "name = \"x\"\ntopic = \"/joint_states\"\nfield = \"position[cart]\"\n")),
            prior: p.clone(),
            field: Some("robot.signal.topic"),
            says: "signal `x` names a ROS 2 topic or field, and the manifest has no `[ros2]`",
            file: "manifest.toml",
        },
        Case {
            what: "a field a JointState does not have",
            manifest: m(replace("name = \"x\"\n", "name = \"x\"\ntopic = \"/joint_states\"\nfield = \"angle[cart]\"\n")
                .replace("name = \"x_dot\"\n", "name = \"x_dot\"\ntopic = \"/joint_states\"\nfield = \"velocity[cart]\"\n")
                .replace("name = \"theta\"\n", "name = \"theta\"\ntopic = \"/joint_states\"\nfield = \"position[pole]\"\n")
                .replace("name = \"theta_dot\"\n", "name = \"theta_dot\"\ntopic = \"/joint_states\"\nfield = \"velocity[pole]\"\n")
                + "\n[ros2]\nclock = \"/joint_states\"\ncommand_topic = \"/cmd\"\ncommand_type = \"std_msgs/msg/Float64MultiArray\"\n[[ros2.topic]]\nname = \"/joint_states\"\ntype = \"sensor_msgs/msg/JointState\"\n"),
            prior: p.clone(),
            field: Some("robot.signal.field"),
            says: "signal `x`: `angle[cart]` is not a field of `sensor_msgs/msg/JointState`",
            file: "manifest.toml",
        },
        Case {
            what: "two clocks",
            manifest: m(replace("name = \"x\"\n", "name = \"x\"\ntopic = \"/joint_states\"\nfield = \"position[cart]\"\n")
                .replace("name = \"x_dot\"\n", "name = \"x_dot\"\ntopic = \"/joint_states\"\nfield = \"velocity[cart]\"\n")
                .replace("name = \"theta\"\n", "name = \"theta\"\ntopic = \"/joint_states\"\nfield = \"position[pole]\"\n")
                .replace("name = \"theta_dot\"\n", "name = \"theta_dot\"\ntopic = \"/joint_states\"\nfield = \"velocity[pole]\"\n")
                + "\n[ros2]\nclock = \"/joint_states\"\nclock_period_ms = 20\ncommand_topic = \"/cmd\"\ncommand_type = \"std_msgs/msg/Float64MultiArray\"\n[[ros2.topic]]\nname = \"/joint_states\"\ntype = \"sensor_msgs/msg/JointState\"\n"),
            prior: p.clone(),
            field: Some("ros2.clock"),
            says: "give one clock: `clock` (a topic whose every message is a tick) or `clock_period_ms`",
            file: "manifest.toml",
        },
        Case {
            what: "a ROS 2 transport without [ros2]",
            manifest: m(replace("[robot]\n", "[robot]\ntransport = \"ros2\"\n")),
            prior: p.clone(),
            field: Some("robot.transport"),
            says: "`transport = \"ros2\"` and the manifest has no `[ros2]`",
            file: "manifest.toml",
        },
        Case {
            what: "a planning tree too large",
            manifest: m(MANIFEST.to_string() + "\n[plan]\ndepth = 40\n"),
            prior: p.clone(),
            field: Some("plan.depth"),
            says: "a tree over 2 actions to depth 40 has more than 65 536 nodes",
            file: "manifest.toml",
        },
        Case {
            what: "an offline support that is no share",
            manifest: m(replace("[learning]\n", "[learning]\noffline_support = 1.5\n")),
            prior: p.clone(),
            field: Some("learning.offline_support"),
            says: "found 1.5, expected a share",
            file: "manifest.toml",
        },
        Case {
            what: "a safe command outside the limits",
            manifest: m(replace("safe = 0.0 ", "safe = 12.0 ")),
            prior: p,
            field: Some("robot.command[0].safe"),
            says: "the safe command 12 of `force` is outside [-10, 10]",
            file: "manifest.toml",
        },
    ]
}

#[test]
fn each_bad_bundle_gets_its_own_clear_error() {
    let mut messages = Vec::new();
    for c in cases() {
        let result = std::panic::catch_unwind(|| load_err(c.manifest.as_deref(), c.prior.as_deref()));
        let (e, _dir) = result.unwrap_or_else(|_| panic!("{}: loading panicked", c.what));
        let text = e.to_string();
        assert!(text.contains(c.says), "{}: message does not say `{}`:\n{text}", c.what, c.says);
        assert_eq!(
            e.file.file_name().and_then(|f| f.to_str()),
            Some(c.file),
            "{}: wrong file in\n{text}",
            c.what
        );
        if let Some(field) = c.field {
            assert_eq!(e.field.as_deref(), Some(field), "{}: wrong field in\n{text}", c.what);
        }
        assert!(!e.fix.is_empty(), "{}: no fix offered", c.what);
        messages.push(e.problem.clone());
    }
    let n = messages.len();
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), n, "two different defects gave the same message");
    assert!(n >= 10);
}

/// A bad word given with `--set` is named by its field too (the overridden manifest is parsed
/// again from text), and the message says the value came from the command line.
#[test]
fn a_bad_override_names_its_field() {
    let dir = bundle(Some(MANIFEST), Some(&good_prior()));
    let e = match Bundle::load_with(dir.path(), &["exploration.mode=\"random\"".to_string()]) {
        Ok(_) => panic!("`random` is no exploration mode"),
        Err(e) => e,
    };
    assert_eq!(e.field.as_deref(), Some("exploration.mode"), "{e}");
    assert!(e.problem.contains("unknown value `random`") && e.problem.contains("--set"), "{e}");
    assert!(e.fix.contains("`sample`"), "{e}");
}

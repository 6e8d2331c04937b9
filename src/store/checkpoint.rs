//! Checkpoints of the learned residual, as safetensors files (readable from Python with
//! `safetensors.numpy.load_file`), written atomically: a temporary file in the same folder,
//! fsync, rename over the old checkpoint, fsync of the folder. A power cut leaves either the old
//! or the new checkpoint, never a torn one.
//!
//! Tensors: `online.{l}.w|b`, `target.{l}.w|b`, `adam_m.{l}.w|b`, `adam_v.{l}.w|b` for each layer
//! `l`; a learner's further networks by name (residual SAC: `critic2.*`, `critic2_target.*`,
//! `actor.*`; RPG: `value.*`), with `<name>.adam_m.*`, `<name>.adam_v.*`; the training history
//! (`history.*`); a learner's further state (`state.*`; RPG: its rollout phase).
//! Metadata: format, manifest hash, counters. The replay ring is saved too (`replay.*`), so a
//! resumed run learns on at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::algo::core::{LearnerCore, ResidualLearner};
use crate::error::Fixable;
use crate::nn::{Grads, Mlp};

pub const FORMAT: &str = "resq-residual-v2";

/// What training produced so far, per finished episode.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Environment step at which each training episode ended.
    pub episode_end_step: Vec<f64>,
    /// Mean add-on reward per step of each training episode.
    pub episode_addon_per_step: Vec<f32>,
    pub episode_length: Vec<f32>,
    /// 1 if the training episode succeeded by `[episode] success`, else 0 (empty in checkpoints
    /// written before it was kept).
    pub episode_success: Vec<f32>,
}

impl History {
    /// Training episodes judged by `[episode] success` that failed.
    pub fn episodes_failed(&self) -> usize {
        self.episode_success.iter().filter(|s| **s == 0.0).count()
    }

    /// The share of judged training episodes that failed (0 when none was judged).
    pub fn failure_rate(&self) -> f64 {
        self.episodes_failed() as f64 / self.episode_success.len().max(1) as f64
    }
}

/// Counters restored with the weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub env_steps: u64,
    pub history: History,
    /// The prior's temperature as calibrated (`[prior] temperature = "auto"`), so that a resumed
    /// run acts and learns at the same one.
    pub prior_temperature: Option<f32>,
    /// The prior's own whole episodes the failure guard measured its rate on, and how many
    /// failed, so that a resumed run compares with the same baseline.
    pub prior_episodes: Option<(u32, u32)>,
    /// The trade-off's multiplier on ω' and α̂ (`session::trade_off`), so that a resumed run,
    /// `resq export` and `resq run` act as the residual learned.
    pub weight_scale: Option<f32>,
}

/// FNV-1a 64 of the manifest text: a checkpoint is only resumed by the bundle that wrote it.
pub fn manifest_hash(text: &str) -> String {
    fnv1a64(text.as_bytes())
}

/// FNV-1a 64 of `bytes`, in 16 hex digits (an identity, not a security check).
pub fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

type Params<'a> = (Vec<&'a Array2<f32>>, Vec<&'a Array1<f32>>);

fn of_net(m: &Mlp) -> Params<'_> {
    (m.layers.iter().map(|l| &l.w).collect(), m.layers.iter().map(|l| &l.b).collect())
}

fn of_grads(g: &Grads) -> Params<'_> {
    (g.w.iter().collect(), g.b.iter().collect())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `learner` and `progress` to `path` atomically.
pub fn save(
    path: &Path,
    learner_all: &dyn ResidualLearner,
    progress: &Progress,
    manifest_text: &str,
) -> Result<()> {
    write_atomically(path, &encode(learner_all, progress, manifest_text)?)
}

/// The checkpoint file's bytes (memory only; [`write_atomically`] or a [`Writer`] puts them on
/// disk).
pub fn encode(
    learner_all: &dyn ResidualLearner,
    progress: &Progress,
    manifest_text: &str,
) -> Result<Vec<u8>> {
    let learner = learner_all.core();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add_net = |prefix: &str, w: &[&Array2<f32>], b: &[&Array1<f32>]| {
        for (l, (w, b)) in w.iter().zip(b).enumerate() {
            owned.push((
                format!("{prefix}.{l}.w"),
                Dtype::F32,
                w.shape().to_vec(),
                f32_bytes(w.as_slice().expect("standard")),
            ));
            owned.push((
                format!("{prefix}.{l}.b"),
                Dtype::F32,
                b.shape().to_vec(),
                f32_bytes(b.as_slice().expect("contiguous")),
            ));
        }
    };
    let (w, b) = of_net(&learner.online);
    add_net("online", &w, &b);
    let (w, b) = of_net(&learner.target);
    add_net("target", &w, &b);
    let (w, b) = of_grads(&learner.adam.m);
    add_net("adam_m", &w, &b);
    let (w, b) = of_grads(&learner.adam.v);
    add_net("adam_v", &w, &b);
    let mut extra_meta = Vec::new();
    for extra in learner_all.extra_nets() {
        let (w, b) = of_net(extra.net);
        add_net(extra.name, &w, &b);
        if let Some(adam) = extra.adam {
            let (w, b) = of_grads(&adam.m);
            add_net(&format!("{}.adam_m", extra.name), &w, &b);
            let (w, b) = of_grads(&adam.v);
            add_net(&format!("{}.adam_v", extra.name), &w, &b);
            extra_meta.push((format!("{}.adam_t", extra.name), adam.t.to_string()));
        }
    }
    let h = &progress.history;
    owned.push((
        "history.episode_end_step".into(),
        Dtype::F64,
        vec![h.episode_end_step.len()],
        f64_bytes(&h.episode_end_step),
    ));
    owned.push((
        "history.episode_addon_per_step".into(),
        Dtype::F32,
        vec![h.episode_addon_per_step.len()],
        f32_bytes(&h.episode_addon_per_step),
    ));
    owned.push((
        "history.episode_length".into(),
        Dtype::F32,
        vec![h.episode_length.len()],
        f32_bytes(&h.episode_length),
    ));
    owned.push((
        "history.episode_success".into(),
        Dtype::F32,
        vec![h.episode_success.len()],
        f32_bytes(&h.episode_success),
    ));
    // The replay ring, so a resumed run learns on at once (no second warm-up).
    let r = &learner.replay;
    let flags = |v: &[bool]| v.iter().map(|b| *b as u8).collect::<Vec<u8>>();
    let ring: [(&str, Dtype, Vec<usize>, Vec<u8>); 14] = [
        ("replay.obs", Dtype::F32, vec![r.capacity, r.n_obs], f32_bytes(&r.obs)),
        ("replay.next_obs", Dtype::F32, vec![r.capacity, r.n_obs], f32_bytes(&r.next_obs)),
        ("replay.next_logp0", Dtype::F32, vec![r.capacity, r.n_actions], f32_bytes(&r.next_logp0)),
        (
            "replay.action",
            Dtype::U32,
            vec![r.capacity],
            r.action.iter().flat_map(|a| a.to_le_bytes()).collect(),
        ),
        ("replay.reward", Dtype::F32, vec![r.capacity], f32_bytes(&r.reward)),
        ("replay.logp0_taken", Dtype::F32, vec![r.capacity], f32_bytes(&r.logp0_taken)),
        ("replay.logpi_taken", Dtype::F32, vec![r.capacity], f32_bytes(&r.logpi_taken)),
        ("replay.terminal", Dtype::U8, vec![r.capacity], flags(&r.terminal)),
        ("replay.episode_end", Dtype::U8, vec![r.capacity], flags(&r.episode_end)),
        ("replay.action_values", Dtype::F32, vec![r.capacity, r.act_dim], f32_bytes(&r.action_values)),
        ("replay.pre_actions", Dtype::F32, vec![r.capacity, r.act_dim], f32_bytes(&r.pre_actions)),
        ("replay.next_candidates", Dtype::F32, vec![r.capacity, r.cand_width], f32_bytes(&r.next_candidates)),
        ("replay.prior_params", Dtype::F32, vec![r.capacity, r.param_width], f32_bytes(&r.prior_params)),
        (
            "replay.next_prior_params",
            Dtype::F32,
            vec![r.capacity, r.param_width],
            f32_bytes(&r.next_prior_params),
        ),
    ];
    for (name, dtype, shape, bytes) in ring {
        owned.push((name.to_string(), dtype, shape, bytes));
    }
    // Entries learned from records keep which actions the records supported at their states,
    // so that learning on from them (online) keeps the constraint there.
    if let Some(sup) = &r.support {
        let mask = sup.mask.iter().flat_map(|m| m.to_le_bytes()).collect();
        owned.push(("replay.support_mask".into(), Dtype::U64, vec![r.capacity], mask));
        owned.push((
            "replay.support_logp0".into(),
            Dtype::F32,
            vec![r.capacity, r.n_actions],
            f32_bytes(&sup.logp0),
        ));
    }
    for (name, v) in learner_all.extra_state() {
        owned.push((format!("state.{name}"), Dtype::F64, vec![v.len()], f64_bytes(&v)));
    }

    let views = owned
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let sizes: Vec<String> = learner.online.sizes().iter().map(|s| s.to_string()).collect();
    let mut meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("manifest_fnv1a64".to_string(), manifest_hash(manifest_text)),
        ("env_steps".to_string(), progress.env_steps.to_string()),
        ("updates".to_string(), learner.updates.to_string()),
        ("adam_t".to_string(), learner.adam.t.to_string()),
        ("replay_written".to_string(), learner.replay.written.to_string()),
        ("sizes".to_string(), sizes.join(",")),
    ]);
    meta.extend(extra_meta);
    if let Some(t) = progress.prior_temperature {
        meta.insert("prior_temperature".into(), t.to_string());
    }
    if let Some((n, k)) = progress.prior_episodes {
        meta.insert("prior_episodes".into(), format!("{n} {k}"));
    }
    if let Some(m) = progress.weight_scale {
        meta.insert("weight_scale".into(), m.to_string());
    }
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// Writes checkpoints on its own thread, so the control loop never waits on the disk (a write
/// with its fsyncs takes milliseconds to seconds): the loop encodes a checkpoint in memory and
/// hands it over. One checkpoint may wait while another is written; beyond that a new one is
/// skipped and counted (the next is newer anyway). The run's last checkpoint is written with
/// [`save`].
pub struct Writer {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<Result<u64>>>,
    /// Checkpoints skipped because the writer was still busy.
    pub skipped: u64,
}

impl Writer {
    /// A writer for checkpoints at `path`.
    pub fn start(path: &Path) -> Result<Writer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let path = path.to_path_buf();
        let handle = std::thread::Builder::new().name("resq-checkpoint".into()).spawn(move || {
            let mut written = 0u64;
            for bytes in rx {
                write_atomically(&path, &bytes)?;
                written += 1;
            }
            Ok(written)
        })?;
        Ok(Writer { tx: Some(tx), handle: Some(handle), skipped: 0 })
    }

    /// Hands a checkpoint to the writer without waiting; skipped if it is busy. Fails if an
    /// earlier write failed.
    pub fn submit(&mut self, bytes: Vec<u8>) -> Result<()> {
        use std::sync::mpsc::TrySendError;
        match self.tx.as_ref().map(|tx| tx.try_send(bytes)) {
            Some(Ok(())) => Ok(()),
            Some(Err(TrySendError::Full(_))) => {
                self.skipped += 1;
                Ok(())
            }
            Some(Err(TrySendError::Disconnected(_))) | None => {
                // The writer ended early: its error, if it had one, says why.
                self.finish()?;
                anyhow::bail!("the checkpoint writer stopped")
            }
        }
    }

    /// Waits for the write in progress; returns how many checkpoints were written, or the
    /// first write's error.
    pub fn finish(&mut self) -> Result<u64> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow::anyhow!("the checkpoint writer panicked"))?,
            None => Ok(0),
        }
    }
}

/// temp file in the same folder → write → fsync → rename → fsync folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).with_context(|| format!("renaming into {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn read_f32(st: &SafeTensors, name: &str, shape: &[usize], path: &Path) -> Result<Vec<f32>> {
    let t = st.tensor(name).with_context(|| format!("{}: tensor `{name}` missing", path.display()))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        bail!(
            "{}: tensor `{name}` is {:?} {:?}, expected F32 {:?}",
            path.display(),
            t.dtype(),
            t.shape(),
            shape
        );
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn read_history<T: Copy>(
    st: &SafeTensors,
    name: &str,
    dtype: Dtype,
    path: &Path,
    conv: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>> {
    let t = st.tensor(name).with_context(|| format!("{}: tensor `{name}` missing", path.display()))?;
    if t.dtype() != dtype {
        bail!("{}: tensor `{name}` has dtype {:?}, expected {dtype:?}", path.display(), t.dtype());
    }
    let size = dtype.bitsize() / 8;
    Ok(t.data().chunks_exact(size).map(conv).collect())
}

/// Restores `learner` from `path` and returns the saved progress. Refuses a checkpoint written
/// by another manifest or for another network shape.
pub fn load(path: &Path, learner_all: &mut dyn ResidualLearner, manifest_text: &str) -> Result<Progress> {
    let bytes = std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors checkpoint", path.display()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let get =
        |k: &str| meta.get(k).cloned().with_context(|| format!("{}: metadata `{k}` missing", path.display()));
    if get("format")? != FORMAT {
        bail!("{}: format `{}` is not {FORMAT}", path.display(), get("format")?);
    }
    if get("manifest_fnv1a64")? != manifest_hash(manifest_text) {
        return Err(Fixable::new(
            format!(
                "{}: this checkpoint was written for a different manifest; resuming it would mix two customizations",
                path.display()
            ),
            "pass --fresh to start over (the old checkpoint is replaced), or --out another folder",
        )
        .into());
    }
    let sizes: Vec<String> = learner_all.core().online.sizes().iter().map(|s| s.to_string()).collect();
    if get("sizes")? != sizes.join(",") {
        bail!(
            "{}: network sizes {} differ from the manifest's {}",
            path.display(),
            get("sizes")?,
            sizes.join(",")
        );
    }
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: corrupt checkpoint", path.display()))?;
    let fill = |prefix: &str, w: &mut [&mut Array2<f32>], b: &mut [&mut Array1<f32>]| -> Result<()> {
        for (l, (w, b)) in w.iter_mut().zip(b.iter_mut()).enumerate() {
            let ws = read_f32(&st, &format!("{prefix}.{l}.w"), w.shape(), path)?;
            w.as_slice_mut().expect("standard").copy_from_slice(&ws);
            let bs = read_f32(&st, &format!("{prefix}.{l}.b"), b.shape(), path)?;
            b.as_slice_mut().expect("contiguous").copy_from_slice(&bs);
        }
        Ok(())
    };
    let num = |k: &str| -> Result<u64> {
        get(k)?.parse().with_context(|| format!("{}: metadata `{k}` is not a number", path.display()))
    };
    for extra in learner_all.extra_nets_mut() {
        let (mut w, mut b): (Vec<_>, Vec<_>) =
            extra.net.layers.iter_mut().map(|l| (&mut l.w, &mut l.b)).unzip();
        fill(extra.name, &mut w, &mut b)?;
        if let Some(adam) = extra.adam {
            let g = &mut adam.m;
            let (mut w, mut b): (Vec<_>, Vec<_>) = (g.w.iter_mut().collect(), g.b.iter_mut().collect());
            fill(&format!("{}.adam_m", extra.name), &mut w, &mut b)?;
            let g = &mut adam.v;
            let (mut w, mut b): (Vec<_>, Vec<_>) = (g.w.iter_mut().collect(), g.b.iter_mut().collect());
            fill(&format!("{}.adam_v", extra.name), &mut w, &mut b)?;
            adam.t = num(&format!("{}.adam_t", extra.name))?;
        }
    }
    let learner = learner_all.core_mut();
    {
        let (mut w, mut b): (Vec<_>, Vec<_>) =
            learner.online.layers.iter_mut().map(|l| (&mut l.w, &mut l.b)).unzip();
        fill("online", &mut w, &mut b)?;
        let (mut w, mut b): (Vec<_>, Vec<_>) =
            learner.target.layers.iter_mut().map(|l| (&mut l.w, &mut l.b)).unzip();
        fill("target", &mut w, &mut b)?;
        let g = &mut learner.adam.m;
        let (mut w, mut b): (Vec<_>, Vec<_>) = (g.w.iter_mut().collect(), g.b.iter_mut().collect());
        fill("adam_m", &mut w, &mut b)?;
        let g = &mut learner.adam.v;
        let (mut w, mut b): (Vec<_>, Vec<_>) = (g.w.iter_mut().collect(), g.b.iter_mut().collect());
        fill("adam_v", &mut w, &mut b)?;
    }
    learner.adam.t = num("adam_t")?;
    learner.updates = num("updates")?;
    let history = History {
        episode_end_step: read_history(&st, "history.episode_end_step", Dtype::F64, path, |c| {
            f64::from_le_bytes(c.try_into().expect("8 bytes"))
        })?,
        episode_addon_per_step: read_history(&st, "history.episode_addon_per_step", Dtype::F32, path, |c| {
            f32::from_le_bytes(c.try_into().expect("4 bytes"))
        })?,
        episode_length: read_history(&st, "history.episode_length", Dtype::F32, path, |c| {
            f32::from_le_bytes(c.try_into().expect("4 bytes"))
        })?,
        // Absent from checkpoints written before it was kept.
        episode_success: if st.names().contains(&"history.episode_success") {
            read_history(&st, "history.episode_success", Dtype::F32, path, |c| {
                f32::from_le_bytes(c.try_into().expect("4 bytes"))
            })?
        } else {
            Vec::new()
        },
    };
    restore_replay(&st, learner, num("replay_written").unwrap_or(0));
    for name in st.names() {
        if let Some(key) = name.strip_prefix("state.") {
            let v = read_history(&st, name, Dtype::F64, path, |c| {
                f64::from_le_bytes(c.try_into().expect("8 bytes"))
            })?;
            if !learner_all.restore_extra_state(key, &v) {
                bail!("{}: `{name}` does not fit this bundle's learner", path.display());
            }
        }
    }
    let positive = |key: &str| -> Result<Option<f32>> {
        match meta.get(key).map(|t| t.parse::<f32>()) {
            Some(Ok(t)) if t > 0.0 && t.is_finite() => Ok(Some(t)),
            Some(_) => bail!("{}: metadata `{key}` is not a positive number", path.display()),
            None => Ok(None),
        }
    };
    let (prior_temperature, weight_scale) = (positive("prior_temperature")?, positive("weight_scale")?);
    let prior_episodes =
        match meta.get("prior_episodes").map(|v| v.split(' ').map(str::parse::<u32>).collect::<Vec<_>>()) {
            Some(v) => match v[..] {
                [Ok(n), Ok(k)] if k <= n => Some((n, k)),
                _ => bail!("{}: metadata `prior_episodes` is not `<episodes> <failed>`", path.display()),
            },
            None => None,
        };
    Ok(Progress { env_steps: num("env_steps")?, history, prior_temperature, prior_episodes, weight_scale })
}

/// Restores the replay ring if the checkpoint has one of the same shape; otherwise the resumed
/// run starts with an empty ring (and a warm-up).
fn restore_replay(st: &SafeTensors, learner: &mut LearnerCore, written: u64) {
    let get = |name: &str, dtype: Dtype, len: usize| -> Option<Vec<u8>> {
        let t = st.tensor(name).ok()?;
        (t.dtype() == dtype && t.data().len() == len * dtype.bitsize() / 8).then(|| t.data().to_vec())
    };
    let f32s = |name: &str, len: usize| -> Option<Vec<f32>> {
        Some(
            get(name, Dtype::F32, len)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    };
    let flags = |name: &str, len: usize| -> Option<Vec<bool>> {
        Some(get(name, Dtype::U8, len)?.iter().map(|b| *b != 0).collect())
    };
    let mut r = learner.replay.clone();
    let cap = r.capacity;
    let restored = (|| {
        r.obs = f32s("replay.obs", cap * r.n_obs)?;
        r.next_obs = f32s("replay.next_obs", cap * r.n_obs)?;
        r.next_logp0 = f32s("replay.next_logp0", cap * r.n_actions)?;
        r.action = get("replay.action", Dtype::U32, cap)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        r.reward = f32s("replay.reward", cap)?;
        r.logp0_taken = f32s("replay.logp0_taken", cap)?;
        r.logpi_taken = f32s("replay.logpi_taken", cap)?;
        r.terminal = flags("replay.terminal", cap)?;
        r.episode_end = flags("replay.episode_end", cap)?;
        r.action_values = f32s("replay.action_values", cap * r.act_dim)?;
        // Not in checkpoints before it was stored: unknown (NaN), read back from the action.
        r.pre_actions =
            f32s("replay.pre_actions", cap * r.act_dim).unwrap_or_else(|| vec![f32::NAN; cap * r.act_dim]);
        r.next_candidates = f32s("replay.next_candidates", cap * r.cand_width)?;
        r.prior_params = f32s("replay.prior_params", cap * r.param_width)?;
        r.next_prior_params = f32s("replay.next_prior_params", cap * r.param_width)?;
        // Absent unless entries were learned from records (`resq learn --from`).
        r.support = match (
            get("replay.support_mask", Dtype::U64, cap),
            f32s("replay.support_logp0", cap * r.n_actions),
        ) {
            (Some(mask), Some(logp0)) => Some(crate::algo::replay::Support {
                mask: mask
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                logp0,
            }),
            _ => None,
        };
        Some(())
    })();
    match restored {
        Some(()) => {
            r.written = written;
            if written > 0 {
                // The resumed run starts a new episode: the last stored transition ends its
                // episode as a truncation (it still bootstraps from its own next state).
                let last = r.slot(written - 1);
                r.episode_end[last] = true;
            }
            learner.replay = r;
        }
        None => {
            log::warn!("the checkpoint holds no replay ring of this shape: the resumed run refills it first")
        }
    }
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn the_writer_puts_checkpoints_on_disk_off_the_caller_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let mut w = Writer::start(&path).unwrap();
        w.submit(vec![1, 2, 3]).unwrap();
        let written = w.finish().unwrap();
        assert_eq!(written, 1);
        assert_eq!(std::fs::read(&path).unwrap(), vec![1, 2, 3]);
        // Back-to-back submissions: each is written or counted as skipped, never lost silently.
        let mut w = Writer::start(&path).unwrap();
        for i in 0..20u8 {
            w.submit(vec![i; 1 << 16]).unwrap();
        }
        let written = w.finish().unwrap();
        assert_eq!(written + w.skipped, 20);
        assert!(written >= 1);
    }

    #[test]
    fn a_failed_write_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, b"x").unwrap();
        let mut w = Writer::start(&blocker.join("c.safetensors")).unwrap();
        w.submit(vec![0; 8]).unwrap();
        let err = w.finish().unwrap_err();
        assert!(format!("{err:#}").contains("not-a-folder"), "{err:#}");
    }
}

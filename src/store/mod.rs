//! What resq keeps on disk: the learner's [`checkpoint`] (safetensors, written atomically), the
//! per-tick [`record`] (MCAP) and the [`export`] of the customized policy as one ONNX file.

pub mod checkpoint;
pub mod export;
pub mod record;

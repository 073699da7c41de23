//! Resident memory of a loaded Whisper model: every weight is resident once.
//!
//! A CTranslate2 file puts most tensors at odd offsets, so the loader copies
//! them (and converts others); the file pages behind a copy must not stay
//! resident beside it. Linux only (`/proc/self/smaps`).

mod common;

use std::path::Path;

use common::model_dir;
use emily::Kernels;
use emily_models::whisper::{ComputeType, Whisper};

/// Resident bytes of this process's mappings of `file` (`/proc/self/smaps`).
fn resident_bytes_of(file: &Path) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let name = file.canonicalize().unwrap().display().to_string();
    let mut inside = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            inside = line.trim_end().ends_with(&name);
        } else if inside && first == "Rss:" {
            kb += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap();
        }
    }
    kb * 1024
}

#[test]
#[cfg(target_os = "linux")]
fn copied_weights_leave_no_file_pages_resident() {
    let dir = model_dir("whisper-tiny.en");
    let file = dir.join("model.bin");
    let size = std::fs::metadata(&file).unwrap().len() as usize;
    for compute in [
        ComputeType::F32,
        ComputeType::Int8Encoder,
        ComputeType::Int8,
    ] {
        let w = Whisper::load_with(&dir, Kernels::Fused, compute).unwrap();
        let resident = resident_bytes_of(&file);
        // Every tensor is read while loading (copied, converted or checked);
        // only the few read in place may stay (none is touched by loading,
        // but the pages at a copied tensor's edges are shared with them).
        assert!(
            resident < size / 10,
            "{}: {resident} of {size} bytes of {} resident after load",
            compute.name(),
            file.display()
        );
        drop(w);
    }
}

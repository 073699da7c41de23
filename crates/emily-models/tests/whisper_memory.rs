//! Resident memory of a loaded Whisper model: every weight is resident once,
//! and the buffer pool keeps no more than a transcription's peak.
//!
//! A CTranslate2 file puts most tensors at odd offsets, so the loader copies
//! them (and converts others); the file pages behind a copy must not stay
//! resident beside it. Linux only (`/proc/self/smaps`).

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{jfk_wav, model_dir};
use emily::Kernels;
use emily_models::whisper::{ComputeType, TranscribeOptions, Whisper};

/// The tests take turns: a transcription touches the pages of the weights
/// read in place, which the resident-pages test must not see.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

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
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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

/// The encoder's scratch (the MLP's hidden rows, attention inputs) and the
/// decoder's cross keys and values are live at different times: after a
/// transcription the pool's live plus parked bytes stay within its footprint
/// bound (the most bytes live at once, plus buffers that were trimmed and
/// asked for again) instead of holding every phase's buffers (tiny.en
/// `auto` held 1.28× its peak before the bound). Phases that cycle keep their
/// buffers: by the third transcription nothing is taken from the system
/// (the bound trimmed and re-faulted the encoder's scratch every run before,
/// ~20 ms of a warm tiny.en JFK run).
#[test]
fn the_pool_stays_within_its_bound_and_cycles_without_refaulting() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = Whisper::load_with(
        &model_dir("whisper-tiny.en"),
        Kernels::Fused,
        ComputeType::Auto,
    )
    .unwrap();
    let transcribe = || {
        let t = w
            .transcribe_file(&jfk_wav(), &TranscribeOptions::greedy())
            .unwrap();
        assert!(
            t.text.contains("ask not what your country can do for you"),
            "{}",
            t.text
        );
    };
    transcribe();
    let within_bound = || {
        let s = emily::memory::stats();
        let held = s.active_bytes + s.cached_bytes;
        let bound = emily::memory::footprint_bound().expect("Whisper turns the bound on");
        // A little room for concurrent allocations racing the trim.
        assert!(
            held as f64 <= bound as f64 * 1.05,
            "pool holds {:.1} MB (live {:.1} + parked {:.1}) for a bound of {:.1} MB",
            held as f64 / 1e6,
            s.active_bytes as f64 / 1e6,
            s.cached_bytes as f64 / 1e6,
            bound as f64 / 1e6
        );
    };
    within_bound();
    transcribe();
    let before = emily::memory::stats().system_allocations;
    transcribe();
    let fresh = emily::memory::stats().system_allocations - before;
    assert_eq!(
        fresh, 0,
        "a third transcription took {fresh} buffers from the system"
    );
    within_bound();
}

//! The featurizer against Hugging Face's reference features for the JFK clip.

mod common;

use common::{goldens, jfk_samples_reference, max_abs_diff};
use emily_models::log_mel::{mel_filters, LogMelFeaturizer};
use emily_models::npy::read_npy;

#[test]
fn filterbank_matches_reference() {
    let golden = read_npy(&goldens().join("whisper_mel_filters_80.npy")).unwrap();
    assert_eq!(golden.shape, vec![201, 80]);
    let ours = mel_filters(80, 400, 16000);
    let diff = max_abs_diff(&ours, &golden.data);
    assert!(diff <= 1e-7, "filterbank max abs diff {diff}");
}

#[test]
fn jfk_log_mel_matches_reference() {
    let samples = jfk_samples_reference();
    assert_eq!(samples.len(), 176_000);
    let golden = read_npy(&goldens().join("jfk_logmel.npy")).unwrap();
    assert_eq!(golden.shape, vec![80, 3000]);
    let fe = LogMelFeaturizer::new(80).unwrap();
    let mel = fe.compute(&samples).unwrap();
    assert_eq!((mel.n_mels, mel.n_frames), (80, 3000));
    let diff = max_abs_diff(&mel.data, &golden.data);
    eprintln!("jfk log-mel max abs diff {diff:e}");
    assert!(diff <= 1e-4, "log-mel max abs diff {diff}");

    // The long-form variant agrees on the first window for a clip this short.
    let long = fe.compute_long(&samples).unwrap();
    assert_eq!(long.n_frames, (176_000 + 480_000) / 160);
    let first: Vec<f32> = (0..80)
        .flat_map(|m| long.data[m * long.n_frames..m * long.n_frames + 3000].to_vec())
        .collect();
    assert!(max_abs_diff(&first, &golden.data) <= 1e-4);
}

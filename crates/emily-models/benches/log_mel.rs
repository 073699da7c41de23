//! Log-mel featurizer timing: one 30 s window of the JFK clip (11 s of speech, the
//! rest padding) and 30 s of speech (the clip repeated), medians of 20 runs, on the
//! global rayon pool and on one thread.
//!
//! Run: `cargo bench -p emily-models --bench log_mel`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use emily_models::audio::load_audio;
use emily_models::log_mel::{LogMelFeaturizer, CHUNK_SAMPLES};

fn median(mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let wav = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/jfk.wav");
    let jfk = load_audio(&wav).expect("samples/jfk.wav");
    let full: Vec<f32> = jfk.iter().copied().cycle().take(CHUNK_SAMPLES).collect();
    let fe = LogMelFeaturizer::new(80).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (name, audio) in [("jfk 11 s + padding", &jfk), ("30 s of speech", &full)] {
        let all = median(|| {
            fe.compute(audio).unwrap();
        });
        let single = one.install(|| {
            median(|| {
                fe.compute(audio).unwrap();
            })
        });
        println!(
            "log-mel 80x3000, {name}: {:.2} ms ({} threads), {:.2} ms (1 thread)",
            all.as_secs_f64() * 1e3,
            rayon::current_num_threads(),
            single.as_secs_f64() * 1e3
        );
    }
    let load = median(|| {
        load_audio(&wav).unwrap();
    });
    println!(
        "decode jfk.wav (16 kHz mono): {:.2} ms",
        load.as_secs_f64() * 1e3
    );
}

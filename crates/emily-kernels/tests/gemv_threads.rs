//! The decode GEMVs give the same bits whatever the pool's size: each
//! output is one weight row's sum, computed the same way whichever thread's
//! range holds the row. The pool is sized once per process, so the test
//! runs itself again in children with 1 and 2 threads under every
//! `EMILY_ISA` cap, each printing a digest of every product's output bits,
//! and compares the digests of the same cap.

use std::collections::BTreeMap;
use std::process::Command;

use emily_kernels::gemv::{gemv_bf16, gemv_f16, gemv_f32};
use emily_kernels::gemv_i8::I8Rows;
use emily_kernels::quant::{gemv_q8, BlockFormat, Q8Activations};
use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Set in the children (to their thread count): compute and print.
const CHILD: &str = "EMILY_GEMV_THREADS_CHILD";
const TEST: &str = "gemv_bits_do_not_depend_on_the_thread_count";

/// FNV-1a over the outputs' bit patterns.
fn digest(out: &[f32]) -> u64 {
    out.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits()
            .to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    })
}

/// Every product at sizes that split across a 2-thread pool (and odd ones
/// that do not): `(name, digest)`.
fn products() -> Vec<(String, u64)> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut digests = Vec::new();
    // (n, k): odd row counts, ragged panels and blocks.
    for (n, k) in [(1, 7), (77, 33), (1000, 77), (1239, 512), (4099, 96)] {
        let w: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let rows = I8Rows::quantize(&w, n, k);
        let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
        for m in [1, 3, 5] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
            let mut out = vec![0f32; m * n];
            let mut add = |name: &str, out: &[f32]| {
                digests.push((format!("{name} n={n} k={k} m={m}"), digest(out)))
            };
            rows.gemv(&x, m, &mut out);
            add("int8 rows", &out);
            gemv_f16(&wh, n, k, &x, m, &mut out);
            add("f16", &out);
            gemv_bf16(&wb, n, k, &x, m, &mut out);
            add("bf16", &out);
            gemv_f32(&w, n, k, &x, m, &mut out);
            add("f32", &out);
            if k % 32 == 0 {
                // Q8_0 blocks: an f16 scale, then 32 codes.
                let mut bytes = Vec::new();
                for _ in 0..n * k / 32 {
                    let scale = f16::from_f32(rng.gen_range(0.001f32..0.1));
                    bytes.extend_from_slice(&scale.to_bits().to_le_bytes());
                    bytes.extend((0..32).map(|_| rng.gen::<u8>()));
                }
                let act = Q8Activations::quantize(&x, m, k);
                gemv_q8(BlockFormat::Q8_0, &bytes, n, &act, &mut out).unwrap();
                add("q8_0", &out);
            }
        }
    }
    digests
}

#[test]
fn gemv_bits_do_not_depend_on_the_thread_count() {
    if std::env::var_os(CHILD).is_some() {
        for (name, d) in products() {
            println!("DIGEST {name}: {d:016x}");
        }
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    for cap in ["baseline", "avx2", "avx512"] {
        let mut by_threads = BTreeMap::new();
        for threads in ["1", "2"] {
            let child = Command::new(&exe)
                .args(["--exact", TEST, "--test-threads", "1", "--nocapture"])
                .env(CHILD, threads)
                .env("EMILY_ISA", cap)
                .env("EMILY_NUM_THREADS", threads)
                .output()
                .expect("run the test binary");
            let stdout = String::from_utf8_lossy(&child.stdout).into_owned();
            assert!(
                child.status.success(),
                "child with {threads} threads, EMILY_ISA={cap} failed:\n{stdout}{}",
                String::from_utf8_lossy(&child.stderr)
            );
            let lines: Vec<String> = stdout
                .lines()
                .filter(|l| l.starts_with("DIGEST "))
                .map(str::to_string)
                .collect();
            assert!(
                lines.len() >= 60,
                "{threads} threads, EMILY_ISA={cap}: too few digests:\n{stdout}"
            );
            by_threads.insert(threads, lines);
        }
        let (one, two) = (&by_threads["1"], &by_threads["2"]);
        assert_eq!(one.len(), two.len());
        for (a, b) in one.iter().zip(two) {
            assert_eq!(a, b, "1 thread vs 2 threads, EMILY_ISA={cap}");
        }
    }
}

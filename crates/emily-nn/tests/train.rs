//! Training components: losses, optimizers against hand-computed updates,
//! schedules, the loss scaler (a step with an inf gradient is skipped),
//! checkpoints (bit-exact round trip, resume = continue), bad files.

mod common;

use emily::{DType, Tensor};
use emily_nn::train::{
    self, cross_entropy, load_checkpoint, mse, save_checkpoint, Adam, LossScaler, Optimizer,
    Precision, Schedule, Sgd, Trainer, WarmupCosine,
};
use emily_nn::{DenseOptions, Mode, Model, ModelBuilder, ParamStore};

fn store(entries: &[(&str, &[f32])]) -> ParamStore {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), Tensor::from_slice(v, &[v.len()]).unwrap()))
        .collect()
}

fn values(s: &ParamStore, k: &str) -> Vec<f32> {
    s.get(k).unwrap().to_vec::<f32>().unwrap()
}

#[test]
fn cross_entropy_and_mse_match_hand_computed_values() {
    let logits = Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0], &[2, 3]).unwrap();
    let t = Tensor::from_slice(&[1i64, 2], &[2]).unwrap();
    let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
    let want = ((lse(&[1.0, 2.0, 0.5]) - 2.0) + (lse(&[-1.0, 0.0, 3.0]) - 3.0)) / 2.0;
    let got = cross_entropy(&logits, &t)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    let p = Tensor::from_slice(&[0.0f32, 1.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]).unwrap();
    let soft = train::cross_entropy_with_probs(&logits, &p).unwrap();
    assert!((soft.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-6);
    let a = Tensor::from_slice(&[1.0f32, 2.0, 4.0], &[3]).unwrap();
    let b = Tensor::from_slice(&[0.0f32, 2.0, 1.0], &[3]).unwrap();
    let m = mse(&a, &b).unwrap().to_scalar::<f32>().unwrap();
    assert!((m - 10.0 / 3.0).abs() < 1e-6, "{m}");
    assert!(cross_entropy(&logits, &Tensor::from_slice(&[1i64], &[1]).unwrap()).is_err());
    assert!(
        cross_entropy(&logits, &Tensor::from_slice(&[3i64, 0], &[2]).unwrap())
            .unwrap()
            .eval()
            .is_err()
    );
    assert_eq!(train::accuracy(&logits, &t).unwrap(), 1.0);
    let half_right = Tensor::from_slice(&[0i64, 2], &[2]).unwrap();
    assert_eq!(train::accuracy(&logits, &half_right).unwrap(), 0.5);
}

#[test]
fn sgd_with_momentum_matches_the_recurrence() {
    let mut p = store(&[("w", &[1.0, -2.0])]);
    let g = store(&[("w", &[0.5, 0.25])]);
    let mut opt = Sgd::new(0.9).weight_decay(0.1);
    let (mut w, mut b) = ([1.0f64, -2.0], [0.0f64; 2]);
    for _ in 0..3 {
        opt.step(&mut p, &g, 0.1).unwrap();
        for i in 0..2 {
            b[i] = 0.9 * b[i] + [0.5, 0.25][i] + 0.1 * w[i];
            w[i] -= 0.1 * b[i];
        }
    }
    for (got, want) in values(&p, "w").iter().zip(w) {
        assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
    assert_eq!(opt.state().step, 3);
}

#[test]
fn adam_and_adamw_match_the_reference_update() {
    for decoupled in [false, true] {
        let mut p = store(&[("w", &[0.5, -1.5, 3.0])]);
        let mut opt = if decoupled {
            Adam::adamw(0.01)
        } else {
            Adam::new().weight_decay(0.01)
        };
        let (mut w, mut m, mut v) = ([0.5f64, -1.5, 3.0], [0.0f64; 3], [0.0f64; 3]);
        for t in 1..=4 {
            let gv: Vec<f32> = w.iter().map(|x| (2.0 * x + 0.3) as f32).collect();
            let g = store(&[("w", &gv)]);
            let lr = 0.05;
            opt.step(&mut p, &g, lr).unwrap();
            for i in 0..3 {
                let mut gi = gv[i] as f64;
                if decoupled {
                    w[i] *= 1.0 - lr * 0.01;
                } else {
                    gi += 0.01 * w[i];
                }
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                w[i] -= lr * mh / (vh.sqrt() + 1e-8);
            }
            for (got, want) in values(&p, "w").iter().zip(w) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "decoupled={decoupled} t={t}: {got} vs {want}"
                );
            }
        }
        assert_eq!(opt.state().kind, if decoupled { "adamw" } else { "adam" });
    }
}

#[test]
fn warmup_cosine_schedule() {
    let s = WarmupCosine::new(1.0, 4, 14).floor(0.1);
    assert_eq!(s.lr(0), 0.25);
    assert_eq!(s.lr(3), 1.0);
    assert!((s.lr(4) - 1.0).abs() < 1e-12);
    assert!((s.lr(9) - 0.55).abs() < 1e-12, "{}", s.lr(9));
    assert_eq!(s.lr(14), 0.1);
    assert_eq!(s.lr(1000), 0.1);
    assert!((4..14).all(|i| s.lr(i + 1) <= s.lr(i)));
}

#[test]
fn loss_scaler_halves_on_overflow_and_grows_after_clean_steps() {
    let mut s = LossScaler::new(1024.0, 3);
    assert!(!s.update(false));
    assert_eq!(s.scale(), 512.0);
    assert!(s.update(true) && s.update(true));
    assert_eq!(s.scale(), 512.0);
    assert!(s.update(true));
    assert_eq!(s.scale(), 1024.0);
    assert_eq!(s.clean_steps(), 0);
}

/// A 2-layer classifier of 5 features into 3 classes.
fn classifier() -> Model {
    let mut b = ModelBuilder::new();
    let x = b.input("x", &[None, Some(5)], DType::F32).unwrap();
    let h = b.dense("fc1", &x, DenseOptions::new(5, 8)).unwrap();
    let h = b.gelu("act", &h).unwrap();
    let y = b.dense("fc2", &h, DenseOptions::new(8, 3)).unwrap();
    b.output(&y).unwrap();
    b.build().unwrap()
}

fn trainer(model: &Model, params: &ParamStore, precision: Precision) -> Trainer {
    let step = model
        .build(params, Mode::Train)
        .unwrap()
        .train_step(|o, t| cross_entropy(&o["fc2"], &t[0]), precision)
        .unwrap();
    Trainer::new(step, Adam::adamw(0.01), WarmupCosine::new(0.02, 2, 50)).clip_grad_norm(1.0)
}

fn batch() -> (Tensor, Tensor) {
    (
        Tensor::randn(&[16, 5], 0.0, 1.0, 3, DType::F32).unwrap(),
        Tensor::from_vec((0..16).map(|i| (i % 3) as i64).collect(), &[16]).unwrap(),
    )
}

#[test]
fn a_step_with_an_inf_gradient_is_skipped_and_halves_the_scale() {
    let model = classifier();
    let mut params = ParamStore::random(&model, 1, DType::F32).unwrap();
    let before = common::snapshot(&params);
    let mut t = trainer(&model, &params, Precision::MixedBf16)
        .loss_scaler(LossScaler::new(2f64.powi(16), 10));
    let (x, y) = batch();
    // One infinite feature: the gradients are inf/NaN, so the step is
    // skipped and the scale halved.
    let mut poisoned = x.to_vec::<f32>().unwrap();
    poisoned[7] = f32::INFINITY;
    let poisoned = Tensor::from_vec(poisoned, &[16, 5]).unwrap();
    let r = t.step(&mut params, &[("x", &poisoned)], &[&y]).unwrap();
    assert!(r.skipped && !r.grad_norm.is_finite(), "{r:?}");
    assert_eq!(t.scaler().unwrap().scale(), 2f64.powi(15));
    let after = common::snapshot(&params);
    assert_eq!(
        before.iter().map(|s| &s.2).collect::<Vec<_>>(),
        after.iter().map(|s| &s.2).collect::<Vec<_>>(),
        "a skipped step leaves the parameters alone"
    );
    // Once the scale has come down, steps apply and the loss falls.
    let mut reports = Vec::new();
    for _ in 0..60 {
        reports.push(t.step(&mut params, &[("x", &x)], &[&y]).unwrap());
    }
    let applied: Vec<_> = reports.iter().filter(|r| !r.skipped).collect();
    assert!(applied.len() > 30, "{} steps applied", applied.len());
    assert!(applied.last().unwrap().loss < applied[0].loss);
    assert!(applied.len() == 60, "clean steps all apply");
    assert_eq!(
        t.scaler().unwrap().scale(),
        2f64.powi(21),
        "doubled every 10 clean steps"
    );
}

#[test]
fn checkpoint_round_trips_bit_for_bit_and_resuming_equals_continuing() {
    let model = classifier();
    let mut params = ParamStore::random(&model, 5, DType::F32).unwrap();
    let (x, y) = batch();
    let mut t = trainer(&model, &params, Precision::Full);
    for _ in 0..3 {
        t.step(&mut params, &[("x", &x)], &[&y]).unwrap();
    }
    let dir = std::env::temp_dir().join(format!("emily-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.safetensors");
    let ckpt = t.checkpoint(&params);
    save_checkpoint(&path, &ckpt).unwrap();
    let back = load_checkpoint(&path).unwrap();
    assert_eq!(back.step, 3);
    let bytes = |s: &ParamStore| -> Vec<(String, Vec<u8>)> {
        s.iter()
            .map(|(k, t)| {
                (
                    k.to_string(),
                    t.array().unwrap().to_host_bytes().unwrap().to_vec(),
                )
            })
            .collect()
    };
    assert_eq!(bytes(&back.params), bytes(&params));
    let (o1, o2) = (ckpt.optimizer.unwrap(), back.optimizer.clone().unwrap());
    assert_eq!(o1.kind, o2.kind);
    assert_eq!(o1.step, o2.step);
    assert_eq!(o1.tensors.len(), 8);
    for (k, v) in &o1.tensors {
        assert_eq!(
            v.array().unwrap().to_host_bytes().unwrap(),
            o2.tensors[k].array().unwrap().to_host_bytes().unwrap(),
            "{k}"
        );
    }
    // Resume in a fresh trainer: the next step equals the original's.
    let mut resumed = trainer(&model, &params, Precision::Full);
    let mut p2 = resumed.restore(back).unwrap();
    let a = t.step(&mut params, &[("x", &x)], &[&y]).unwrap();
    let b = resumed.step(&mut p2, &[("x", &x)], &[&y]).unwrap();
    assert_eq!(a, b);
    assert_eq!(bytes(&params), bytes(&p2));

    // Bad files are errors naming the file.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage").unwrap();
    let e = load_checkpoint(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
    let plain = dir.join("params.safetensors");
    train::save_params(&plain, &params).unwrap();
    assert_eq!(bytes(&train::load_params(&plain).unwrap()), bytes(&params));
    let e = load_checkpoint(&plain).unwrap_err().to_string();
    assert!(e.contains("not a training checkpoint"), "{e}");
    let mut wrong = Sgd::new(0.9);
    let e = wrong.load_state(o2).unwrap_err().to_string();
    assert!(e.contains("adamw"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The training recipes end to end on real data: the digits classifier
//! reaches 95 % held-out accuracy from a fixed seed in a fixed step budget,
//! the byte LM's loss falls below a stated bound, and a saved checkpoint
//! loads back to the same held-out numbers.

use std::path::PathBuf;

use emily_models::training::{bytelm, digits};
use emily_nn::train::{load_params, save_params};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn digits_classifier_reaches_95_percent_held_out_and_its_checkpoint_loads_back() {
    let path = repo().join("data/digits/digits.csv");
    let data = digits::Digits::load(&path).unwrap_or_else(|e| {
        panic!("{e}: fetch it with `make models` or `scripts/fetch-data.sh digits`")
    });
    assert_eq!(data.len(), 1797);
    let (train, held_out) = data.split(360, 42);
    let recipe = digits::Recipe::default();
    let mut losses = Vec::new();
    let (model, params) = digits::train(&train, &recipe, |_, r| losses.push(r.loss)).unwrap();
    assert_eq!(losses.len() as u64, recipe.steps);
    let (loss, acc) = digits::evaluate(&model, &params, &held_out).unwrap();
    assert!(acc >= 0.95, "held-out accuracy {acc} (loss {loss})");

    let dir = std::env::temp_dir().join(format!("emily-digits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("digits.safetensors");
    save_params(&ckpt, &params).unwrap();
    let loaded = load_params(&ckpt).unwrap();
    assert_eq!(
        digits::evaluate(&model, &loaded, &held_out).unwrap(),
        (loss, acc)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn digits_loader_rejects_malformed_lines_naming_them() {
    let dir = std::env::temp_dir().join(format!("emily-digits-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = format!("{}0", "1,".repeat(64));
    for (name, body, want) in [
        ("short.csv", format!("{ok}\n1,2,3\n"), "line 2: 3 fields"),
        (
            "label.csv",
            format!("{}12", "1,".repeat(64)),
            "line 1: field 65 is 12",
        ),
        (
            "word.csv",
            format!("x,{}0", "1,".repeat(63)),
            "line 1: field 1 `x`",
        ),
        ("empty.csv", String::new(), "no images"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let e = digits::Digits::load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn byte_lm_loss_falls_below_the_bound() {
    let text = repo().join("testdata/text/declaration_of_independence.txt");
    let recipe = bytelm::Recipe {
        steps: 150,
        ..bytelm::Recipe::default()
    };
    let corpus = bytelm::ByteCorpus::load(&text, 0.1, recipe.seq_len).unwrap();
    let mut losses = Vec::new();
    let (model, params) = bytelm::train(&corpus, &recipe, |_, r| losses.push(r.loss)).unwrap();
    // Uniform over 256 bytes is ln 256 = 5.55; the text's unigram entropy is
    // 3.04 nats per byte (4.4 bits): the model must learn more than
    // byte frequencies.
    let first = losses[0];
    let last: f64 = losses[losses.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(first > 5.0, "starts near uniform: {first}");
    assert!(
        last < 2.5,
        "training loss {last} after {} steps",
        recipe.steps
    );
    let held_out = bytelm::evaluate(&model, &params, &corpus.held_out, recipe.seq_len).unwrap();
    assert!(held_out < 3.0, "held-out loss {held_out}");
}

#[test]
fn byte_lm_compiled_step_runs_fused_attention_with_the_eager_gradients() {
    // The compiler recognises each layer's composed causal attention, RMSNorms
    // and RoPEs and their gradients (GQA 4/2, head size 16) and runs them as
    // fused kernels; the
    // loss and every gradient match the same graph evaluated op by op.
    use emily::{DType, Tensor};
    use emily_nn::train::{cross_entropy, Precision};
    use emily_nn::{Mode, ParamStore};
    let config = bytelm::Config {
        layers: 2,
        ..bytelm::Config::default()
    };
    let model = bytelm::model(&config).unwrap();
    let params = ParamStore::random(&model, 3, DType::F32).unwrap();
    let step = model
        .build(&params, Mode::Train)
        .unwrap()
        .train_step(
            |o, t| cross_entropy(&o[bytelm::LOGITS], &t[0]),
            Precision::Full,
        )
        .unwrap();
    let (batch, seq) = (3, 23);
    let ids: Vec<u8> = (0..batch * (seq + 1))
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    let starts: Vec<usize> = (0..batch).map(|i| i * (seq + 1)).collect();
    let (x, y) = bytelm::windows(&ids, &starts, seq).unwrap();
    let ins = [(bytelm::INPUT, &x)];
    let plan = step.plan(&params, &ins, &[&y]).unwrap();
    let count = |name: &str| {
        plan.op_frequencies()
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |c| c.1)
    };
    // The forward attention writes its output sequence-major (the head
    // permute after it folded into its strides), except where the CPU's
    // head-major causal kernel serves it (no AVX-512).
    let seq_major = count("scaled_dot_product_attention_seq_major");
    assert!(seq_major == 0 || seq_major == 2, "{seq_major}");
    assert_eq!(
        count("scaled_dot_product_attention") + seq_major,
        2,
        "{:?}",
        plan.op_frequencies()
    );
    assert_eq!(count("scaled_dot_product_attention_causal_grad"), 2);
    assert_eq!(count("softmax"), 0);
    // Each RMSNorm (2 per layer and the final one) forward and backward,
    // each RoPE (q and k per layer) forward and backward, fused with the
    // head permute beside it.
    assert_eq!(count("rms_norm"), 5, "{:?}", plan.op_frequencies());
    assert_eq!(count("rms_norm_grad"), 5);
    assert_eq!(count("rope_heads"), 8, "{:?}", plan.op_frequencies());
    assert_eq!(
        count("rope") + count("permute"),
        8 - seq_major,
        "v (the gradient reads it too), attention out (unless folded), dO, dV"
    );
    assert_eq!(
        count("concat") + count("pad"),
        0,
        "{:?}",
        plan.op_frequencies()
    );
    assert_eq!(count("sum_squares"), 1, "the gradients' squared norm");
    let compiled = step.run(&params, &ins, &[&y], 1.0).unwrap();
    let eager = step.run_eager(&params, &ins, &[&y], 1.0).unwrap();
    let scalar = |t: &Tensor| t.to_vec::<f32>().unwrap()[0];
    let (lc, le) = (scalar(&compiled.loss), scalar(&eager.loss));
    assert!((lc - le).abs() <= 1e-5 * le.abs(), "loss {lc} vs {le}");
    assert_eq!(compiled.grads.len(), eager.grads.len());
    for (name, g) in eager.grads.iter() {
        let (a, b) = (
            compiled.grads.get(name).unwrap().to_vec::<f32>().unwrap(),
            g.to_vec::<f32>().unwrap(),
        );
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            diff <= 1e-4 * scale,
            "{name}: max diff {diff} (scale {scale})"
        );
    }
}

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

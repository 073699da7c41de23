//! Every input the fuzzers found a crash with (`testdata/fuzz-regressions/<target>/`)
//! replayed through the same entry points (`emily_models::fuzzing`), and the
//! fuzzers' seeds (`fuzz/seeds/<target>/`) checked to reach the end of each parser.

mod common;

use std::path::{Path, PathBuf};

use common::workspace_root;
use emily_models::fuzzing;

/// `(target, file)` for every file under `dir/<target>/`.
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut all = Vec::new();
    for target in std::fs::read_dir(dir).unwrap() {
        let target = target.unwrap().path();
        if !target.is_dir() {
            continue;
        }
        let name = target.file_name().unwrap().to_string_lossy().to_string();
        for file in std::fs::read_dir(&target).unwrap() {
            all.push((name.clone(), file.unwrap().path()));
        }
    }
    all.sort();
    all
}

#[test]
fn fuzz_findings_stay_fixed() {
    let found = inputs(&workspace_root().join("testdata/fuzz-regressions"));
    for (target, file) in &found {
        let bytes = std::fs::read(file).unwrap();
        eprintln!("{target}: {}", file.display());
        assert!(fuzzing::run(target, &bytes), "no fuzz target `{target}`");
    }
}

#[test]
fn seeds_run_and_the_model_seeds_load() {
    let seeds = inputs(&workspace_root().join("fuzz/seeds"));
    for (target, _) in &seeds {
        assert!(
            fuzzing::TARGETS.iter().any(|(t, _)| t == target),
            "{target}"
        );
    }
    for (name, _) in fuzzing::TARGETS {
        assert!(seeds.iter().any(|(t, _)| t == name), "no seed for {name}");
    }
    for (target, file) in &seeds {
        assert!(fuzzing::run(target, &std::fs::read(file).unwrap()));
    }
    // The model seeds are complete tiny Whisper models: the fuzzers start deep.
    let dir = common::scratch("fuzz-seeds");
    let seed = |t: &str, f: &str| {
        std::fs::read(workspace_root().join("fuzz/seeds").join(t).join(f)).unwrap()
    };
    std::fs::write(
        dir.join("model.bin"),
        seed("ct2_model_bin", "tiny_whisper.bin"),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), b"{}").unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    let ct2 = emily_models::ct2::load_ct2_dir(&dir).unwrap();
    std::fs::remove_file(dir.join("model.bin")).unwrap();
    let hf = seed("hf_safetensors", "tiny_whisper");
    let (config, weights) = fuzzing::split_config(&hf).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let loaded = emily_models::hf::load_hf_dir(&dir).unwrap();
    assert_eq!(loaded.dims, ct2.dims);
    let tok = dir.join("tok.json");
    std::fs::write(&tok, seed("tokenizer_json", "whisper_cut.json")).unwrap();
    let t = emily_models::tokenizer::WhisperTokenizer::from_file(&tok).unwrap();
    assert!(!t.encode(" the").unwrap().is_empty());
    for f in ["tiny_qwen3.gguf", "tiny_gemma3.gguf"] {
        let file =
            emily_models::gguf::GgufFile::parse(std::sync::Arc::new(seed("gguf", f)), f).unwrap();
        let options = emily_models::llm::LoadOptions {
            context: Some(8),
            ..Default::default()
        };
        emily_models::llm::LlmModel::from_gguf(&file, options).unwrap();
    }
}

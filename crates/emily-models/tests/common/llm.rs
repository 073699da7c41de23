//! The fetched GGUF language models and their goldens.

use std::path::PathBuf;

use super::workspace_root;

/// SmolLM2-135M-Instruct (Q4_1), the CI model.
pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Qwen2.5-Coder-0.5B-Instruct.
pub const QWEN25: &str = "qwen2.5-coder-0.5b-instruct.gguf";
/// Gemma 3 270M.
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// `models/llm/<file>` if it was fetched. When it is missing the test is
/// skipped with a message naming the fetch command, except under CI (which
/// fetches SmolLM2 first), where a missing SmolLM2 fails the test.
pub fn llm_model(file: &str) -> Option<PathBuf> {
    let path = workspace_root().join("models/llm").join(file);
    if path.is_file() {
        return Some(path);
    }
    let target = if file == SMOLLM2 { "llm" } else { "llm-all" };
    let msg = format!(
        "{} is missing: run `scripts/fetch-models.sh {target}` (or `make models`)",
        path.display()
    );
    if std::env::var_os("CI").is_some() && file == SMOLLM2 {
        panic!("{msg}");
    }
    eprintln!("skipped: {msg}");
    None
}

/// The LLM goldens directory (`testdata/goldens/llm`).
pub fn llm_goldens() -> PathBuf {
    super::goldens().join("llm")
}

/// `testdata/goldens/llm/<key>.json`.
pub fn golden_json(key: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(llm_goldens().join(format!("{key}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An integer array field of a golden JSON.
pub fn ids(v: &serde_json::Value, field: &str) -> Vec<u32> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("golden field {field}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

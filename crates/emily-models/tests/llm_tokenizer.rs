//! The LLM tokenizers built from GGUF metadata against the goldens (prompt
//! and paragraph ids), decoding, streaming, and the chat templates.

mod common;

use common::llm::{golden_json, ids, llm_model, GEMMA3, QWEN25, SMOLLM2};
use emily_models::gguf::GgufFile;
use emily_models::llm::{ChatMessage, ChatTemplate, LlmTokenizer};

const PROMPT: &str = "The capital of France is";
const PARAGRAPH: &str = "The old lighthouse stood at the edge of the cliff, its white paint peeling in the salt wind. Every night for a hundred years it had turned its lamp toward the sea, guiding fishing boats safely home through fog and storm.";

fn tokenizer(file: &str) -> Option<LlmTokenizer> {
    let path = llm_model(file)?;
    Some(LlmTokenizer::from_gguf(&GgufFile::open(path).unwrap()).unwrap())
}

fn check_goldens(tok: &LlmTokenizer, key: &str) {
    let g = golden_json(key);
    assert_eq!(tok.encode(PROMPT, true).unwrap(), ids(&g, "prompt_ids"));
    assert_eq!(
        tok.encode(PARAGRAPH, true).unwrap(),
        ids(&g, "paragraph_ids")
    );
    let greedy = ids(&g, "greedy_ids");
    assert_eq!(
        tok.decode(&greedy, false).unwrap(),
        g["greedy_text"].as_str().unwrap()
    );
    // Streaming one token at a time gives the same text.
    let mut s = tok.stream(false);
    let streamed: String = greedy.iter().map(|&i| s.push(i).unwrap()).collect();
    assert_eq!(streamed, g["greedy_text"].as_str().unwrap());
}

#[test]
fn smollm2_tokenizes_like_the_reference() {
    let Some(tok) = tokenizer(SMOLLM2) else {
        return;
    };
    assert_eq!(tok.vocab().pre.as_deref(), Some("smollm"));
    check_goldens(&tok, "smollm2");
    // Digits split one by one (the smollm pre-tokenizer), round trip is exact.
    let text = "In 2024, 12345 people wrote “héllo” 🙂\n\tdone.";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    let digits = tok.encode("12345", false).unwrap();
    assert_eq!(digits.len(), 5);
    // A multi-byte character split across tokens streams whole.
    let mut s = tok.stream(false);
    let out: String = ids.iter().map(|&i| s.push(i).unwrap()).collect();
    assert_eq!(out, text);
}

#[test]
fn smollm2_chat_template_renders_and_tokenizes_markers() {
    let Some(tok) = tokenizer(SMOLLM2) else {
        return;
    };
    let src = tok.chat_template().expect("SmolLM2 ships a chat template");
    let t = ChatTemplate::new(src, "", "").unwrap();
    let text = t
        .render(&[ChatMessage::user("What is the capital of France?")], true)
        .unwrap();
    assert!(text.starts_with("<|im_start|>system\n"), "{text}");
    assert!(
        text.ends_with(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        ),
        "{text}"
    );
    let ids = tok.encode(&text, false).unwrap();
    let start = tok.token_id("<|im_start|>").unwrap();
    let end = tok.token_id("<|im_end|>").unwrap();
    assert_eq!(ids[0], start);
    assert_eq!(ids.iter().filter(|&&i| i == start).count(), 3);
    assert!(tok.stop_tokens().contains(&end));
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert!(!tok.decode(&ids, true).unwrap().contains("<|im_start|>"));
}

#[test]
fn a_template_that_raises_reports_its_message() {
    let t = ChatTemplate::new(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content | upper }}",
        "",
        "",
    )
    .unwrap();
    assert_eq!(t.render(&[ChatMessage::user("hi")], false).unwrap(), "HI");
    let e = t.render(&[ChatMessage::system("x")], false).unwrap_err();
    assert!(e.to_string().contains("first must be user"), "{e}");
    assert!(ChatTemplate::new("{% if %}", "", "").is_err());
    // Python string methods through pycompat.
    let t = ChatTemplate::new("{{ messages[0].content.strip().startswith('a') }}", "", "").unwrap();
    assert_eq!(
        t.render(&[ChatMessage::user("  ab ")], false).unwrap(),
        "True"
    );
}

#[test]
#[ignore = "needs models/llm/qwen2.5-coder-0.5b-instruct.gguf: run scripts/fetch-models.sh llm-all"]
fn qwen25_tokenizes_like_the_reference() {
    let tok = tokenizer(QWEN25).expect("run scripts/fetch-models.sh llm-all");
    assert_eq!(tok.vocab().pre.as_deref(), Some("qwen2"));
    check_goldens(&tok, "qwen25");
    let t = ChatTemplate::new(tok.chat_template().unwrap(), "", "<|endoftext|>").unwrap();
    let text = t.render(&[ChatMessage::user("hi")], true).unwrap();
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
}

#[test]
#[ignore = "needs models/llm/gemma-3-270m-q4_k_m.gguf: run scripts/fetch-models.sh llm-all"]
fn gemma3_tokenizes_like_the_reference() {
    let tok = tokenizer(GEMMA3).expect("run scripts/fetch-models.sh llm-all");
    assert_eq!(tok.vocab().model, "llama");
    check_goldens(&tok, "gemma3");
    let text = "Bytes fall back: \u{1F9EA}\u{10FFFD} and  double  spaces\n\nend";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    // This file ships no chat template.
    assert!(tok.chat_template().is_none());
    assert!(tok
        .stop_tokens()
        .contains(&tok.token_id("<end_of_turn>").unwrap()));
}

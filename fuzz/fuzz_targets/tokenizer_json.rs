//! Fuzz target `tokenizer_json`: see `emily_models::fuzzing::tokenizer_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emily_models::fuzzing::tokenizer_json(data));

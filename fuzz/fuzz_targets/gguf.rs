//! Fuzz target `gguf`: see `emily_models::fuzzing::gguf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emily_models::fuzzing::gguf(data));

//! Fuzz target `hf_safetensors`: see `emily_models::fuzzing::hf_safetensors`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emily_models::fuzzing::hf_safetensors(data));

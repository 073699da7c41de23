//! Fuzz target `ct2_model_bin`: see `emily_models::fuzzing::ct2_model_bin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emily_models::fuzzing::ct2_model_bin(data));

//! Fuzz target `audio_decode`: see `emily_models::fuzzing::audio_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emily_models::fuzzing::audio_decode(data));

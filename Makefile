# The two commands a newcomer runs (see README.md).
.PHONY: demo test models bench fuzz

# Main job: fetch Whisper tiny.en if missing, build in release, transcribe the JFK clip.
demo: models
	cargo run --release -p emily-cli --bin emily -- demo

# Every test, in release (the model tests need optimised code), with the real model.
test: models
	cargo test --release --workspace
	bash scripts/gpu-nvrtc.sh

models:
	bash scripts/fetch-models.sh tiny.en
	bash scripts/fetch-models.sh base
	bash scripts/fetch-models.sh llm
	bash scripts/fetch-data.sh digits

bench:
	cargo run --release -p emily-cli --bin emily -- bench all

# Fuzz every parser (cargo fuzz, nightly) for FUZZ_SECONDS each; crashes land in
# fuzz/artifacts/<target>/ (keep each as testdata/fuzz-regressions/<target>/...).
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# The two commands a newcomer runs (see README.md).
.PHONY: demo test models bench

# Main job: fetch Whisper tiny.en if missing, build in release, transcribe the JFK clip.
demo: models
	cargo run --release -p emily-cli --bin emily -- demo

# Every test, in release (the model tests need optimised code), with the real model.
test: models
	cargo test --release --workspace

models:
	bash scripts/fetch-models.sh tiny.en
	bash scripts/fetch-models.sh llm
	bash scripts/fetch-data.sh digits

bench:
	cargo run --release -p emily-cli --bin emily -- bench all

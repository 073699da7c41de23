//! Emily models: loaders, audio input, featurizers, tokenizers and Whisper.

"""Reference outputs of faster-whisper's decoding (beam search, temperature
fallback, no-speech skip, word timestamps) for the Whisper decoding tests.

Run once by hand (needs `pip install faster-whisper` in a virtual environment
and the fetched models/whisper-tiny.en); writes
testdata/goldens/faster_whisper_decoding.json. The tests never run it.

    python scripts/goldens/faster_whisper_decoding.py
"""

import json
import sys
import wave
from pathlib import Path

import numpy as np
import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel

ROOT = Path(__file__).resolve().parents[2]


def jfk():
    with wave.open(str(ROOT / "samples/jfk.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def noise(seconds, seed):
    """xorshift64* uniform noise in [-0.5, 0.5) (same generator as the tests)."""
    n = int(seconds * 16000)
    out = np.empty(n, dtype=np.float32)
    s = seed & 0xFFFFFFFFFFFFFFFF
    mask = 0xFFFFFFFFFFFFFFFF
    for i in range(n):
        s ^= (s >> 12)
        s ^= (s << 25) & mask
        s ^= (s >> 27)
        v = (s * 0x2545F4914F6CDD1D) & mask
        out[i] = np.float32((v >> 40) / float(1 << 24) - 0.5)
    return out


def run(model, audio, **kw):
    segments, info = model.transcribe(audio, vad_filter=False, **kw)
    out = []
    for s in segments:
        seg = {
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": s.tokens,
            "avg_logprob": s.avg_logprob,
            "no_speech_prob": s.no_speech_prob,
            "compression_ratio": s.compression_ratio,
            "temperature": s.temperature,
        }
        if s.words is not None:
            seg["words"] = [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                for w in s.words
            ]
        out.append(seg)
    return {"settings": {k: v for k, v in kw.items()}, "segments": out,
            "text": "".join(s["text"] for s in out)}


def main():
    model = WhisperModel(str(ROOT / "models/whisper-tiny.en"), device="cpu",
                         compute_type="float32", cpu_threads=1)
    audio = jfk()
    cases = {
        "jfk_beam5": run(model, audio, without_timestamps=True),
        "jfk_beam5_timestamps": run(model, audio),
        "jfk_beam5_words": run(model, audio, word_timestamps=True),
        "jfk_greedy_words": run(model, audio, beam_size=1, word_timestamps=True),
        "silence_10s": run(model, np.zeros(160000, dtype=np.float32)),
        "silence_10s_greedy_no_fallback": run(
            model, np.zeros(160000, dtype=np.float32), beam_size=1, temperature=0.0,
            no_speech_threshold=None, log_prob_threshold=None,
            compression_ratio_threshold=None),
        "noise_10s": run(model, noise(10.0, 20261205)),
        "noise_10s_greedy_no_fallback": run(
            model, noise(10.0, 20261205), beam_size=1, temperature=0.0,
            no_speech_threshold=None, log_prob_threshold=None,
            compression_ratio_threshold=None),
        # Quiet noise makes greedy decoding repeat itself (" . . ."), which the
        # compression-ratio check catches: fallback to sampling.
        "quiet_noise_10s_greedy_no_fallback": run(
            model, noise(10.0, 1) * np.float32(0.01), beam_size=1, temperature=0.0,
            no_speech_threshold=None, log_prob_threshold=None,
            compression_ratio_threshold=None),
        "quiet_noise_10s_fallback_no_skip": run(
            model, noise(10.0, 1) * np.float32(0.01), no_speech_threshold=None),
        "quiet_noise_10s": run(model, noise(10.0, 1) * np.float32(0.01)),
    }
    doc = {
        "tool": f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}, "
                "compute_type float32, cpu_threads 1, vad_filter False, other settings "
                "faster-whisper's transcribe() defaults (beam_size 5, best_of 5, temperatures "
                "0..1 step 0.2, compression_ratio_threshold 2.4, log_prob_threshold -1, "
                "no_speech_threshold 0.6) unless listed in a case's settings",
        "model": "models/whisper-tiny.en (CTranslate2, float16 weights)",
        "noise": "xorshift64* (shift 12, 25, 27; multiplier 0x2545F4914F6CDD1D), "
                 "sample = (v >> 40) / 2^24 - 0.5, seed 20261205, 16 kHz",
        "cases": cases,
    }
    path = ROOT / "testdata/goldens/faster_whisper_decoding.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    for k, v in cases.items():
        print(k, repr(v["text"]), file=sys.stderr)


if __name__ == "__main__":
    main()

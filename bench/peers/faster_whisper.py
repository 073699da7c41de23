#!/usr/bin/env python3
"""Peer of `emily bench whisper`: faster-whisper (CTranslate2) on the same
CTranslate2 model directory and audio, decoding as the bench decodes
(timestamps, temperature 0 without fallback, English, no VAD).

One configuration per process, as the bench runs it: after loading the model
and one warm-up transcription of samples/jfk.wav, `--runs N` times the input
and prints a JSON line {"warm_ms": median, "text": ...}; `--runs 0` loads and
transcribes once (the bench times the whole process).

Needs `python3 -m pip install faster-whisper`; the bench uses
bench/peers/.venv/bin/python when that venv exists. Nothing is fetched."""
import argparse
import json
import os
import statistics
import sys
import time

# This file shares the package's name: keep its own folder off the import path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default="samples/jfk.wav")
    ap.add_argument("--model", default="models/whisper-tiny.en")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--beam-size", type=int, default=1)
    a = ap.parse_args()

    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    m = WhisperModel(a.model, device="cpu", compute_type=a.compute_type, cpu_threads=a.threads)

    def transcribe(samples):
        segs, _ = m.transcribe(samples, beam_size=a.beam_size, temperature=0.0,
                               vad_filter=False, language="en")
        return "".join(s.text for s in segs)

    if a.runs == 0:
        print(json.dumps({"text": transcribe(decode_audio(a.audio)).strip()}))
        return 0
    # Decoded once, outside the timing (as the bench's own child does).
    audio = decode_audio(a.audio)
    transcribe(decode_audio("samples/jfk.wav"))
    times, text = [], ""
    for _ in range(a.runs):
        t = time.perf_counter()
        text = transcribe(audio)
        times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"warm_ms": statistics.median(times), "text": text.strip()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

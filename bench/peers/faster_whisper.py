#!/usr/bin/env python3
"""Peer benchmark: faster-whisper (CTranslate2) on the same audio and model as
`emily bench whisper`: beam 1, no VAD, without timestamps, warm, model load
excluded, median of N runs, float32 and int8, at 1 and 2 threads, peak RSS.

Needs `python3 -m pip install faster-whisper`. Uses the local CTranslate2
model directory (models/whisper-tiny.en), so nothing is fetched."""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import os

# This file shares the package's name: keep its own folder off the import path.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]


def child(a):
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    m = WhisperModel(a.model, device="cpu", compute_type=a.compute_type, cpu_threads=a.threads)
    audio = decode_audio(a.audio)

    def once():
        segs, _ = m.transcribe(audio, beam_size=1, vad_filter=False, temperature=0.0,
                               without_timestamps=True, language="en")
        return "".join(s.text for s in segs)

    once()
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        once()
        times.append((time.perf_counter() - t) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"faster-whisper {a.compute_type:<8} threads {a.threads}: median {statistics.median(times):7.1f} ms, peak RSS {rss:5.0f} MB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", default="samples/jfk.wav")
    ap.add_argument("--model", default="models/whisper-tiny.en")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compute-type", default="")
    a = ap.parse_args()
    if a.threads:
        return child(a)
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return 1
    for threads in (1, 2):
        for ct in ("float32", "int8"):
            subprocess.run([sys.executable, __file__, "--audio", a.audio, "--model", a.model,
                            "--runs", str(a.runs), "--threads", str(threads), "--compute-type", ct], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reference language detection of faster-whisper for the language tests
(crates/emily-models/tests/whisper_language.rs): the detected language, its
probability and the three most likely languages, on samples/jfk.wav and the
espeak-ng clips of testdata/audio, with the multilingual base model.

Run once by hand (needs `pip install faster-whisper` in a virtual environment
and the fetched models/whisper-base); writes the JSON to standard output. The
tests never run it.

    python scripts/goldens/faster_whisper_language.py > testdata/goldens/faster_whisper_language.json
"""

import json
import os
import sys
from pathlib import Path

import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

ROOT = Path(__file__).resolve().parents[2]
CLIPS = [
    ("jfk", "samples/jfk.wav"),
    ("de", "testdata/audio/espeak_de.flac"),
    ("fr", "testdata/audio/espeak_fr.flac"),
    ("es", "testdata/audio/espeak_es.flac"),
]


def main():
    os.chdir(ROOT)
    m = WhisperModel("models/whisper-base", device="cpu", compute_type="float32", cpu_threads=1)
    out = {}
    for name, path in CLIPS:
        segs, info = m.transcribe(decode_audio(path), beam_size=5, vad_filter=False)
        text = "".join(s.text for s in segs)
        top = sorted(info.all_language_probs, key=lambda x: -x[1])[:3]
        out[name] = {"audio": path, "language": info.language,
                     "probability": info.language_probability, "top3": top, "text": text.strip()}
        print(name, out[name], file=sys.stderr)
    print(json.dumps({
        "tool": f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}, "
                "compute_type float32, cpu_threads 1, transcribe(beam_size=5, vad_filter=False), "
                "language detected (info.language, info.language_probability, the top three of "
                "info.all_language_probs)",
        "model": "models/whisper-base (CTranslate2, float16 weights)",
        "cases": out,
    }, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

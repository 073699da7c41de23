#!/usr/bin/env python3
"""Golden subtitles from openai-whisper's own writers (whisper/utils.py:
WriteSRT, WriteVTT and their word-level layout: max_line_width,
max_line_count, max_words_per_line, highlight_words), for
testdata/goldens/openai_subtitles.json.

The input is faster-whisper's JFK word timestamps (the `jfk_beam5_words` case
of testdata/goldens/faster_whisper_decoding.json), repeated after a 15 s
pause (so the long-pause rule is exercised), plus a segment-level transcript
(no words) with a `-->` in its text.

utils.py needs only the standard library; it is read from the openai-whisper
sdist, never installed:

    python3 -m pip download --no-deps --no-binary openai-whisper openai-whisper==20250625 -d /tmp/ow
    tar -xzf /tmp/ow/openai_whisper-20250625.tar.gz -C /tmp/ow
    python3 scripts/goldens/openai_subtitles.py /tmp/ow/openai_whisper-20250625/whisper/utils.py \\
        > testdata/goldens/openai_subtitles.json
"""
import copy
import importlib.util
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

OPTIONS = [
    {},
    {"max_line_width": 20},
    {"max_line_width": 20, "max_line_count": 2},
    {"max_line_width": 42, "max_line_count": 1, "highlight_words": True},
    {"highlight_words": True},
    {"max_words_per_line": 4},
    {"max_line_width": 30, "max_line_count": 3, "max_words_per_line": 5},
]


def main():
    spec = importlib.util.spec_from_file_location("whisper_utils", sys.argv[1])
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    fw = json.loads((ROOT / "testdata/goldens/faster_whisper_decoding.json").read_text())
    segments = []
    for shift in (0.0, 26.0):
        for s in fw["cases"]["jfk_beam5_words"]["segments"]:
            words = [{"word": w["word"], "start": round(w["start"] + shift, 2),
                      "end": round(w["end"] + shift, 2)} for w in s["words"]]
            segments.append({"start": round(s["start"] + shift, 2), "end": round(s["end"] + shift, 2),
                             "text": s["text"], "words": words})
    plain = [{"start": 0.0, "end": 2.5, "text": " Press A --> B now."},
             {"start": 2.5, "end": 3725.25, "text": " Then rest."}]
    cases = []
    for inp, opts_list in (("words", OPTIONS), ("plain", [{}])):
        result = {"segments": segments if inp == "words" else plain}
        for opts in opts_list:
            out = {"input": inp, "options": opts}
            for name, writer in (("srt", utils.WriteSRT), ("vtt", utils.WriteVTT)):
                buf = io.StringIO()
                writer(".").write_result(copy.deepcopy(result), buf, dict(opts))
                out[name] = buf.getvalue()
            cases.append(out)
    print(json.dumps({
        "tool": "openai-whisper 20250625 whisper/utils.py WriteSRT/WriteVTT.write_result(result, file, options)",
        "inputs": {"words": segments, "plain": plain},
        "cases": cases,
    }, indent=1))


if __name__ == "__main__":
    main()

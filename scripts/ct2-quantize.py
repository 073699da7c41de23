#!/usr/bin/env python3
"""Re-quantize a CTranslate2 Whisper directory with CTranslate2's own converter code.

    python scripts/ct2-quantize.py SRC_DIR DEST_DIR [int8_float16|int8_float32|int8|...]

Reads SRC_DIR/model.bin (any float CTranslate2 Whisper model), fills a
`ctranslate2.specs.WhisperSpec` with its variables, lets CTranslate2 quantize
and save it (`spec.optimize(quantization)`, `spec.save`), and copies
config.json, tokenizer.json and vocabulary.txt. Needs the `ctranslate2` and
`numpy` packages (the benchmark venv has them: bench/peers/setup-venv.sh).
Used to check that emily reads CTranslate2's own int8 files (the test suite
writes the same bytes itself; see crates/emily-models/tests/whisper_int8.rs).
"""
import os
import re
import shutil
import struct
import sys

import numpy as np
import ctranslate2
from ctranslate2.specs import whisper_spec

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_model_bin(path):
    data = open(path, "rb").read()
    pos = 0

    def u32():
        nonlocal pos
        (v,) = struct.unpack_from("<I", data, pos)
        pos += 4
        return v

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<H", data, pos)
        pos += 2
        s = data[pos : pos + n - 1].decode()
        pos += n
        return s

    version, spec, revision = u32(), string(), u32()
    assert spec == "WhisperSpec", spec
    variables = {}
    for _ in range(u32()):
        name = string()
        rank = data[pos]
        pos += 1
        dims = struct.unpack_from("<%dI" % rank, data, pos)
        pos += 4 * rank
        dtype = data[pos]
        pos += 1
        size = u32()
        variables[name] = np.frombuffer(data[pos : pos + size], dtype=DTYPES[dtype]).reshape(dims)
        pos += size
    aliases = {string(): string() for _ in range(u32())}
    return variables, aliases


def main():
    src, dest = sys.argv[1], sys.argv[2]
    quantization = sys.argv[3] if len(sys.argv) > 3 else "int8_float16"
    variables, _ = read_model_bin(src + "/model.bin")
    layers = lambda side: len({m.group(1) for n in variables if (m := re.match(side + r"/layer_(\d+)/", n))})
    heads = lambda side: int(variables[side + "/num_heads"])
    spec = whisper_spec.WhisperSpec(layers("encoder"), heads("encoder"), layers("decoder"), heads("decoder"))
    for name, value in variables.items():
        obj, parts = spec, name.split("/")
        for part in parts[:-1]:
            m = re.fullmatch(r"(.+)_(\d+)", part)
            if m and isinstance(getattr(obj, m.group(1), None), list):
                obj = getattr(obj, m.group(1))[int(m.group(2))]
            else:
                obj = getattr(obj, part)
        current = getattr(obj, parts[-1], None)
        if current is None or isinstance(current, str) or not np.isscalar(current):
            setattr(obj, parts[-1], np.array(value))
    spec.decoder.projection.weight = spec.decoder.embeddings.weight
    spec.register_vocabulary(open(src + "/vocabulary.txt", encoding="utf-8").read().split("\n")[:-1])
    spec.validate()
    spec.optimize(quantization=quantization)
    os.makedirs(dest, exist_ok=True)
    spec.save(dest)
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(src + "/" + f, dest + "/" + f)
    print("wrote", dest, "with CTranslate2", ctranslate2.__version__, quantization)


if __name__ == "__main__":
    main()

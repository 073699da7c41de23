#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper directory (model.bin, config.json,
tokenizer.json, as `scripts/fetch-models.sh` fetches them) to whisper.cpp's
ggml model file with f16 matrices, so whisper.cpp runs on exactly the weights
`emily bench whisper` and faster-whisper use. q8_0 is made from its output by
whisper.cpp's own quantize tool (bench/peers/whisper_cpp.sh model).

    python3 bench/peers/ct2_to_ggml.py models/whisper-tiny.en OUT.bin

Needs numpy. The mel filter bank is OpenAI's 80-band one kept in
testdata/goldens/whisper_mel_filters_80.npy (models with 80 mel bands only).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MEL_FILTERS = HERE.parent.parent / "testdata" / "goldens" / "whisper_mel_filters_80.npy"
# CTranslate2 dtype codes → numpy.
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def fail(msg):
    sys.exit(f"ct2_to_ggml: {msg}")


class Reader:
    """Little-endian reads over model.bin with bounds checks."""

    def __init__(self, data, path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n, what):
        if n < 0 or self.pos + n > len(self.data):
            fail(f"{self.path}: truncated while reading {what}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what):
        n = self.u("H", what)
        return self.take(n, what).rstrip(b"\0").decode("utf-8")


def read_model_bin(path):
    """CTranslate2 model.bin (binary versions 5 and 6): name → numpy array."""
    r = Reader(path.read_bytes(), path)
    version = r.u("I", "the binary version")
    if version not in (5, 6):
        fail(f"{path}: unsupported binary version {version}")
    r.string("the spec name")
    r.u("I", "the spec revision")
    variables = {}
    for _ in range(r.u("I", "the variable count")):
        name = r.string("a variable name")
        rank = r.u("B", f"the rank of {name}")
        dims = [r.u("I", f"the dims of {name}") for _ in range(rank)]
        code = r.u("B", f"the dtype of {name}")
        if code not in CT2_DTYPES:
            fail(f"{path}: variable {name} has dtype code {code} (int8/bf16 models are not converted)")
        nbytes = r.u("I", f"the size of {name}")
        dtype = np.dtype(CT2_DTYPES[code])
        if nbytes != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
            fail(f"{path}: variable {name} has {nbytes} bytes for {dims} {dtype}")
        variables[name] = np.frombuffer(r.take(nbytes, name), dtype=dtype).reshape(dims)
    for _ in range(r.u("I", "the alias count")):
        alias, target = r.string("an alias"), r.string("an alias target")
        if target not in variables:
            fail(f"{path}: alias {alias} points to missing {target}")
        variables[alias] = variables[target]
    return variables


def bytes_to_unicode():
    """GPT-2's byte ↔ printable-character table of byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def layer_tensors(v, side, i):
    """whisper.cpp's (OpenAI's) names of one block's tensors."""
    src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
    out = {}

    def norm(s, d):
        out[f"{d}.weight"], out[f"{d}.bias"] = v[f"{s}/gamma"], v[f"{s}/beta"]

    def linear(s, d, bias=True):
        out[f"{d}.weight"] = v[f"{s}/weight"]
        if bias:
            out[f"{d}.bias"] = v[f"{s}/bias"]

    def split(s, names):
        # A fused projection: equal row blocks; the key has no bias.
        w, b = v[f"{s}/weight"], v[f"{s}/bias"]
        rows = w.shape[0] // len(names)
        for k, d in enumerate(names):
            out[f"{d}.weight"] = w[k * rows:(k + 1) * rows]
            if not d.endswith(".key"):
                out[f"{d}.bias"] = b[k * rows:(k + 1) * rows]

    norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
    split(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
    linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
    if side == "decoder":
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        split(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
    norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
    linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
    linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
    return out


def count_layers(v, side):
    n = 0
    while f"{side}/layer_{n}/self_attention/linear_0/weight" in v:
        n += 1
    return n


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    v = read_model_bin(model_dir / "model.bin")
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in vocab] != list(range(len(vocab))):
        fail("tokenizer.json: the BPE vocabulary ids are not 0..n-1")
    n_vocab = v["decoder/embeddings/weight"].shape[0]
    n_mels = v["encoder/conv1/weight"].shape[1]
    if n_mels != 80:
        fail(f"{n_mels} mel bands: only the 80-band filter bank is kept in the repository")
    # Stored (n_freq 201, n_mels 80); whisper.cpp reads (n_mels, n_freq).
    filters = np.ascontiguousarray(np.load(MEL_FILTERS).astype(np.float32).T)
    if filters.shape != (80, 201):
        fail(f"{MEL_FILTERS}: shape {filters.shape}, expected (201, 80) before transposing")
    enc_layers, dec_layers = count_layers(v, "encoder"), count_layers(v, "decoder")
    d = v["encoder/conv1/weight"].shape[0]
    if "encoder/num_heads" not in v or "decoder/num_heads" not in v:
        fail(f"{model_dir}/model.bin: no encoder/decoder num_heads")
    enc_heads, dec_heads = int(v["encoder/num_heads"]), int(v["decoder/num_heads"])
    tensors = {
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        "encoder.conv1.weight": v["encoder/conv1/weight"],
        "encoder.conv1.bias": v["encoder/conv1/bias"].reshape(-1, 1),
        "encoder.conv2.weight": v["encoder/conv2/weight"],
        "encoder.conv2.bias": v["encoder/conv2/bias"].reshape(-1, 1),
    }
    for i in range(enc_layers):
        tensors.update(layer_tensors(v, "encoder", i))
    tensors["encoder.ln_post.weight"] = v["encoder/layer_norm/gamma"]
    tensors["encoder.ln_post.bias"] = v["encoder/layer_norm/beta"]
    tensors["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    tensors["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    for i in range(dec_layers):
        tensors.update(layer_tensors(v, "decoder", i))
    tensors["decoder.ln.weight"] = v["decoder/layer_norm/gamma"]
    tensors["decoder.ln.bias"] = v["decoder/layer_norm/beta"]

    n_audio_ctx = v["encoder/position_encodings/encodings"].shape[0]
    n_text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    byte_of = bytes_to_unicode()
    with open(out_path, "wb") as f:
        f.write(struct.pack("<i", 0x67676D6C))
        f.write(struct.pack("<11i", n_vocab, n_audio_ctx, d, enc_heads, enc_layers,
                            n_text_ctx, d, dec_heads, dec_layers, n_mels, 1))
        f.write(struct.pack("<2i", *filters.shape))
        f.write(filters.tobytes())
        f.write(struct.pack("<i", len(vocab)))
        for text, _ in vocab:
            b = bytes(byte_of[c] for c in text)
            f.write(struct.pack("<i", len(b)))
            f.write(b)
        for name, t in tensors.items():
            # Matrices (rank ≥ 2) f16 as whisper.cpp's converter writes them;
            # vectors, conv biases and position tables f32.
            small = t.ndim < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias") \
                or name.endswith("positional_embedding")
            data = np.ascontiguousarray(t, dtype=np.float32 if small else np.float16)
            enc = name.encode()
            f.write(struct.pack("<3i", data.ndim, len(enc), 0 if small else 1))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            f.write(enc)
            f.write(data.tobytes())
    print(f"wrote {out_path}: {len(tensors)} tensors, {enc_layers}+{dec_layers} layers, d {d}, {enc_heads}/{dec_heads} heads, vocab {n_vocab}")


if __name__ == "__main__":
    main()

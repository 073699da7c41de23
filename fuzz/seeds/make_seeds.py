#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs (small, valid files that reach deep into each
parser): a complete tiny Whisper model as CTranslate2 model.bin and as a Hugging
Face config.json + model.safetensors, a cut-down Whisper tokenizer.json, and short
WAVs of every sample format. Run from the repository root:
    python3 fuzz/seeds/make_seeds.py
"""
import json, os, struct, wave

ROOT = os.path.dirname(os.path.abspath(__file__))
D, F, MELS, LAYERS, VOCAB, ACTX, TCTX, HEADS = 8, 16, 4, 1, 24, 6, 6, 2


def out(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def values(n, k=0):
    return [((i * 7 + k) % 13 - 6) / 10 for i in range(n)]


def hf_tensors():
    t = {
        "model.encoder.conv1.weight": [D, MELS, 3], "model.encoder.conv1.bias": [D],
        "model.encoder.conv2.weight": [D, D, 3], "model.encoder.conv2.bias": [D],
        "model.encoder.embed_positions.weight": [ACTX, D],
        "model.decoder.embed_tokens.weight": [VOCAB, D],
        "model.decoder.embed_positions.weight": [TCTX, D],
    }
    for side in ["encoder", "decoder"]:
        atts = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
        for i in range(LAYERS):
            p = f"model.{side}.layers.{i}"
            for a in atts:
                for proj in ["q_proj", "k_proj", "v_proj", "out_proj"]:
                    t[f"{p}.{a}.{proj}.weight"] = [D, D]
                    if proj != "k_proj":
                        t[f"{p}.{a}.{proj}.bias"] = [D]
                t[f"{p}.{a}_layer_norm.weight"] = [D]
                t[f"{p}.{a}_layer_norm.bias"] = [D]
            t[f"{p}.fc1.weight"], t[f"{p}.fc1.bias"] = [F, D], [F]
            t[f"{p}.fc2.weight"], t[f"{p}.fc2.bias"] = [D, F], [D]
            t[f"{p}.final_layer_norm.weight"] = [D]
            t[f"{p}.final_layer_norm.bias"] = [D]
        t[f"model.{side}.layer_norm.weight"] = [D]
        t[f"model.{side}.layer_norm.bias"] = [D]
    return t


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors():
    header, data = {}, b""
    for k, (name, shape) in enumerate(sorted(hf_tensors().items())):
        raw = struct.pack(f"<{numel(shape)}f", *values(numel(shape), k))
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def hf_config():
    return json.dumps({
        "vocab_size": VOCAB, "num_mel_bins": MELS, "d_model": D,
        "encoder_layers": LAYERS, "decoder_layers": LAYERS,
        "encoder_attention_heads": HEADS, "decoder_attention_heads": HEADS,
        "encoder_ffn_dim": F, "decoder_ffn_dim": F,
        "max_source_positions": ACTX, "max_target_positions": TCTX,
    }).encode()


def ct2_string(s):
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def ct2_var(name, shape, dtype=0, vals=None):
    n = numel(shape)
    raw = struct.pack(f"<{n}f", *(vals or values(n))) if dtype == 0 else struct.pack(f"<{n}i", *(vals or [0] * n))
    return ct2_string(name) + bytes([len(shape)]) + b"".join(struct.pack("<I", d) for d in shape) \
        + bytes([dtype]) + struct.pack("<I", len(raw)) + raw


def model_bin():
    v = []
    def lin(name, o, i):
        v.append((f"{name}/weight", [o, i])); v.append((f"{name}/bias", [o]))
    def norm(name):
        v.append((f"{name}/gamma", [D])); v.append((f"{name}/beta", [D]))
    for side in ["encoder", "decoder"]:
        for i in range(LAYERS):
            p = f"{side}/layer_{i}"
            norm(f"{p}/self_attention/layer_norm")
            lin(f"{p}/self_attention/linear_0", 3 * D, D)
            lin(f"{p}/self_attention/linear_1", D, D)
            if side == "decoder":
                norm(f"{p}/attention/layer_norm")
                lin(f"{p}/attention/linear_0", D, D)
                lin(f"{p}/attention/linear_1", 2 * D, D)
                lin(f"{p}/attention/linear_2", D, D)
            norm(f"{p}/ffn/layer_norm")
            lin(f"{p}/ffn/linear_0", F, D)
            lin(f"{p}/ffn/linear_1", D, F)
        norm(f"{side}/layer_norm")
    v += [("encoder/conv1/weight", [D, MELS, 3]), ("encoder/conv1/bias", [D]),
          ("encoder/conv2/weight", [D, D, 3]), ("encoder/conv2/bias", [D]),
          ("encoder/position_encodings/encodings", [ACTX, D]),
          ("decoder/embeddings/weight", [VOCAB, D]),
          ("decoder/position_encodings/encodings", [TCTX, D])]
    body = b"".join(ct2_var(n, s) for n, s in v)
    scalars = [("encoder/num_heads", HEADS), ("decoder/num_heads", HEADS),
               ("decoder/activation", 3), ("decoder/pre_norm", 1)]
    body += b"".join(ct2_var(n, [], 3, [x]) for n, x in scalars)
    aliases = struct.pack("<I", 1) + ct2_string("decoder/projection/weight") + ct2_string("decoder/embeddings/weight")
    return struct.pack("<I", 6) + ct2_string("WhisperSpec") + struct.pack("<I", 3) \
        + struct.pack("<I", len(v) + len(scalars)) + body + aliases


def tokenizer(real):
    t = json.load(open(real))
    keep = 200
    vocab = {k: i for k, i in t["model"]["vocab"].items() if i < keep}
    merges = []
    for m in t["model"]["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    t["model"]["vocab"], t["model"]["merges"] = vocab, merges
    names = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|translate|>",
             "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    t["added_tokens"] = [dict(t["added_tokens"][0], id=keep + i, content=c) for i, c in enumerate(names)]
    return json.dumps(t).encode()


def wavs():
    for name, width, channels, rate in [("s16_mono_16k", 2, 1, 16000), ("u8_stereo_8k", 1, 2, 8000),
                                        ("s24_mono_44k1", 3, 1, 44100), ("s32_stereo_48k", 4, 2, 48000)]:
        path = os.path.join(ROOT, "audio_decode", name + ".wav")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with wave.open(path, "wb") as w:
            w.setnchannels(channels); w.setsampwidth(width); w.setframerate(rate)
            w.writeframes(bytes((i * 37) % 256 for i in range(600 * width * channels)))


if __name__ == "__main__":
    repo = os.path.dirname(os.path.dirname(ROOT))
    out("ct2_model_bin", "tiny_whisper.bin", model_bin())
    cfg = hf_config()
    out("hf_safetensors", "tiny_whisper", struct.pack("<H", len(cfg)) + cfg + safetensors())
    out("tokenizer_json", "whisper_cut.json", tokenizer(os.path.join(repo, "models/whisper-tiny.en/tokenizer.json")))
    wavs()
    for f in ["tone_1khz_22k05_mono.ogg", "tone_440hz_44k1_stereo.flac", "tone_440hz_44k1_stereo.mp3"]:
        out("audio_decode", f, open(os.path.join(repo, "crates/emily-models/tests/data", f), "rb").read())

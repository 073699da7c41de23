import json, sys
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
import faster_whisper, ctranslate2
m = WhisperModel("models/whisper-base", device="cpu", compute_type="float32", cpu_threads=1)
out = {}
for name, path in [("jfk", "samples/jfk.wav"), ("de", "testdata/audio/espeak_de.flac"), ("fr", "testdata/audio/espeak_fr.flac"), ("es", "testdata/audio/espeak_es.flac")]:
    a = decode_audio(path)
    segs, info = m.transcribe(a, beam_size=5, vad_filter=False)
    text = "".join(s.text for s in segs)
    top = sorted(info.all_language_probs, key=lambda x: -x[1])[:3]
    out[name] = {"audio": path, "language": info.language, "probability": info.language_probability, "top3": top, "text": text.strip()}
    print(name, out[name], file=sys.stderr)
print(json.dumps({"tool": f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}, compute_type float32, cpu_threads 1, transcribe(beam_size=5, vad_filter=False), language detected (info.language, info.language_probability, the top three of info.all_language_probs)", "model": "models/whisper-base (CTranslate2, float16 weights)", "cases": out}, indent=1, ensure_ascii=False))

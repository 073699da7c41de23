"""The official OpenAI Python client against `emily serve` (run by
scripts/test-serve-clients.sh): transcriptions in json, text and srt give the
JFK sentence; a wrong key is refused."""

import os
import sys

import openai
from openai import OpenAI

JFK = ("And so my fellow Americans ask not what your country can do for you, "
       "ask what you can do for your country.")

base = os.environ["EMILY_URL"] + "/v1"
root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
wav = os.path.join(root, "samples", "jfk.wav")

client = OpenAI(base_url=base, api_key="client-test-key")

with open(wav, "rb") as f:
    t = client.audio.transcriptions.create(model="whisper-1", file=f)
assert t.text == JFK, repr(t.text)

with open(wav, "rb") as f:
    text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
assert text.strip() == JFK, repr(text)

with open(wav, "rb") as f:
    srt = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
assert srt.startswith("1\n00:00:00,000 --> "), repr(srt)

with open(wav, "rb") as f:
    v = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json",
        timestamp_granularities=["segment"])
assert len(v.segments) == 2 and v.duration == 11.0, v

models = [m.id for m in client.models.list()]
assert models == ["whisper-tiny.en"], models

bad = OpenAI(base_url=base, api_key="wrong", max_retries=0)
try:
    with open(wav, "rb") as f:
        bad.audio.transcriptions.create(model="whisper-1", file=f)
    sys.exit("a wrong key was accepted")
except openai.AuthenticationError:
    pass

print("openai client: transcription json/text/srt/verbose_json, models, auth ok")

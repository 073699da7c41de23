"""The official OpenAI Python client against `emily serve` (run by the
`openai_python_client` test and scripts/test-serve-clients.sh):
transcriptions in json, text, srt and verbose_json give the JFK sentence; a
wrong key is refused; with a language model (EMILY_LLM_ID set) a streamed
chat completion gives the same text as a plain one (EXPECT_CHAT, when set:
exactly that text)."""

import os
import sys

import openai
from openai import OpenAI

JFK = ("And so my fellow Americans ask not what your country can do for you "
       "ask what you can do for your country.")

base = os.environ["EMILY_URL"] + "/v1"
llm_id = os.environ.get("EMILY_LLM_ID")
expect_chat = os.environ.get("EXPECT_CHAT")
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
assert models == ["whisper-tiny.en"] + ([llm_id] if llm_id else []), models

bad = OpenAI(base_url=base, api_key="wrong", max_retries=0)
try:
    with open(wav, "rb") as f:
        bad.audio.transcriptions.create(model="whisper-1", file=f)
    sys.exit("a wrong key was accepted")
except openai.AuthenticationError:
    pass

done = "transcription json/text/srt/verbose_json, models, auth"
if llm_id:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    stream = client.chat.completions.create(
        model=llm_id, messages=messages, temperature=0, max_tokens=24, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.strip(), repr(streamed)
    if expect_chat is not None:
        assert streamed == expect_chat, (streamed, expect_chat)
    whole = client.chat.completions.create(
        model=llm_id, messages=messages, temperature=0, max_tokens=24)
    assert whole.choices[0].message.content == streamed, whole
    assert whole.usage.completion_tokens > 0, whole.usage
    done += ", streamed chat"

print("openai client: " + done + " ok")

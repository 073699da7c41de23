//! The live-transcription WebSocket: audio in chunks, partial text while it
//! streams, final timed segments and `done` after `stop`.

mod common;

use common::{jfk_pcm, model_dir, start};
use emily_serve::ServeConfig;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_jfk_gives_partials_then_final_segments() {
    let mut c = ServeConfig::new(model_dir());
    c.api_key = Some("live-key".into());
    let mut s = start(c);
    let url = format!("ws://{}/v1/audio/live?api_key=live-key", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // JFK twice with a pause, in 0.5 s chunks of f32 little-endian samples.
    let pcm = jfk_pcm();
    let mut audio: Vec<f32> = Vec::new();
    for _ in 0..2 {
        audio.extend(pcm.iter().map(|&s| s as f32 / 32768.0));
        audio.extend(std::iter::repeat_n(0.0, 16_000));
    }
    // The first 2 s, then a partial is awaited (audio sent all at once is
    // coalesced into one run: see the next test), then the rest and `stop`.
    let mut chunks = audio.chunks(8_000);
    for chunk in chunks.by_ref().take(4) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    let mut partials = 0;
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(t)) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(v["type"], "partial", "{v}");
        partials += 1;
        break;
    }
    for chunk in chunks {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    ws.send(Message::Text("stop".into())).await.unwrap();
    let mut finals = Vec::new();
    let mut done = false;
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(t)) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str().unwrap() {
            "partial" => partials += 1,
            "final" => finals.extend(v["segments"].as_array().unwrap().clone()),
            "done" => {
                done = true;
                break;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(done);
    assert!(partials >= 1, "no partial text");
    let text: String = finals
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string() + " ")
        .collect();
    assert_eq!(
        text.matches("ask not what your country").count(),
        2,
        "{text}"
    );
    let mut last = 0.0;
    for seg in &finals {
        let (a, b) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(a >= last - 0.05 && b >= a && b <= 25.0, "{finals:?}");
        last = b;
    }
    // Without the key the upgrade is refused.
    let bad = format!("ws://{}/v1/audio/live", s.addr);
    assert!(tokio_tungstenite::connect_async(bad).await.is_err());
    s.stop().unwrap();
}

/// A client that sends faster than real time builds no backlog: audio that
/// arrives while a transcription runs is coalesced into the next run, so 20 s
/// sent at once cost a few runs, not one per second of audio, and `stop` is
/// still answered with the whole text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_audio_is_coalesced_not_queued() {
    let mut s = start(ServeConfig::new(model_dir()));
    let url = format!("ws://{}/v1/audio/live", s.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let pcm = jfk_pcm();
    let audio: Vec<f32> = pcm
        .iter()
        .map(|&s| s as f32 / 32768.0)
        .chain(std::iter::repeat_n(0.0, 9 * 16_000))
        .collect();
    let seconds = audio.len() / 16_000;
    assert!(seconds >= 20);
    // 0.1 s chunks, all sent before any answer is read.
    let messages: Vec<Message> = audio
        .chunks(1_600)
        .map(|c| Message::Binary(c.iter().flat_map(|s| s.to_le_bytes()).collect()))
        .chain([Message::Text("stop".into())])
        .collect();
    let mut sink = futures_util::stream::iter(messages.into_iter().map(Ok));
    ws.send_all(&mut sink).await.unwrap();
    let (mut partials, mut text, mut done) = (0, String::new(), false);
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(t)) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str().unwrap() {
            "partial" => partials += 1,
            "final" => {
                for seg in v["segments"].as_array().unwrap() {
                    text.push_str(seg["text"].as_str().unwrap());
                    text.push(' ');
                }
            }
            "done" => {
                done = true;
                break;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(done);
    assert!(
        partials <= 5,
        "{partials} partial runs for {seconds} s sent at once (one per second would be a backlog)"
    );
    assert!(text.contains("ask not what your country"), "{text}");
    s.stop().unwrap();
}

/// A microphone's chunks still in flight after `stop` (the browser's audio
/// thread posts a few more) must not cost the client its last messages: the
/// server reads until the client's close instead of dropping a socket with
/// unread audio, which makes the kernel reset the connection and the client
/// lose `final` and `done` (seen as close code 1006 in the page).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_after_stop_does_not_lose_the_answer() {
    let mut s = start(ServeConfig::new(model_dir()));
    for round in 0..3 {
        let url = format!("ws://{}/v1/audio/live", s.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let audio: Vec<f32> = jfk_pcm().iter().map(|&s| s as f32 / 32768.0).collect();
        let chunk = |c: &[f32]| Message::Binary(c.iter().flat_map(|s| s.to_le_bytes()).collect());
        // Four seconds, `stop`, then three more seconds that arrive after it.
        let messages: Vec<Message> = audio[..64_000]
            .chunks(1_600)
            .map(chunk)
            .chain([Message::Text("stop".into())])
            .chain(audio[64_000..112_000].chunks(1_600).map(chunk))
            .collect();
        let mut sink = futures_util::stream::iter(messages.into_iter().map(Ok));
        ws.send_all(&mut sink).await.unwrap();
        let mut done = false;
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "done" {
                        done = true;
                    }
                }
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(e) => panic!("round {round}: the connection failed before `done`: {e}"),
            }
        }
        assert!(done, "round {round}: no `done`");
    }
    s.stop().unwrap();
}

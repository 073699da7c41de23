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
    for chunk in audio.chunks(8_000) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    ws.send(Message::Text("stop".into())).await.unwrap();
    let mut partials = 0;
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

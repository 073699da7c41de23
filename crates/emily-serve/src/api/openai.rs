//! The JSON bodies of OpenAI's chat and text completion requests, read into
//! a prompt and [`GenerateOptions`]; every bad field is a 400 naming it.

use emily_models::llm::{ChatMessage, GenerateOptions, SamplingOptions};
use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;
use crate::engine::Prompt;

/// Which endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/chat/completions`: messages through the chat template.
    Chat,
    /// `/v1/completions`: a plain text prompt.
    Text,
}

/// Most stop strings (OpenAI's limit).
const MAX_STOP: usize = 4;

/// Fields both endpoints share, as sent.
#[derive(Deserialize)]
struct Body {
    messages: Option<Vec<MessageIn>>,
    prompt: Option<Value>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<Value>,
    seed: Option<u64>,
    n: Option<usize>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Value,
}

/// A parsed request.
#[derive(Clone, Debug)]
pub struct OpenAiRequest {
    /// What to generate after.
    pub prompt: Prompt,
    /// Answer as server-sent events.
    pub stream: bool,
    /// Add a last chunk with `usage` to a stream.
    pub include_usage: bool,
    max_tokens: Option<usize>,
    temperature: f32,
    top_p: f32,
    stop: Vec<String>,
    seed: u64,
}

/// A message's text: a string, or the `text` parts of a content array.
fn content_text(i: usize, v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => parts
            .iter()
            .map(
                |p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                    _ => Err(ApiError::bad_field(
                        "messages",
                        format!("messages[{i}]: only text content parts are supported"),
                    )),
                },
            )
            .collect(),
        _ => Err(ApiError::bad_field(
            "messages",
            format!("messages[{i}].content must be a string or an array of text parts"),
        )),
    }
}

/// `stop`: a string or up to four strings.
fn stop_strings(v: Option<Value>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::bad_field(
            "stop",
            format!("stop must be a string or an array of at most {MAX_STOP} strings"),
        )
    };
    let stop = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) if a.len() <= MAX_STOP => a
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    Ok(stop.into_iter().filter(|s| !s.is_empty()).collect())
}

impl OpenAiRequest {
    /// Reads a request body for endpoint `kind`.
    pub fn parse(body: &[u8], kind: Kind) -> Result<OpenAiRequest, ApiError> {
        let b: Body = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_field("body", format!("invalid JSON body: {e}")))?;
        if b.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_field("n", "only n = 1 is supported"));
        }
        let prompt = match kind {
            Kind::Chat => {
                let messages = b
                    .messages
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| ApiError::bad_field("messages", "messages must not be empty"))?;
                let messages = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        if !matches!(
                            m.role.as_str(),
                            "system" | "developer" | "user" | "assistant"
                        ) {
                            return Err(ApiError::bad_field(
                                "messages",
                                format!("messages[{i}]: unsupported role `{}`", m.role),
                            ));
                        }
                        // `developer` is OpenAI's newer name for `system`.
                        let role = if m.role == "developer" {
                            "system"
                        } else {
                            &m.role
                        };
                        Ok(ChatMessage::new(role, &content_text(i, &m.content)?))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Prompt::Chat(messages)
            }
            Kind::Text => match b.prompt {
                Some(Value::String(s)) => Prompt::Text(s),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    Prompt::Text(a[0].as_str().unwrap_or_default().to_string())
                }
                _ => {
                    return Err(ApiError::bad_field(
                        "prompt",
                        "prompt must be a string (or an array of one string)",
                    ))
                }
            },
        };
        // OpenAI's defaults: 16 tokens for text completions, up to the
        // context for chat.
        let max_tokens = b.max_completion_tokens.or(b.max_tokens).or(match kind {
            Kind::Text => Some(16),
            Kind::Chat => None,
        });
        if max_tokens == Some(0) {
            return Err(ApiError::bad_field(
                "max_tokens",
                "max_tokens must be positive",
            ));
        }
        let temperature = b.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::bad_field(
                "temperature",
                format!("temperature {temperature} is not in [0, 2]"),
            ));
        }
        let top_p = b.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad_field(
                "top_p",
                format!("top_p {top_p} is not in (0, 1]"),
            ));
        }
        Ok(OpenAiRequest {
            prompt,
            stream: b.stream,
            include_usage: b.stream_options.is_some_and(|o| o.include_usage),
            max_tokens,
            temperature,
            top_p,
            stop: stop_strings(b.stop)?,
            seed: b.seed.unwrap_or(0),
        })
    }

    /// The generation options for a model of `context` positions (no
    /// `max_tokens` = until the context is full).
    pub fn options(&self, context: usize) -> GenerateOptions {
        GenerateOptions {
            max_tokens: self.max_tokens.unwrap_or(context).min(context),
            sampling: SamplingOptions {
                temperature: self.temperature,
                top_p: self.top_p,
                seed: self.seed,
                ..SamplingOptions::default()
            },
            stop_strings: self.stop.clone(),
            ..GenerateOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str, kind: Kind) -> Result<OpenAiRequest, ApiError> {
        OpenAiRequest::parse(body.as_bytes(), kind)
    }

    #[test]
    fn chat_bodies_become_messages_and_options() {
        let r = parse(
            r#"{"model":"x","messages":[{"role":"developer","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
                "temperature":0,"top_p":0.5,"max_tokens":7,"stop":"\n","seed":3,"stream":true,
                "stream_options":{"include_usage":true}}"#,
            Kind::Chat,
        )
        .unwrap();
        match &r.prompt {
            Prompt::Chat(m) => assert_eq!(
                m,
                &vec![
                    ChatMessage::system("Be brief."),
                    ChatMessage::user("Hi there")
                ]
            ),
            p => panic!("{p:?}"),
        }
        assert!(r.stream && r.include_usage);
        let o = r.options(100);
        assert_eq!(o.max_tokens, 7);
        assert_eq!(o.stop_strings, vec!["\n".to_string()]);
        assert_eq!(
            (o.sampling.temperature, o.sampling.top_p, o.sampling.seed),
            (0.0, 0.5, 3)
        );
        // No max_tokens: up to the context; text completions default to 16.
        let r = parse(
            r#"{"messages":[{"role":"user","content":"a"}]}"#,
            Kind::Chat,
        )
        .unwrap();
        assert_eq!(r.options(100).max_tokens, 100);
        assert_eq!(r.options(100).sampling.temperature, 1.0);
        let r = parse(r#"{"prompt":["once"]}"#, Kind::Text).unwrap();
        assert_eq!(r.options(100).max_tokens, 16);
        assert!(matches!(r.prompt, Prompt::Text(ref t) if t == "once"));
    }

    #[test]
    fn bad_fields_are_400_naming_the_field() {
        let cases = [
            ("{", Kind::Chat, "body"),
            (r#"{"messages":[]}"#, Kind::Chat, "messages"),
            (
                r#"{"messages":[{"role":"tool","content":"x"}]}"#,
                Kind::Chat,
                "messages",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                Kind::Chat,
                "messages",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"temperature":3}"#,
                Kind::Chat,
                "temperature",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"top_p":0}"#,
                Kind::Chat,
                "top_p",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
                Kind::Chat,
                "n",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
                Kind::Chat,
                "stop",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"stop":[1]}"#,
                Kind::Chat,
                "stop",
            ),
            (r#"{"prompt":"x","max_tokens":0}"#, Kind::Text, "max_tokens"),
            (r#"{"prompt":["a","b"]}"#, Kind::Text, "prompt"),
            (r#"{"prompt":7}"#, Kind::Text, "prompt"),
        ];
        for (body, kind, field) in cases {
            let e = parse(body, kind).expect_err(body);
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param, Some(field), "{body}: {}", e.message);
        }
    }
}

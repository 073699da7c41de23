//! The multipart form of `/v1/audio/transcriptions` and `/translations`, as
//! OpenAI defines it: `file`, `model`, `language`, `prompt`,
//! `response_format`, `temperature`, `timestamp_granularities[]`; and
//! whisper.cpp's server's `temperature_inc` (the fallback's step).

use axum::extract::multipart::{Multipart, MultipartError};
use axum::http::StatusCode;

use super::error::ApiError;

/// The `response_format` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `{"text": ...}`.
    Json,
    /// The text alone.
    Text,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// Task, language, duration, text and timed segments.
    VerboseJson,
}

impl ResponseFormat {
    fn parse(s: &str) -> Result<ResponseFormat, ApiError> {
        Ok(match s {
            "json" => ResponseFormat::Json,
            "text" => ResponseFormat::Text,
            "srt" => ResponseFormat::Srt,
            "vtt" => ResponseFormat::Vtt,
            "verbose_json" => ResponseFormat::VerboseJson,
            other => {
                return Err(ApiError::bad_field(
                    "response_format",
                    format!(
                        "response_format `{other}` is not one of json, text, srt, vtt, verbose_json"
                    ),
                ))
            }
        })
    }

    /// Whether the answer carries segment times (decoded with timestamps).
    pub fn has_timestamps(self) -> bool {
        matches!(
            self,
            ResponseFormat::Srt | ResponseFormat::Vtt | ResponseFormat::VerboseJson
        )
    }
}

/// A parsed request.
#[derive(Debug)]
pub struct AudioForm {
    /// The uploaded file's bytes.
    pub file: Vec<u8>,
    /// Its file name (labels errors).
    pub filename: String,
    /// The requested model id, if given.
    pub model: Option<String>,
    /// ISO-639-1 language of the audio.
    pub language: Option<String>,
    /// Text that precedes the audio.
    pub prompt: Option<String>,
    /// The answer's format.
    pub response_format: ResponseFormat,
    /// Sampling temperature of the first pass (0 = greedy).
    pub temperature: f32,
    /// Step of the temperature fallback (0.2 unless given; 0 = none).
    pub temperature_inc: f32,
}

fn multipart_error(e: MultipartError) -> ApiError {
    let status = e.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body too large: {}", e.body_text())
    } else {
        format!("malformed multipart body: {}", e.body_text())
    };
    ApiError::new(status, message)
}

/// A number in [0, 1] from field `name`.
fn unit_number(name: &'static str, value: &str) -> Result<f32, ApiError> {
    value
        .parse::<f32>()
        .ok()
        .filter(|t| (0.0..=1.0).contains(t))
        .ok_or_else(|| {
            ApiError::bad_field(
                name,
                format!("{name} must be a number in [0, 1], got `{value}`"),
            )
        })
}

impl AudioForm {
    /// Reads every field; unknown fields are ignored, as OpenAI's are.
    pub async fn read(mut mp: Multipart) -> Result<AudioForm, ApiError> {
        let mut file = None;
        let mut model = None;
        let mut language = None;
        let mut prompt = None;
        let mut response_format = ResponseFormat::Json;
        let mut temperature = 0.0f32;
        let mut temperature_inc = 0.2f32;
        let mut granularities = Vec::new();
        while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                let filename = field.file_name().unwrap_or("file").to_string();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                file = Some((bytes.to_vec(), filename));
                continue;
            }
            let value = field.text().await.map_err(multipart_error)?;
            let value = value.trim().to_string();
            match name.as_str() {
                "model" => model = Some(value),
                "language" if !value.is_empty() => language = Some(value.to_lowercase()),
                "prompt" if !value.is_empty() => prompt = Some(value),
                "response_format" => response_format = ResponseFormat::parse(&value)?,
                "temperature" => temperature = unit_number("temperature", &value)?,
                "temperature_inc" => temperature_inc = unit_number("temperature_inc", &value)?,
                "timestamp_granularities[]" | "timestamp_granularities" => {
                    granularities.push(value)
                }
                _ => {}
            }
        }
        for g in &granularities {
            match g.as_str() {
                "segment" => {}
                "word" => {
                    return Err(ApiError::bad_field(
                        "timestamp_granularities[]",
                        "word timestamps are not supported yet; use `segment`",
                    ))
                }
                other => {
                    return Err(ApiError::bad_field(
                        "timestamp_granularities[]",
                        format!("timestamp granularity `{other}` is not `segment` or `word`"),
                    ))
                }
            }
        }
        if !granularities.is_empty() && response_format != ResponseFormat::VerboseJson {
            return Err(ApiError::bad_field(
                "timestamp_granularities[]",
                "timestamp_granularities needs response_format=verbose_json",
            ));
        }
        let (file, filename) =
            file.ok_or_else(|| ApiError::bad_field("file", "the `file` field is missing"))?;
        Ok(AudioForm {
            file,
            filename,
            model,
            language,
            prompt,
            response_format,
            temperature,
            temperature_inc,
        })
    }
}

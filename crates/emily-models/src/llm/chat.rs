//! Chat templates: the Jinja template a GGUF file stores under
//! `tokenizer.chat_template`, rendered with `minijinja` (Python-style string
//! methods from `minijinja-contrib`) over a list of messages; for a file
//! without one, a built-in template chosen by architecture
//! ([`builtin_template`]).

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use super::Arch;

/// Work a template may do per render (bounds a hostile template's loops).
const FUEL: u64 = 5_000_000;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `"system"`, `"user"` or `"assistant"`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        }
    }

    /// A user message.
    pub fn user(content: &str) -> ChatMessage {
        ChatMessage::new("user", content)
    }

    /// An assistant message.
    pub fn assistant(content: &str) -> ChatMessage {
        ChatMessage::new("assistant", content)
    }

    /// A system message.
    pub fn system(content: &str) -> ChatMessage {
        ChatMessage::new("system", content)
    }
}

/// Gemma's turns (llama.cpp's built-in `gemma` template): the assistant is
/// `model`, system text joins the next user turn, contents are trimmed.
const GEMMA_TEMPLATE: &str = "\
{%- set ns = namespace(system='') -%}\
{%- for m in messages -%}\
{%- if m.role == 'system' -%}\
{%- set ns.system = ns.system ~ (m.content | trim) -%}\
{%- else -%}\
{%- set role = 'model' if m.role == 'assistant' else m.role -%}\
{{- '<start_of_turn>' ~ role ~ '\\n' -}}\
{%- if ns.system and role != 'model' -%}\
{{- ns.system ~ '\\n\\n' -}}\
{%- set ns.system = '' -%}\
{%- endif -%}\
{{- (m.content | trim) ~ '<end_of_turn>\\n' -}}\
{%- endif -%}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}";

/// ChatML (llama.cpp's default when a file has no template).
const CHATML_TEMPLATE: &str = "\
{%- for m in messages -%}\
{{- '<|im_start|>' ~ m.role ~ '\\n' ~ m.content ~ '<|im_end|>\\n' -}}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

/// The template for a model whose file stores none, as llama.cpp picks it:
/// Gemma's turn markers for `gemma3`, ChatML for the other architectures.
pub fn builtin_template(arch: Arch) -> &'static str {
    match arch {
        Arch::Gemma3 => GEMMA_TEMPLATE,
        Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => CHATML_TEMPLATE,
    }
}

/// Errors compiling or rendering a chat template.
#[derive(Debug, thiserror::Error)]
#[error("chat template: {0}")]
pub struct ChatTemplateError(String);

/// A compiled chat template; `Send + Sync`.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

fn describe(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts the
    /// template sees under those names.
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| ChatTemplateError(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The prompt for `messages`; with `add_generation_prompt` it ends where
    /// the assistant's reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| ChatTemplateError(describe(&e)))?;
        t.render(context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| ChatTemplateError(describe(&e)))
    }
}

//! Prompts: the question block medvqa asks, rendered through the model's own chat template.
//!
//! The question block is the question, one `A. option` line per option, and an instruction
//! line that states the answer format for the question kind ([`instruction`]). It becomes
//! one user turn whose content is the sample's images, in order, followed by the text —
//! the message layout transformers' processors take — and the model's `chat_template` renders
//! it with minijinja, set up as transformers sets up jinja2 (`trim_blocks`, `lstrip_blocks`,
//! `raise_exception`, Python string methods through `minijinja-contrib`'s pycompat).
//!
//! `tests/fixtures/export_common.py::question_text` builds the same block for the goldens.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};

use crate::geometry::BoxFrame;
use crate::sample::{QuestionKind, Sample, option_letter};

/// How boxes in `frame` are described to a model, in plain words: a model cannot follow
/// house names such as `grid:1000`.
pub fn frame_words(frame: BoxFrame) -> String {
    match frame {
        BoxFrame::Normalized => {
            "with coordinates from 0 to 1, relative to the image width and height".into()
        }
        BoxFrame::Grid(n) => {
            format!(
                "with integer coordinates from 0 to {n}, relative to the image width and height"
            )
        }
        BoxFrame::Pixels => "in pixel coordinates of the image".into(),
        BoxFrame::PixelsOf { width, height } => {
            format!("in pixel coordinates of the image scaled to {width}x{height}")
        }
        BoxFrame::GridYx(n) => {
            format!(
                "with integer coordinates from 0 to {n}, relative to the image height and width"
            )
        }
        BoxFrame::SmartResize { .. } => "in absolute pixel coordinates of the image".into(),
    }
}

/// Whether the question already tells the model how to answer (`… Answer with a number.`),
/// so that a generic line would only repeat or contradict it.
fn has_answer_instruction(question: &str) -> bool {
    let q = question.trim();
    q.starts_with("Answer ")
        || [". Answer ", "? Answer ", "! Answer ", ": Answer "]
            .iter()
            .any(|m| q.contains(m))
}

/// The answer-format line for a question, or `None` where the question already gives one.
/// `frame` is the family's declared box frame.
///
/// - open: `Answer briefly.`, unless the question has its own `Answer …` sentence;
/// - closed, single- and multi-choice: the yes/no or letter format, always;
/// - grounding: always, since only this line says how to write a box; it reads "Give each
///   box as …" when the question already asks for boxes.
pub fn instruction(kind: QuestionKind, frame: BoxFrame, question: &str) -> Option<String> {
    match kind {
        QuestionKind::Open => {
            (!has_answer_instruction(question)).then(|| "Answer briefly.".to_string())
        }
        QuestionKind::Closed => Some("Answer yes or no.".into()),
        QuestionKind::SingleChoice => Some("Answer with the option's letter.".into()),
        QuestionKind::MultiChoice => {
            Some("Answer with the letters of all correct options, separated by commas.".into())
        }
        QuestionKind::Grounding => {
            let lead = if question.to_lowercase().contains("box") {
                "Give each box"
            } else {
                "Answer with bounding boxes"
            };
            Some(format!(
                "{lead} as {} {}.",
                frame.layout(),
                frame_words(frame)
            ))
        }
    }
}

/// The user text for a question: question, lettered options, instruction.
pub fn question_text(
    question: &str,
    kind: QuestionKind,
    options: &[String],
    frame: BoxFrame,
) -> String {
    let question = question.trim();
    let mut lines = vec![question.to_string()];
    for (i, opt) in options.iter().enumerate() {
        let letter = option_letter(i).unwrap_or('?');
        lines.push(format!("{letter}. {opt}"));
    }
    lines.extend(instruction(kind, frame, question));
    lines.join("\n")
}

/// [`question_text`] for a sample.
pub fn sample_text(sample: &Sample, frame: BoxFrame) -> String {
    question_text(
        &sample.question,
        sample.kind(),
        sample.task.options(),
        frame,
    )
}

/// Where a user turn puts the images: before the text (the default, as transformers'
/// processor examples do) or after it (MedFrameQA's evaluation code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImagesAt {
    #[default]
    First,
    Last,
}

impl ImagesAt {
    /// A user turn's parts: `images`, with `text` after them (`First`) or before (`Last`).
    pub fn arrange<T>(self, mut images: Vec<T>, text: T) -> Vec<T> {
        match self {
            ImagesAt::First => images.push(text),
            ImagesAt::Last => images.insert(0, text),
        }
        images
    }
}

/// A configured prompt (`[prompt]`): an optional system message, the question block's
/// template, how options are written, per-kind instruction lines and where the images go.
/// The default is medvqa's own wording ([`question_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptSettings {
    pub system: Option<String>,
    /// With `{question}`, `{options}` and `{instruction}`; default: the three on their own
    /// lines, each left out when empty.
    pub template: Option<String>,
    /// One option, with `{letter}` and `{text}`; default `{letter}. {text}`.
    pub option_format: Option<String>,
    /// Between options; default a newline.
    pub option_separator: Option<String>,
    /// The instruction line per kind, replacing medvqa's; empty: no line. A grounding line
    /// may use `{layout}` (`[x1, y1, x2, y2]`) and `{frame}` (the frame in words).
    pub instructions: BTreeMap<QuestionKind, String>,
    pub images: ImagesAt,
}

/// The placeholders a question template may use.
pub const TEMPLATE_PLACEHOLDERS: [&str; 3] = ["question", "options", "instruction"];

impl PromptSettings {
    pub fn is_default(&self) -> bool {
        self == &PromptSettings::default()
    }

    /// Checks the templates' placeholders; the error names the unknown one.
    pub fn validate(&self) -> Result<(), String> {
        let check = |what: &str, text: &str, allowed: &[&str]| -> Result<(), String> {
            for name in placeholders(text) {
                if !allowed.contains(&name) {
                    return Err(format!(
                        "prompt.{what}: unknown placeholder {{{name}}} (allowed: {})",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            Ok(())
        };
        if let Some(t) = &self.template {
            check("template", t, &TEMPLATE_PLACEHOLDERS)?;
        }
        if let Some(f) = &self.option_format {
            check("option_format", f, &["letter", "text"])?;
        }
        for (kind, line) in &self.instructions {
            let allowed: &[&str] = if *kind == QuestionKind::Grounding {
                &["layout", "frame"]
            } else {
                &[]
            };
            check(&format!("instructions.{kind}"), line, allowed)?;
        }
        Ok(())
    }

    /// A stable text of every setting, for the store key.
    pub fn key_text(&self) -> String {
        format!("{self:?}")
    }
}

/// The `{name}` placeholders in `text` (names of letters, digits and `_`).
fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// `text` with each `{name}` of `values` replaced, in one pass (a value's own braces are
/// never expanded again); other braces stay as written.
fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hit = values
            .iter()
            .find(|(name, _)| after.starts_with(name) && after[name.len()..].starts_with('}'));
        match hit {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The user text for a sample under configured prompt settings; the default settings give
/// exactly [`sample_text`].
pub fn sample_text_with(sample: &Sample, frame: BoxFrame, settings: &PromptSettings) -> String {
    if settings.template.is_none()
        && settings.option_format.is_none()
        && settings.option_separator.is_none()
        && settings.instructions.is_empty()
    {
        return sample_text(sample, frame);
    }
    let kind = sample.kind();
    let question = sample.question.trim();
    let format = settings
        .option_format
        .as_deref()
        .unwrap_or("{letter}. {text}");
    let options: Vec<String> = sample
        .task
        .options()
        .iter()
        .enumerate()
        .map(|(i, opt)| {
            let letter = option_letter(i).unwrap_or('?').to_string();
            fill(format, &[("letter", &letter), ("text", opt)])
        })
        .collect();
    let options = options.join(settings.option_separator.as_deref().unwrap_or("\n"));
    let instruction = match settings.instructions.get(&kind) {
        Some(line) => fill(
            line,
            &[("layout", frame.layout()), ("frame", &frame_words(frame))],
        ),
        None => instruction(kind, frame, question).unwrap_or_default(),
    };
    match &settings.template {
        Some(t) => fill(
            t,
            &[
                ("question", question),
                ("options", &options),
                ("instruction", &instruction),
            ],
        ),
        None => [question, options.as_str(), instruction.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The messages of one question: the system message, if any, then one user turn of
/// `n_images` images and the text, in the configured order.
pub fn messages(settings: &PromptSettings, n_images: usize, text: &str) -> Value {
    let images: Vec<Value> = (0..n_images)
        .map(|_| object([("type", Value::from("image"))]))
        .collect();
    let text_part = object([("type", Value::from("text")), ("text", Value::from(text))]);
    let content = settings.images.arrange(images, text_part);
    let mut turns = Vec::new();
    if let Some(system) = &settings.system {
        turns.push(object([
            ("role", Value::from("system")),
            (
                "content",
                Value::from(vec![object([
                    ("type", Value::from("text")),
                    ("text", Value::from(system.as_str())),
                ])]),
            ),
        ]));
    }
    turns.push(object([
        ("role", Value::from("user")),
        ("content", Value::from(content)),
    ]));
    Value::from(turns)
}

fn object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<String, Value>>(),
    )
}

/// One user turn: `n_images` image items, then the text.
pub fn user_turn(n_images: usize, text: &str) -> Value {
    let mut content: Vec<Value> = (0..n_images)
        .map(|_| object([("type", Value::from("image"))]))
        .collect();
    content.push(object([
        ("type", Value::from("text")),
        ("text", Value::from(text)),
    ]));
    Value::from(vec![object([
        ("role", Value::from("user")),
        ("content", Value::from(content)),
    ])])
}

/// A compiled chat template plus the special-token variables transformers passes to it.
pub struct ChatTemplate {
    env: Environment<'static>,
    vars: BTreeMap<String, Value>,
    source_hash: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_hash", &self.source_hash)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`. `tokenizer_config` supplies `bos_token`, `eos_token`, … (plain
    /// strings or `{"content": …}` objects), as transformers passes them.
    pub fn new(source: &str, tokenizer_config: &serde_json::Value) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.trim_blocks(true).lstrip_blocks(true);
        env.set_syntax(syntax.build()?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        // Templates print today's date with it; a fixed date keeps prompts, and so results,
        // independent of the wall clock (docs/design.md §3).
        env.add_function("strftime_now", |fmt: String| -> Result<Value, Error> {
            Ok(Value::from(fixed_strftime(&fmt)))
        });
        env.add_template_owned(NAME, generation_tags_as_blocks(source))?;
        let mut vars = BTreeMap::new();
        for key in [
            "bos_token",
            "eos_token",
            "unk_token",
            "pad_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ] {
            let v = match tokenizer_config.get(key) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Object(o)) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
                _ => None,
            };
            if let Some(v) = v {
                vars.insert(key.to_string(), Value::from(v));
            }
        }
        use sha2::Digest;
        let source_hash = hex::encode(sha2::Sha256::digest(source.as_bytes()));
        Ok(ChatTemplate {
            env,
            vars,
            source_hash,
        })
    }

    /// SHA-256 of the template text, for the prediction key.
    pub fn source_hash(&self) -> &str {
        &self.source_hash
    }

    /// Renders `messages` with `add_generation_prompt`.
    pub fn render(&self, messages: Value, add_generation_prompt: bool) -> Result<String, Error> {
        let tmpl = self.env.get_template(NAME)?;
        let mut ctx = self.vars.clone();
        ctx.insert("messages".into(), messages);
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        tmpl.render(Value::from(ctx))
    }
}

/// transformers' jinja has a `{% generation %}…{% endgeneration %}` block that marks the
/// assistant's tokens for training masks and renders its body unchanged (llava-hf templates
/// use it). minijinja has no such tag: it becomes `{% if true %}…{% endif %}`, keeping any
/// `-` whitespace control.
fn generation_tags_as_blocks(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("{%") {
        out.push_str(&rest[..at]);
        let tag = &rest[at..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (lead, body) = match inner.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", inner),
        };
        let (body, trail) = match body.strip_suffix('-') {
            Some(b) => (b, "-"),
            None => (body, ""),
        };
        match body.trim() {
            "generation" => out.push_str(&format!("{{%{lead} if true {trail}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{lead} endif {trail}%}}")),
            _ => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `strftime` on the fixed date 26 July 2024, for the common directives.
fn fixed_strftime(fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("26"),
            Some('m') => out.push_str("07"),
            Some('Y') => out.push_str("2024"),
            Some('y') => out.push_str("24"),
            Some('b') => out.push_str("Jul"),
            Some('B') => out.push_str("July"),
            Some('a') => out.push_str("Fri"),
            Some('A') => out.push_str("Friday"),
            Some('H') | Some('M') | Some('S') => out.push_str("00"),
            Some('-') => match chars.next() {
                Some('d') => out.push_str("26"),
                Some('m') => out.push('7'),
                Some(o) => {
                    out.push_str("%-");
                    out.push(o);
                }
                None => out.push_str("%-"),
            },
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Task;

    #[test]
    fn generation_blocks_render_their_body() {
        let src =
            "{% for m in messages %}{%- generation -%} {{ m }} {%- endgeneration %}{% endfor %}";
        let t = ChatTemplate::new(src, &serde_json::json!({})).unwrap();
        assert_eq!(t.render(Value::from(vec!["a", "b"]), false).unwrap(), "ab");
        assert_eq!(
            generation_tags_as_blocks("{{ x }}{% if y %}z{% endif %}"),
            "{{ x }}{% if y %}z{% endif %}"
        );
    }

    fn sample(question: &str, task: Task) -> Sample {
        Sample {
            id: "s".into(),
            images: Vec::new(),
            question: question.into(),
            task,
            boxes: Vec::new(),
            meta: Default::default(),
        }
    }

    #[test]
    fn the_default_prompt_settings_give_medvqas_own_text() {
        let s = sample(
            "Which finding?",
            Task::SingleChoice {
                options: vec!["polyp".into(), "ulcer".into()],
                answer: 0,
            },
        );
        let d = PromptSettings::default();
        assert_eq!(
            sample_text_with(&s, BoxFrame::Normalized, &d),
            sample_text(&s, BoxFrame::Normalized)
        );
        // Only a system message or the image order: the same text.
        let only_system = PromptSettings {
            system: Some("sys".into()),
            images: ImagesAt::Last,
            ..PromptSettings::default()
        };
        assert_eq!(
            sample_text_with(&s, BoxFrame::Normalized, &only_system),
            sample_text(&s, BoxFrame::Normalized)
        );
    }

    #[test]
    fn medframeqas_template_renders_as_its_eval_code_does() {
        // eval_process.py: prompt_template.format(question=q, options=add_letter(options)),
        // where the options are a Python list and so print as its repr.
        let cfg: PromptSettings = PromptSettings {
            template: Some("Question:{question} \n\nOptions:\n[{options}]\n".into()),
            option_format: Some("'{letter}. {text}'".into()),
            option_separator: Some(", ".into()),
            instructions: [(QuestionKind::SingleChoice, String::new())].into(),
            ..PromptSettings::default()
        };
        let s = sample(
            " Which structure is enhanced in the second image? ",
            Task::SingleChoice {
                options: vec!["Aorta".into(), "Portal vein {x}".into(), "IVC".into()],
                answer: 1,
            },
        );
        assert_eq!(
            sample_text_with(&s, BoxFrame::Normalized, &cfg),
            "Question:Which structure is enhanced in the second image? \n\nOptions:\n['A. Aorta', 'B. Portal vein {x}', 'C. IVC']\n"
        );
        cfg.validate().unwrap();
    }

    #[test]
    fn instruction_lines_are_configured_per_kind() {
        let mut cfg = PromptSettings::default();
        cfg.instructions.insert(QuestionKind::Open, String::new());
        cfg.instructions.insert(
            QuestionKind::Grounding,
            "Box it as {layout}, {frame}.".into(),
        );
        let open = sample("What is shown?", Task::Open { answer: "x".into() });
        assert_eq!(
            sample_text_with(&open, BoxFrame::Normalized, &cfg),
            "What is shown?"
        );
        let g = sample("Where is the polyp?", Task::Grounding { answer: None });
        assert_eq!(
            sample_text_with(&g, BoxFrame::GridYx(1000), &cfg),
            "Where is the polyp?\nBox it as [y1, x1, y2, x2], with integer coordinates from 0 to 1000, relative to the image height and width."
        );
        // Closed keeps medvqa's line.
        let c = sample("Is there a polyp?", Task::Closed { answer: true });
        assert_eq!(
            sample_text_with(&c, BoxFrame::Normalized, &cfg),
            "Is there a polyp?\nAnswer yes or no."
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let bad = PromptSettings {
            template: Some("Q: {question} {choices}".into()),
            ..PromptSettings::default()
        };
        assert!(bad.validate().unwrap_err().contains("{choices}"));
        let bad = PromptSettings {
            instructions: [(QuestionKind::Closed, "Answer {layout}".into())].into(),
            ..PromptSettings::default()
        };
        assert!(bad.validate().unwrap_err().contains("instructions.closed"));
        // JSON braces are not placeholders.
        let ok = PromptSettings {
            template: Some("{question}\nReply as {\"answer\": ...}".into()),
            ..PromptSettings::default()
        };
        ok.validate().unwrap();
    }

    #[test]
    fn the_system_message_and_image_order_reach_the_chat_template() {
        let t = ChatTemplate::new(SMOLVLM, &serde_json::json!({})).unwrap();
        let cfg = PromptSettings {
            system: Some("Be brief.".into()),
            images: ImagesAt::Last,
            ..PromptSettings::default()
        };
        let out = t.render(messages(&cfg, 2, "Q?"), true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>System: Be brief.<end_of_utterance>\nUser: Q?<image><image><end_of_utterance>\nAssistant:"
        );
        assert_eq!(
            t.render(messages(&PromptSettings::default(), 1, "Q?"), true)
                .unwrap(),
            t.render(user_turn(1, "Q?"), true).unwrap()
        );
    }

    const SMOLVLM: &str = "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

    #[test]
    fn options_are_lettered_and_the_instruction_follows_the_kind() {
        let t = question_text(
            " Which? ",
            QuestionKind::SingleChoice,
            &["a".into(), "b".into()],
            BoxFrame::Normalized,
        );
        assert_eq!(t, "Which?\nA. a\nB. b\nAnswer with the option's letter.");
        let g = question_text("Where?", QuestionKind::Grounding, &[], BoxFrame::Grid(1000));
        assert_eq!(
            g,
            "Where?\nAnswer with bounding boxes as [x1, y1, x2, y2] with integer coordinates \
             from 0 to 1000, relative to the image width and height."
        );
        for k in QuestionKind::ALL {
            let line = instruction(k, BoxFrame::Normalized, "What?").unwrap();
            assert!(line.starts_with("Answer"), "{line}");
        }
    }

    // Regression: prompts used house jargon ("in the grid:1000 frame") that no model can
    // follow, and added "Answer briefly." after a question's own "Answer with a number.".
    #[test]
    fn prompts_use_plain_words_and_never_repeat_the_question_s_instruction() {
        for frame in [
            BoxFrame::Normalized,
            BoxFrame::Grid(1000),
            BoxFrame::Pixels,
            BoxFrame::PixelsOf {
                width: 224,
                height: 224,
            },
        ] {
            let line = instruction(QuestionKind::Grounding, frame, "Where is it?").unwrap();
            assert!(!line.contains("frame"), "{line}");
            assert!(
                !line.contains("grid:") && !line.contains("pixels:"),
                "{line}"
            );
        }
        let t = question_text(
            "How many polyps? Answer with a number.",
            QuestionKind::Open,
            &[],
            BoxFrame::Normalized,
        );
        assert_eq!(t, "How many polyps? Answer with a number.");
        let t = question_text(
            "What is shown?",
            QuestionKind::Open,
            &[],
            BoxFrame::Normalized,
        );
        assert_eq!(t, "What is shown?\nAnswer briefly.");
        let t = question_text(
            "Locate the heart. Answer with a bounding box.",
            QuestionKind::Grounding,
            &[],
            BoxFrame::Normalized,
        );
        assert_eq!(
            t,
            "Locate the heart. Answer with a bounding box.\nGive each box as [x1, y1, x2, y2] \
             with coordinates from 0 to 1, relative to the image width and height."
        );
    }

    #[test]
    fn smolvlm_template_renders_images_in_order_then_text() {
        let t = ChatTemplate::new(SMOLVLM, &serde_json::json!({})).unwrap();
        let s = t.render(user_turn(2, "Q?"), true).unwrap();
        assert_eq!(
            s,
            "<|im_start|>User:<image><image>Q?<end_of_utterance>\nAssistant:"
        );
    }

    #[test]
    fn python_string_methods_and_special_tokens_work() {
        let src = "{{ bos_token }}{% for m in messages %}{{ m['role'].capitalize() }}: {{ m['content'][-1]['text'].strip() }}{% endfor %}";
        let t =
            ChatTemplate::new(src, &serde_json::json!({"bos_token": {"content": "<s>"}})).unwrap();
        assert_eq!(
            t.render(user_turn(0, "  hi  "), false).unwrap(),
            "<s>User: hi"
        );
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_errors() {
        let t = ChatTemplate::new(
            "{{ raise_exception('no images allowed') }}",
            &serde_json::json!({}),
        )
        .unwrap();
        let e = t.render(user_turn(1, "x"), true).unwrap_err();
        assert!(e.to_string().contains("no images allowed"), "{e}");
        assert!(ChatTemplate::new("{% for %}", &serde_json::json!({})).is_err());
    }

    #[test]
    fn trim_and_lstrip_blocks_match_transformers() {
        let src = "{% for m in messages %}\n  {% if true %}\nX{{ m['role'] }}\n  {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, &serde_json::json!({})).unwrap();
        // jinja2 with trim_blocks + lstrip_blocks gives "Xuser\n".
        assert_eq!(t.render(user_turn(0, ""), false).unwrap(), "Xuser\n");
    }

    #[test]
    fn strftime_now_is_fixed() {
        let t =
            ChatTemplate::new("{{ strftime_now('%d %b %Y') }}", &serde_json::json!({})).unwrap();
        assert_eq!(t.render(user_turn(0, ""), false).unwrap(), "26 Jul 2024");
    }
}

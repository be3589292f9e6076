//! A model folder in the Hugging Face layout that onnx-community and optimum publish
//! (docs/design.md §6), read into typed pieces with errors that name the file and the fix.
//!
//! ```text
//! config.json               model_type selects the family
//! preprocessor_config.json  the image processor's settings
//! processor_config.json     optional (image_seq_len, …)
//! tokenizer.json            the tokenizers-library file
//! tokenizer_config.json     special tokens, and maybe chat_template
//! chat_template.jinja       or chat_template.json: the chat template, when not in tokenizer_config.json
//! generation_config.json    eos ids, max_new_tokens (derived from config.json when absent, as HF does)
//! onnx/<graph>[_variant].onnx
//! ```
//!
//! Every file read is recorded, so that [`ModelFolder::fingerprint`] hashes exactly what
//! the model's behaviour depends on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::ModelError;

/// Which ONNX file of each graph to load: onnx-community publishes `<graph>.onnx` plus
/// variants `<graph>_fp16.onnx`, `_q4`, `_quantized`, ….
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variant {
    /// The suffix for every graph (`None`: the plain fp32 file).
    pub default: Option<String>,
    /// Per-graph suffixes, e.g. fp32 vision with a q4 decoder.
    pub per_graph: BTreeMap<String, Option<String>>,
}

impl std::str::FromStr for Variant {
    type Err = String;
    /// `q4`, or `fp32`/`none` for the plain files, or per graph:
    /// `decoder_model_merged=q4,vision_encoder=fp32` (with an optional bare default first).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn suffix(v: &str) -> Result<Option<String>, String> {
            let v = v.trim();
            if v.is_empty() || v == "fp32" || v == "none" {
                return Ok(None);
            }
            if v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Ok(Some(v.to_string()))
            } else {
                Err(format!(
                    "bad ONNX variant {v:?} (expected e.g. fp32, fp16, q4, quantized)"
                ))
            }
        }
        let mut out = Variant::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('=') {
                Some((graph, v)) => {
                    out.per_graph.insert(graph.trim().to_string(), suffix(v)?);
                }
                None => out.default = suffix(part)?,
            }
        }
        Ok(out)
    }
}

impl Variant {
    pub fn for_graph(&self, graph: &str) -> Option<&str> {
        match self.per_graph.get(graph) {
            Some(v) => v.as_deref(),
            None => self.default.as_deref(),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![self.default.clone().unwrap_or_else(|| "fp32".into())];
        for (g, v) in &self.per_graph {
            parts.push(format!("{g}={}", v.as_deref().unwrap_or("fp32")));
        }
        f.write_str(&parts.join(","))
    }
}

/// The generation settings medvqa uses from `generation_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub max_new_tokens: Option<usize>,
    /// HF applies it even when greedy (Qwen2-VL ships 1.05).
    pub repetition_penalty: Option<f32>,
    /// Sampling settings the file asks for; medvqa decodes greedily and reports them.
    pub ignored: Vec<String>,
}

/// A model folder, opened.
#[derive(Debug)]
pub struct ModelFolder {
    pub dir: PathBuf,
    pub config: Value,
    pub model_type: String,
    read: Mutex<Vec<PathBuf>>,
}

impl ModelFolder {
    /// Opens `dir` and reads `config.json`.
    pub fn open(dir: &Path) -> Result<ModelFolder, ModelError> {
        if !dir.is_dir() {
            return Err(ModelError::NotADirectory {
                dir: dir.to_path_buf(),
            });
        }
        let folder = ModelFolder {
            dir: dir.to_path_buf(),
            config: Value::Null,
            model_type: String::new(),
            read: Mutex::new(Vec::new()),
        };
        let config = folder.json("config.json")?;
        let model_type = match config.get("model_type") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(ModelError::Field {
                    path: dir.join("config.json"),
                    field: "model_type".into(),
                    problem: "is missing or not a string; it names the model family".into(),
                });
            }
        };
        Ok(ModelFolder {
            config,
            model_type,
            ..folder
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn note(&self, path: &Path) {
        let mut read = match self.read.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !read.iter().any(|p| p == path) {
            read.push(path.to_path_buf());
        }
    }

    /// Reads a file of the folder, recording it for the fingerprint.
    pub fn read_text(&self, name: &str) -> Result<String, ModelError> {
        let path = self.path(name);
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                fix: "the model folder is incomplete; download the whole repository again".into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        self.note(&path);
        Ok(text)
    }

    /// A required JSON file.
    pub fn json(&self, name: &str) -> Result<Value, ModelError> {
        let text = self.read_text(name)?;
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: self.path(name),
            source,
        })
    }

    /// An optional JSON file: `Ok(None)` when absent.
    pub fn json_opt(&self, name: &str) -> Result<Option<Value>, ModelError> {
        if self.path(name).is_file() {
            self.json(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `preprocessor_config.json`; newer transformers nest it in `processor_config.json`
    /// under `image_processor`, which is read when the former is absent.
    pub fn preprocessor_config(&self) -> Result<(Value, PathBuf), ModelError> {
        if let Some(v) = self.json_opt("preprocessor_config.json")? {
            return Ok((v, self.path("preprocessor_config.json")));
        }
        if let Some(v) = self.json_opt("processor_config.json")?
            && let Some(ip) = v.get("image_processor")
        {
            return Ok((ip.clone(), self.path("processor_config.json")));
        }
        Err(ModelError::MissingFile {
            path: self.path("preprocessor_config.json"),
            fix: "the image processor settings are needed to preprocess images; download the \
                  whole model repository"
                .into(),
        })
    }

    /// The tokenizer (`tokenizer.json`).
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer, ModelError> {
        let path = self.path("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                fix:
                    "medvqa needs the fast-tokenizer file tokenizer.json (slow sentencepiece-only \
                      tokenizers are not supported)"
                        .into(),
            });
        }
        let tok =
            tokenizers::Tokenizer::from_file(&path).map_err(|source| ModelError::Tokenizer {
                path: path.clone(),
                source,
            })?;
        self.note(&path);
        Ok(tok)
    }

    /// `tokenizer_config.json`, or an empty object when absent.
    pub fn tokenizer_config(&self) -> Result<Value, ModelError> {
        Ok(self
            .json_opt("tokenizer_config.json")?
            .unwrap_or(Value::Object(Default::default())))
    }

    /// The chat template and the file it came from: `chat_template.jinja`, else
    /// `chat_template.json`, else `chat_template` in `tokenizer_config.json` (a string, or a
    /// list of named templates of which `default` is taken), as transformers looks them up.
    pub fn chat_template(&self) -> Result<(String, PathBuf), ModelError> {
        if self.path("chat_template.jinja").is_file() {
            return Ok((
                self.read_text("chat_template.jinja")?,
                self.path("chat_template.jinja"),
            ));
        }
        for (name, v) in [
            ("chat_template.json", self.json_opt("chat_template.json")?),
            (
                "tokenizer_config.json",
                self.json_opt("tokenizer_config.json")?,
            ),
        ] {
            let Some(v) = v else { continue };
            match v.get("chat_template") {
                Some(Value::String(s)) => return Ok((s.clone(), self.path(name))),
                Some(Value::Array(list)) => {
                    let default = list
                        .iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some("default"));
                    if let Some(s) = default
                        .and_then(|t| t.get("template"))
                        .and_then(Value::as_str)
                    {
                        return Ok((s.to_string(), self.path(name)));
                    }
                }
                _ => {}
            }
        }
        Err(ModelError::NoChatTemplate {
            dir: self.dir.clone(),
        })
    }

    /// `generation_config.json`, or (as transformers does when it is absent) the eos and pad
    /// ids of `config.json`.
    pub fn generation_config(&self) -> Result<GenerationConfig, ModelError> {
        let (v, path, from_model) = match self.json_opt("generation_config.json")? {
            Some(v) => (v, self.path("generation_config.json"), false),
            None => (self.config.clone(), self.path("config.json"), true),
        };
        let ids = |key: &str| -> Result<Vec<u32>, ModelError> {
            // Like `GenerationConfig.from_model_config`: the text model's ids count too.
            let text = self.config.get("text_config").filter(|_| from_model);
            let raw = v
                .get(key)
                .filter(|x| !x.is_null())
                .or_else(|| text.and_then(|t| t.get(key)))
                .cloned()
                .unwrap_or(Value::Null);
            let bad = || ModelError::Field {
                path: path.clone(),
                field: key.into(),
                problem: "must be a token id or a list of token ids".into(),
            };
            match raw {
                Value::Null => Ok(Vec::new()),
                Value::Number(n) => n.as_u64().map(|n| vec![n as u32]).ok_or_else(bad),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_u64().map(|n| n as u32).ok_or_else(bad))
                    .collect(),
                _ => Err(bad()),
            }
        };
        let eos_token_ids = ids("eos_token_id")?;
        let pad_token_id = ids("pad_token_id")?.first().copied();
        let max_new_tokens = v
            .get("max_new_tokens")
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        let repetition_penalty = v
            .get("repetition_penalty")
            .and_then(Value::as_f64)
            .map(|p| p as f32)
            .filter(|&p| p != 1.0);
        let mut ignored = Vec::new();
        if v.get("do_sample").and_then(Value::as_bool) == Some(true) {
            ignored.push("do_sample=true (medvqa decodes greedily)".to_string());
        }
        if v.get("num_beams")
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 1)
        {
            ignored.push("num_beams>1 (medvqa decodes greedily)".to_string());
        }
        Ok(GenerationConfig {
            eos_token_ids,
            pad_token_id,
            max_new_tokens,
            repetition_penalty,
            ignored,
        })
    }

    /// `onnx/<graph>[_<variant>].onnx`, or an error listing the variants that are there.
    pub fn onnx(&self, graph: &str, variant: &Variant) -> Result<PathBuf, ModelError> {
        let name = match variant.for_graph(graph) {
            Some(v) => format!("{graph}_{v}.onnx"),
            None => format!("{graph}.onnx"),
        };
        let path = self.dir.join("onnx").join(&name);
        if path.is_file() {
            self.note(&path);
            let data = self.dir.join("onnx").join(format!("{name}_data"));
            if data.is_file() {
                self.note(&data);
            }
            return Ok(path);
        }
        Err(ModelError::MissingOnnx {
            path,
            graph: graph.to_string(),
            available: self.variants_of(graph),
        })
    }

    /// The variants of `graph` present in `onnx/` (`fp32` for the plain file).
    pub fn variants_of(&self, graph: &str) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.dir.join("onnx"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter_map(|n| {
                        let stem = n.strip_suffix(".onnx")?;
                        if stem == graph {
                            Some("fp32".to_string())
                        } else {
                            stem.strip_prefix(graph)?
                                .strip_prefix('_')
                                .map(str::to_string)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The files read so far, relative to the folder, sorted.
    pub fn files_read(&self) -> Vec<PathBuf> {
        let read = match self.read.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut rel: Vec<PathBuf> = read
            .iter()
            .map(|p| p.strip_prefix(&self.dir).unwrap_or(p).to_path_buf())
            .collect();
        rel.sort();
        rel
    }

    /// SHA-256 over every file read (name and content hash), hex: the model part of a
    /// prediction's key (docs/design.md §7). Two folders with the same files give the same value,
    /// wherever they are.
    pub fn fingerprint(&self) -> Result<String, ModelError> {
        let mut all = Sha256::new();
        for rel in self.files_read() {
            let path = self.dir.join(&rel);
            let io = |source| ModelError::Io {
                path: path.clone(),
                source,
            };
            let file = crate::fingerprint::file_sha256(&path).map_err(io)?;
            all.update(rel.to_string_lossy().replace('\\', "/").as_bytes());
            all.update([0u8]);
            all.update(file);
        }
        Ok(hex::encode(all.finalize()))
    }
}

/// A string field of a JSON object.
pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_globally_and_per_graph() {
        let v: Variant = "q4".parse().unwrap();
        assert_eq!(v.for_graph("decoder_model_merged"), Some("q4"));
        let v: Variant = "decoder_model_merged=q4,vision_encoder=fp32"
            .parse()
            .unwrap();
        assert_eq!(v.for_graph("decoder_model_merged"), Some("q4"));
        assert_eq!(v.for_graph("vision_encoder"), None);
        assert_eq!(v.for_graph("embed_tokens"), None);
        let v: Variant = "fp16,embed_tokens=fp32".parse().unwrap();
        assert_eq!(v.for_graph("embed_tokens"), None);
        assert_eq!(v.for_graph("vision_encoder"), Some("fp16"));
        assert!("../x".parse::<Variant>().is_err());
    }

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn model_type_is_required_and_named_in_the_error() {
        let d = folder(&[("config.json", r#"{"architectures": []}"#)]);
        let e = ModelFolder::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("model_type"), "{e}");
        let d = folder(&[]);
        let e = ModelFolder::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("missing"), "{e}");
        let d = folder(&[("config.json", "{not json")]);
        let e = ModelFolder::open(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
    }

    #[test]
    fn chat_template_lookup_order_follows_transformers() {
        let d = folder(&[
            ("config.json", r#"{"model_type": "x"}"#),
            (
                "tokenizer_config.json",
                r#"{"chat_template": "from tokenizer_config"}"#,
            ),
        ]);
        let f = ModelFolder::open(d.path()).unwrap();
        assert_eq!(f.chat_template().unwrap().0, "from tokenizer_config");
        std::fs::write(
            d.path().join("chat_template.json"),
            r#"{"chat_template": "from json"}"#,
        )
        .unwrap();
        assert_eq!(f.chat_template().unwrap().0, "from json");
        std::fs::write(d.path().join("chat_template.jinja"), "from jinja").unwrap();
        assert_eq!(f.chat_template().unwrap().0, "from jinja");

        let d = folder(&[
            ("config.json", r#"{"model_type": "x"}"#),
            (
                "tokenizer_config.json",
                r#"{"chat_template": [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]}"#,
            ),
        ]);
        let f = ModelFolder::open(d.path()).unwrap();
        assert_eq!(f.chat_template().unwrap().0, "d");
        let d = folder(&[("config.json", r#"{"model_type": "x"}"#)]);
        let e = ModelFolder::open(d.path())
            .unwrap()
            .chat_template()
            .unwrap_err()
            .to_string();
        assert!(e.contains("chat_template.jinja"), "{e}");
    }

    #[test]
    fn generation_config_falls_back_to_config_json() {
        let d = folder(&[(
            "config.json",
            r#"{"model_type": "x", "text_config": {"eos_token_id": [7, 9], "pad_token_id": 3}}"#,
        )]);
        let g = ModelFolder::open(d.path())
            .unwrap()
            .generation_config()
            .unwrap();
        assert_eq!(g.eos_token_ids, vec![7, 9]);
        assert_eq!(g.pad_token_id, Some(3));
        assert_eq!(g.max_new_tokens, None);
        let d = folder(&[
            ("config.json", r#"{"model_type": "x"}"#),
            (
                "generation_config.json",
                r#"{"eos_token_id": 5, "max_new_tokens": 9, "do_sample": true, "repetition_penalty": 1.05}"#,
            ),
        ]);
        let g = ModelFolder::open(d.path())
            .unwrap()
            .generation_config()
            .unwrap();
        assert_eq!(g.eos_token_ids, vec![5]);
        assert_eq!(g.max_new_tokens, Some(9));
        assert_eq!(g.repetition_penalty, Some(1.05));
        assert_eq!(g.ignored.len(), 1);
        let d = folder(&[
            ("config.json", r#"{"model_type": "x"}"#),
            ("generation_config.json", r#"{"eos_token_id": "five"}"#),
        ]);
        let e = ModelFolder::open(d.path())
            .unwrap()
            .generation_config()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("generation_config.json") && e.contains("eos_token_id"),
            "{e}"
        );
    }

    #[test]
    fn missing_onnx_lists_the_variants_present() {
        let d = folder(&[
            ("config.json", r#"{"model_type": "x"}"#),
            ("onnx/decoder_model_merged.onnx", ""),
            ("onnx/decoder_model_merged_q4.onnx", ""),
            ("onnx/embed_tokens.onnx", ""),
        ]);
        let f = ModelFolder::open(d.path()).unwrap();
        assert!(
            f.onnx("decoder_model_merged", &"q4".parse().unwrap())
                .is_ok()
        );
        let e = f
            .onnx("decoder_model_merged", &"fp16".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("decoder_model_merged_fp16.onnx") && e.contains("fp32, q4"),
            "{e}"
        );
        let e = f
            .onnx("vision_encoder", &Variant::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("vision_encoder.onnx"), "{e}");
    }

    #[test]
    fn fingerprint_covers_read_files_and_not_the_location() {
        let files = [
            ("config.json", r#"{"model_type": "x"}"#),
            ("onnx/a.onnx", "1"),
        ];
        let (d1, d2) = (folder(&files), folder(&files));
        let f1 = ModelFolder::open(d1.path()).unwrap();
        let f2 = ModelFolder::open(d2.path()).unwrap();
        f1.onnx("a", &Variant::default()).unwrap();
        f2.onnx("a", &Variant::default()).unwrap();
        assert_eq!(f1.fingerprint().unwrap(), f2.fingerprint().unwrap());
        std::fs::write(d2.path().join("onnx/a.onnx"), "2").unwrap();
        assert_ne!(f1.fingerprint().unwrap(), f2.fingerprint().unwrap());
    }
}

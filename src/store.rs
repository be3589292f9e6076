//! The prediction store: `predictions.jsonl` in a run folder (docs/design.md §7).
//!
//! ```text
//! $ medvqa eval --config configs/default.toml    # killed half-way
//! $ medvqa eval --config configs/default.toml    # resumes: done keys are skipped
//! ```
//!
//! - Append-only: one JSON record per (sample, perturbation, severity) per line, written a
//!   batch at a time, flushed and fsync'd before the batch counts as done.
//! - On open the file is read back; a torn last line (a crash mid-write) is cut off, so the
//!   next append starts on a clean line. Records whose key was already seen are ignored.
//! - A record's key is a hash of everything that determines the response (model files,
//!   sample content, perturbation, severity, generation parameters, prompt template), so a
//!   changed model or prompt never reuses a stale answer.
//! - `--shard i/n` keeps the keys whose hash mod n is i; `medvqa merge` unions shard stores.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sample::GtBox;

/// One prediction, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub id: String,
    /// `None` for the clean images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<String>,
    #[serde(default)]
    pub severity: u8,
    /// The model's raw response; `None` when the sample failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Why the sample failed (stage and reason), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Generated token count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// For frame perturbations: the original frame shown at each position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<Vec<usize>>,
    /// The ground-truth boxes as the model saw them, when a perturbation moved them
    /// (geometric perturbations, frame reordering); scoring uses these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt_boxes: Option<Vec<GtBox>>,
    /// Per-sample timings in milliseconds (preprocess, model), for timing.json only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timing_ms: BTreeMap<String, f64>,
    /// The probability of each generated token and where its text ends in `response`,
    /// when the backend gives them (a decoder run through ONNX; a served model that
    /// returns `logprobs` could fill the same field). Scoring turns them into the
    /// answer's confidence (docs/scoring.md, Calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_probs: Option<Vec<TokenProb>>,
}

/// One generated token: the probability the model gave it and the byte offset in the
/// response where its text ends. A token that adds no text (the end-of-sequence token,
/// the first bytes of a character split over tokens) ends where the previous one did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenProb {
    pub end: usize,
    /// In (0, 1], rounded to 4 decimals: the last bits of ONNX Runtime's float kernels
    /// differ between CPUs, and rounding keeps stored runs comparable across machines.
    pub p: f64,
}

impl TokenProb {
    /// Rounds `p` as stored (4 decimals), keeping it above 0 so that a geometric mean
    /// over tokens stays defined.
    pub fn new(end: usize, p: f64) -> TokenProb {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        TokenProb {
            end,
            p: ((p * 1e4).round() / 1e4).max(1e-4),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open prediction store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to prediction store {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise prediction {key}")]
    Serialize {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("shard {0:?} is not of the form i/n with 0 <= i < n")]
    BadShard(String),
}

/// What reading a store found besides its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// A last line without its newline or not valid JSON: a write cut short.
    pub torn_tail: bool,
    /// Lines before the last that are not valid records (corruption, not a crash).
    pub bad_lines: Vec<usize>,
    /// Records whose key appeared earlier (kept: the first).
    pub duplicates: usize,
}

/// Reads every record of a store file, first occurrence of each key wins. A missing file is
/// an empty store.
pub fn read(path: &Path) -> Result<(Vec<Record>, ReadStats), StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), ReadStats::default()));
        }
        Err(source) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> (Vec<Record>, ReadStats) {
    let mut stats = ReadStats::default();
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields a last, empty piece after a trailing newline; anything else there is a
    // line whose newline never made it to disk.
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let last = i + 1 == n;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if !last => {
                if seen.insert(r.key.clone()) {
                    records.push(r);
                } else {
                    stats.duplicates += 1;
                }
            }
            Ok(_) | Err(_) if last => stats.torn_tail = true,
            _ => stats.bad_lines.push(i + 1),
        }
    }
    (records, stats)
}

/// An open store: the records already in it and an append handle.
pub struct Store {
    path: PathBuf,
    file: File,
    done: HashSet<String>,
}

impl Store {
    /// Opens (or creates) the store at `path`, cutting off a torn last line so appends start
    /// clean. Returns the store and what was in it.
    pub fn open(path: &Path) -> Result<(Store, Vec<Record>, ReadStats), StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(open_err)?;
        let mut bytes = Vec::new();
        (&file).read_to_end(&mut bytes).map_err(open_err)?;
        let (records, stats) = parse(&bytes);
        if stats.torn_tail {
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            file.set_len(keep as u64).map_err(open_err)?;
            file.seek(SeekFrom::End(0)).map_err(open_err)?;
            file.sync_data().map_err(open_err)?;
        }
        let done = records.iter().map(|r| r.key.clone()).collect();
        Ok((
            Store {
                path: path.to_path_buf(),
                file,
                done,
            },
            records,
            stats,
        ))
    }

    /// Whether a record with this key is already stored.
    pub fn is_done(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    /// Appends a batch and makes it durable (fsync) before returning. Keys already stored
    /// are skipped, so a batch retried after a crash never duplicates a record.
    pub fn append(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for r in batch {
            if self.done.contains(&r.key) {
                continue;
            }
            serde_json::to_writer(&mut buf, r).map_err(|source| StoreError::Serialize {
                key: r.key.clone(),
                source,
            })?;
            buf.push(b'\n');
            self.done.insert(r.key.clone());
        }
        if buf.is_empty() {
            return Ok(());
        }
        let write_err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(write_err)?;
        self.file.flush().map_err(write_err)?;
        self.file.sync_data().map_err(write_err)
    }
}

/// The content key of one prediction: SHA-256 over length-prefixed parts, hex.
pub fn key_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(b"medvqa/store/v1");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// `--shard i/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether this shard owns `key` (a hex SHA-256): its first 8 bytes, big-endian, mod n.
    pub fn owns(&self, key: &str) -> bool {
        let head = key
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        head % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::BadShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str) -> Record {
        Record {
            key: key.to_string(),
            id: format!("id-{key}"),
            perturbation: Some("gaussian_noise".into()),
            severity: 2,
            response: Some("yes".into()),
            error: None,
            tokens: Some(1),
            frames: None,
            gt_boxes: None,
            timing_ms: BTreeMap::new(),
            token_probs: None,
        }
    }

    #[test]
    fn appends_survive_reopen_and_duplicates_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/predictions.jsonl");
        let (mut s, recs, _) = Store::open(&path).unwrap();
        assert!(recs.is_empty());
        s.append(&[rec("a"), rec("b")]).unwrap();
        s.append(&[rec("b"), rec("c")]).unwrap();
        drop(s);
        let (s, recs, stats) = Store::open(&path).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(stats, ReadStats::default());
        assert!(s.is_done("b") && !s.is_done("d"));
    }

    #[test]
    fn a_torn_last_line_is_cut_and_appends_start_clean() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let (mut s, _, _) = Store::open(&path).unwrap();
        s.append(&[rec("a")]).unwrap();
        drop(s);
        let line = serde_json::to_string(&rec("b")).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&line.as_bytes()[..line.len() / 2]).unwrap();
        drop(f);

        let (mut s, recs, stats) = Store::open(&path).unwrap();
        assert!(stats.torn_tail);
        assert_eq!(recs.len(), 1);
        s.append(&[rec("b")]).unwrap();
        drop(s);
        let (recs, stats) = read(&path).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(stats, ReadStats::default());
    }

    #[test]
    fn a_complete_last_line_without_newline_counts_as_torn() {
        // Its newline is part of the write; without it the record may be incomplete on disk.
        let line = serde_json::to_string(&rec("a")).unwrap();
        let (recs, stats) = parse(line.as_bytes());
        assert!(recs.is_empty() && stats.torn_tail);
    }

    #[test]
    fn corrupt_middle_lines_are_reported_not_fatal() {
        let good = serde_json::to_string(&rec("a")).unwrap();
        let text = format!(
            "{good}\n{{broken\n{}\n",
            serde_json::to_string(&rec("b")).unwrap()
        );
        let (recs, stats) = parse(text.as_bytes());
        assert_eq!(recs.len(), 2);
        assert_eq!(stats.bad_lines, [2]);
    }

    #[test]
    fn keys_separate_their_parts() {
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
        assert_eq!(key_of(&[b"x"]).len(), 64);
    }

    #[test]
    fn shards_partition_keys() {
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for k in 0..200u32 {
            let key = key_of(&[&k.to_le_bytes()]);
            assert_eq!(shards.iter().filter(|s| s.owns(&key)).count(), 1);
        }
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}

//! A run's dataset fingerprint (`dataset.json` in the run folder): for each sample it
//! scored, a hash of what it asks (question, kind, options, image bytes) and of its
//! reference (answer and boxes).
//!
//! Sample ids alone do not say which dataset a run saw: phantom ids do not carry the seed,
//! so `cxr/0000/count` has the reference "2" in one run and "0" in another. `compare` and
//! `merge` read the fingerprints and refuse runs whose shared ids disagree, naming the
//! first such id, unless told `--force`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sample::{ImageSource, Sample};

/// The file in a run folder.
pub const FILE: &str = "dataset.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The dataset spec as the run named it (`phantom:all`, a folder, …).
    pub spec: String,
    /// The dataset seed, for generated sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Sample id → content hash (16 hex digits). Samples whose images could not be read
    /// hash their read error instead, so they too are compared.
    pub samples: BTreeMap<String, String>,
}

/// Two runs' fingerprints disagree on a shared sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub id: String,
    /// How many shared ids disagree in all.
    pub count: usize,
    pub shared: usize,
}

impl Fingerprint {
    /// Fingerprints `samples`, with `digests` from [`image_digests`].
    pub fn new(
        spec: &str,
        seed: Option<u64>,
        samples: &[Sample],
        digests: &HashMap<String, Result<String, String>>,
    ) -> Fingerprint {
        let samples = samples
            .iter()
            .map(|s| (s.id.clone(), sample_hash(s, digests)))
            .collect();
        Fingerprint {
            spec: spec.to_string(),
            seed,
            samples,
        }
    }

    /// The first shared id (in id order) whose hashes differ, with the counts.
    pub fn disagreement(&self, other: &Fingerprint) -> Option<Disagreement> {
        let mut first = None;
        let (mut count, mut shared) = (0, 0);
        for (id, h) in &self.samples {
            if let Some(o) = other.samples.get(id) {
                shared += 1;
                if o != h {
                    count += 1;
                    first.get_or_insert_with(|| id.clone());
                }
            }
        }
        first.map(|id| Disagreement { id, count, shared })
    }

    /// `phantom:all (seed 7)`: the dataset in words.
    pub fn describe(&self) -> String {
        match self.seed {
            Some(s) => format!("{} (seed {s})", self.spec),
            None => self.spec.clone(),
        }
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(FILE), format!("{json}\n"))
    }

    /// The run folder's fingerprint; `Ok(None)` when the folder has none (a run from
    /// before fingerprints).
    pub fn read(dir: &Path) -> Result<Option<Fingerprint>, String> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: not a dataset fingerprint: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Checks that two run folders saw the same samples under the ids they share. `Err` names
/// the first disagreeing id and both datasets; `Ok` carries notes (a run without a
/// fingerprint cannot be checked, and says so). `force` turns the error into a note.
pub fn check_pair(a: &Path, b: &Path, force: bool) -> Result<Vec<String>, String> {
    let fa = Fingerprint::read(a)?;
    let fb = Fingerprint::read(b)?;
    let (fa, fb) = match (fa, fb) {
        (Some(fa), Some(fb)) => (fa, fb),
        (fa, _) => {
            let missing = if fa.is_none() { a } else { b };
            return Ok(vec![format!(
                "note: {} has no {FILE} (a run from before dataset fingerprints): \
                 cannot check that both runs saw the same samples",
                missing.display()
            )]);
        }
    };
    let Some(d) = fa.disagreement(&fb) else {
        return Ok(Vec::new());
    };
    let msg = format!(
        "{} and {} disagree on sample {} ({} of {} shared ids differ in question, answer or \
         images): they were made from different datasets ({} vs {})",
        a.display(),
        b.display(),
        d.id,
        d.count,
        d.shared,
        fa.describe(),
        fb.describe()
    );
    if force {
        Ok(vec![format!("warning: {msg}; compared anyway (--force)")])
    } else {
        Err(format!(
            "{msg}. Pairing them would compare answers to different questions; \
             pass --force to do it anyway"
        ))
    }
}

/// One sample's content hash: what it asks and its reference.
fn sample_hash(s: &Sample, digests: &HashMap<String, Result<String, String>>) -> String {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"medvqa/fingerprint/v1");
    part(s.question.as_bytes());
    part(s.kind().as_str().as_bytes());
    for o in s.task.options() {
        part(o.as_bytes());
    }
    part(s.task.answer_text().unwrap_or_default().as_bytes());
    for b in &s.boxes {
        part(format!("{}:{:?}", b.image, b.bbox).as_bytes());
    }
    for img in &s.images {
        part(img.key.as_bytes());
        match digests.get(&img.key) {
            Some(Ok(d)) => part(d.as_bytes()),
            Some(Err(e)) => part(format!("unreadable: {e}").as_bytes()),
            None => part(b"no digest"),
        }
    }
    hex::encode(&h.finalize()[..8])
}

/// SHA-256 of a file's bytes, read 1 MiB at a time (model files and videos run to gigabytes).
pub fn file_sha256(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(h.finalize().into()),
            n => h.update(&buf[..n]),
        }
    }
}

/// SHA-256 of each distinct image's bytes (encoded bytes for files and HF cells, raw
/// pixels for generated images), by image key; the error where an image cannot be read.
pub fn image_digests(samples: &[Sample]) -> HashMap<String, Result<String, String>> {
    let mut unique: BTreeMap<&str, &ImageSource> = BTreeMap::new();
    for s in samples {
        for i in &s.images {
            unique.entry(i.key.as_str()).or_insert(&i.source);
        }
    }
    // A video's bytes are hashed once for all its frames.
    let videos: BTreeMap<&std::path::Path, ()> = unique
        .values()
        .filter_map(|s| match s {
            ImageSource::Frame { video, .. } => Some((video.path(), ())),
            _ => None,
        })
        .collect();
    let video_digests: HashMap<&std::path::Path, Result<String, String>> = videos
        .into_par_iter()
        .map(|(p, ())| {
            let d = file_sha256(p)
                .map(hex::encode)
                .map_err(|e| format!("cannot read video {}: {e}", p.display()));
            (p, d)
        })
        .collect();
    unique
        .par_iter()
        .map(|(key, source)| {
            let digest = match source {
                ImageSource::File(p) => std::fs::read(p)
                    .map(|b| hex::encode(Sha256::digest(&b)))
                    .map_err(|e| format!("cannot read image {}: {e}", p.display())),
                ImageSource::Bytes(b) => Ok(hex::encode(Sha256::digest(b))),
                ImageSource::Deferred(d) => d
                    .read()
                    .map(|b| hex::encode(Sha256::digest(&b)))
                    .map_err(|e| e.to_string()),
                ImageSource::Frame { video, index } => match video_digests.get(video.path()) {
                    Some(Ok(d)) => Ok(hex::encode(Sha256::digest(format!("{d}#{index}")))),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err(format!("video {} was not hashed", video.path().display())),
                },
                ImageSource::Pixels(p) => {
                    let mut h = Sha256::new();
                    h.update(p.width().to_le_bytes());
                    h.update(p.height().to_le_bytes());
                    h.update([p.channels() as u8]);
                    h.update(p.as_raw());
                    Ok(hex::encode(h.finalize()))
                }
            };
            (key.to_string(), digest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::phantom::{self, PhantomSet};

    fn phantom_fp(seed: u64) -> Fingerprint {
        let ds = phantom::generate(PhantomSet::Cxr, seed, 10);
        let d = image_digests(&ds);
        Fingerprint::new("phantom:all", Some(seed), &ds, &d)
    }

    #[test]
    fn same_ids_from_different_seeds_disagree() {
        let a = phantom_fp(7);
        let b = phantom_fp(1);
        assert_eq!(a, phantom_fp(7));
        assert!(a.disagreement(&a).is_none());
        let d = a
            .disagreement(&b)
            .expect("seeds 7 and 1 share ids with other content");
        assert!(d.shared > 0 && d.count > 0, "{d:?}");
        assert!(b.samples.contains_key(&d.id));
        assert_eq!(a.describe(), "phantom:all (seed 7)");
    }

    #[test]
    fn run_folders_are_checked_in_pairs() {
        let (a, b, none) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        phantom_fp(7).write(a.path()).unwrap();
        phantom_fp(1).write(b.path()).unwrap();
        let err = check_pair(a.path(), b.path(), false).unwrap_err();
        assert!(err.contains("disagree on sample cxr/"), "{err}");
        assert!(err.contains("--force"), "{err}");
        let notes = check_pair(a.path(), b.path(), true).unwrap();
        assert!(notes[0].starts_with("warning: "), "{notes:?}");
        assert!(check_pair(a.path(), a.path(), false).unwrap().is_empty());
        // A run from before fingerprints cannot be checked, and says so.
        let notes = check_pair(a.path(), none.path(), false).unwrap();
        assert!(notes[0].contains("no dataset.json"), "{notes:?}");
    }
}

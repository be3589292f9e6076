//! One writer per run folder.
//!
//! `eval`, `merge` and `score --out` hold an exclusive lock on `<run folder>/.medvqa.lock`
//! while they write there. Two processes appending to one `predictions.jsonl` (a restarted
//! pod whose predecessor still runs, the same command started twice) would compute and
//! store predictions twice; the second process now stops with one line naming the holder's
//! pid, before it writes anything.
//!
//! The lock is `flock(2)` through the standard library's [`std::fs::File::try_lock`]
//! (stable since Rust 1.89; no extra crate needed): the kernel releases it when the holder
//! exits, however it exits, so a SIGKILL never leaves a stale lock. The file itself stays,
//! holding the last holder's pid; its presence means nothing.
//!
//! Within one process the lock is re-entrant: `merge` holds it and builds its report
//! through `eval`, which asks again for the same folder.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::RunError;

/// The lock file's name inside the run folder.
pub const LOCK_FILE: &str = ".medvqa.lock";

/// Folders this process holds, with the open lock file (dropped with the last guard).
static HELD: Mutex<Option<HashMap<PathBuf, Arc<File>>>> = Mutex::new(None);

/// The lock on one run folder; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    file: Option<Arc<File>>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Ok(mut held) = HELD.lock() else { return };
        // The last guard for this folder (this one and the registry's copy) releases it.
        if self
            .file
            .as_ref()
            .is_some_and(|f| Arc::strong_count(f) <= 2)
            && let Some(map) = held.as_mut()
        {
            map.remove(&self.dir);
        }
        self.file = None;
    }
}

/// Creates `dir` if needed and takes its lock. Another process holding it is
/// [`RunError::Locked`], naming its pid when the lock file tells it.
pub fn acquire(dir: &Path) -> Result<RunLock, RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::RunFolder {
        path: dir.to_path_buf(),
        source,
    })?;
    let key = dir.canonicalize().map_err(|source| RunError::RunFolder {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut held = HELD
        .lock()
        .map_err(|_| RunError::Invalid("the run-folder lock registry is poisoned".into()))?;
    let map = held.get_or_insert_with(HashMap::new);
    if let Some(file) = map.get(&key) {
        return Ok(RunLock {
            dir: key,
            file: Some(file.clone()),
        });
    }
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(RunError::io("cannot open the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(RunError::Locked {
                dir: dir.to_path_buf(),
                holder: holder_of(&text),
            });
        }
        Err(TryLockError::Error(e)) => {
            return Err(RunError::io("cannot lock", &path)(e));
        }
    }
    // Ours: leave our pid for the next one to name.
    let pid = std::process::id();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "pid {pid}"))
        .and_then(|()| file.flush())
        .map_err(RunError::io("cannot write", &path))?;
    let file = Arc::new(file);
    map.insert(key.clone(), file.clone());
    Ok(RunLock {
        dir: key,
        file: Some(file),
    })
}

/// The pid a lock file names (`pid 1234`).
fn holder_of(text: &str) -> Option<u32> {
    text.trim().strip_prefix("pid ")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_reentrant_in_one_process_and_names_its_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let a = acquire(&dir).unwrap();
        let b = acquire(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert_eq!(holder_of(&text), Some(std::process::id()));
        drop(a);
        // Still held through `b`: another open file description cannot take it.
        let other = File::open(dir.join(LOCK_FILE)).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(b);
        assert!(other.try_lock().is_ok(), "released with the last guard");
    }

    #[test]
    fn a_folder_held_elsewhere_is_refused_with_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(LOCK_FILE);
        std::fs::write(&path, "pid 4242\n").unwrap();
        // A separate open file description stands in for another process.
        let holder = File::open(&path).unwrap();
        holder.try_lock().unwrap();
        let e = acquire(&dir).unwrap_err();
        assert!(
            matches!(
                e,
                RunError::Locked {
                    holder: Some(4242),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("pid 4242"), "{e}");
        assert_eq!(holder_of("garbage"), None);
    }
}

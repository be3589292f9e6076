//! ONNX Runtime: finding the library, the execution provider, the thread budget and the
//! session pools (docs/design.md §8).
//!
//! `ort` is built with `load-dynamic`, so `libonnxruntime` is found at run time, once per
//! process, in this order: [`RuntimeOptions::library`] (a `--ort-lib` flag), `$ORT_DYLIB_PATH`,
//! beside the executable (and in `lib/` there), `.ort/` of the checkout a `target/*/medvqa`
//! binary was built in, `.ort/` in the working directory (where `scripts/setup.sh` puts it),
//! then the `capi/` folder of a `python3` `onnxruntime` package. When none is found the error is one line that says how to fix it;
//! no `ort` API is touched before the library is loaded, so nothing can panic.
//!
//! `Session::run` takes `&mut self`, so each graph gets a [`SessionPool`] of `sessions`
//! sessions, each with `threads / sessions` intra-op threads: never more threads than the
//! budget. The CPU provider is the default; `cuda` is used when asked for and present in the
//! loaded library, and otherwise falls back to CPU with a warning. Nothing requires a GPU.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider as _};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

/// The library version medvqa is built and tested against (`scripts/setup.sh` fetches it).
pub const ORT_VERSION: &str = "1.31.1";

/// The one-line fix printed when the library is missing.
pub const ORT_FIX: &str = "run scripts/setup.sh (it puts libonnxruntime.so.1.31.1 in .ort/), \
     or export ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.31.1, \
     or pip install onnxruntime==1.31.1";

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// CUDA on this device id; falls back to CPU with a warning when unavailable.
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(id)) if id >= 0 => Ok(Device::Cuda(id)),
                _ => Err(format!(
                    "unknown execution provider {s:?} (expected cpu, cuda or cuda:N)"
                )),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
        }
    }
}

/// How ONNX Runtime is set up. Results never depend on these settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Total threads for ONNX Runtime (default: all cores).
    pub threads: Option<usize>,
    /// Sessions per graph, i.e. how many batches can run at once (default 1).
    pub sessions: usize,
    pub device: Device,
    /// An explicit `libonnxruntime` path, searched before everything else.
    pub library: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            threads: None,
            sessions: 1,
            device: Device::Cpu,
            library: None,
        }
    }
}

impl RuntimeOptions {
    /// `(sessions, intra-op threads per session)`: sessions × threads ≤ the budget, both ≥ 1.
    pub fn thread_split(&self) -> (usize, usize) {
        let budget = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let sessions = self.sessions.clamp(1, budget);
        (sessions, (budget / sessions).max(1))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found (looked in: {}); fix: {ORT_FIX}", tried.join("; "))]
    NotFound { tried: Vec<String> },
    #[error("cannot load ONNX Runtime from {path}: {message}; fix: {ORT_FIX}")]
    Load { path: PathBuf, message: String },
    #[error("cannot start ONNX Runtime from {path}: {message}")]
    Environment { path: PathBuf, message: String },
}

/// The loaded library and its environment.
pub struct Runtime {
    pub library: PathBuf,
    env: Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();

/// The process-wide runtime, loading the library on first use. Later calls return the same
/// runtime (a process can load one ONNX Runtime only), whatever their `library` option.
pub fn runtime(opts: &RuntimeOptions) -> Result<&'static Runtime, RuntimeError> {
    RUNTIME
        .get_or_init(|| load(opts))
        .as_ref()
        .map_err(Clone::clone)
}

fn load(opts: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
    let path = find_library(opts)?;
    let p = path.clone();
    // ort must not be able to take the process down: a panic inside it becomes an error.
    let built = std::panic::catch_unwind(move || -> Result<Environment, RuntimeError> {
        let builder = ort::init_from(&p).map_err(|e| RuntimeError::Load {
            path: p.clone(),
            message: e.to_string(),
        })?;
        builder
            .with_name("medvqa")
            .with_telemetry(false)
            .build()
            .map_err(|e| RuntimeError::Environment {
                path: p.clone(),
                message: e.to_string(),
            })
    });
    match built {
        Ok(Ok(env)) => Ok(Runtime { library: path, env }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RuntimeError::Load {
            path,
            message: "ONNX Runtime panicked while loading".into(),
        }),
    }
}

/// The library file names tried in each folder.
fn library_names() -> Vec<String> {
    let mut names = Vec::new();
    if cfg!(target_os = "windows") {
        names.push("onnxruntime.dll".to_string());
    } else if cfg!(target_os = "macos") {
        names.push(format!("libonnxruntime.{ORT_VERSION}.dylib"));
        names.push("libonnxruntime.dylib".to_string());
    } else {
        names.push(format!("libonnxruntime.so.{ORT_VERSION}"));
        names.push("libonnxruntime.so.1".to_string());
        names.push("libonnxruntime.so".to_string());
    }
    names
}

/// The first library file in `dir`: the pinned name first, then any `libonnxruntime.so.*`
/// (a pip wheel ships one versioned file).
fn library_in(dir: &Path) -> Option<PathBuf> {
    for name in library_names() {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so.") || n.starts_with("libonnxruntime.1.")
            })
        })
        .collect();
    found.sort();
    found.pop()
}

/// Searches the places listed in the module docs, in order.
pub fn find_library(opts: &RuntimeOptions) -> Result<PathBuf, RuntimeError> {
    let mut tried = Vec::new();
    if let Some(p) = &opts.library {
        if p.is_file() {
            return Ok(absolute(p));
        }
        tried.push(format!("--ort-lib {} (missing)", p.display()));
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            if p.is_file() {
                return Ok(absolute(&p));
            }
            tried.push(format!("ORT_DYLIB_PATH={} (missing)", p.display()));
        }
        _ => tried.push("ORT_DYLIB_PATH (unset)".into()),
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        for d in [dir.clone(), dir.join("lib")] {
            if let Some(p) = library_in(&d) {
                return Ok(p);
            }
        }
        tried.push(format!("beside the executable in {}", dir.display()));
        // A binary built in a checkout (`target/release/medvqa`) finds the checkout's
        // `.ort/` from any working directory.
        if let Some(checkout) = dir
            .parent()
            .filter(|t| t.file_name().is_some_and(|n| n == "target"))
            .and_then(Path::parent)
        {
            if let Some(p) = library_in(&checkout.join(".ort")) {
                return Ok(p);
            }
            tried.push(format!("{}/.ort", checkout.display()));
        }
    }
    // Where scripts/setup.sh puts it, for a binary run from the repository root.
    if let Some(p) = library_in(Path::new(".ort")) {
        return Ok(absolute(&p));
    }
    tried.push("./.ort (scripts/setup.sh's folder)".into());
    match python_onnxruntime_dir() {
        Some(dir) => {
            if let Some(p) = library_in(&dir.join("capi")) {
                return Ok(p);
            }
            tried.push(format!("python3 onnxruntime package in {}", dir.display()));
        }
        None => tried.push("python3 onnxruntime package (not installed)".into()),
    }
    Err(RuntimeError::NotFound { tried })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The folder of the `onnxruntime` Python package, if `python3` has one.
fn python_onnxruntime_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(s.trim());
    dir.is_dir().then_some(dir)
}

/// Whether the loaded ONNX Runtime library has the CUDA execution provider (false when no
/// library is loaded yet or it cannot be asked).
pub fn cuda_available() -> bool {
    RUNTIME.get().is_some_and(|r| r.is_ok()) && ep::CUDA::is_available().unwrap_or(false)
}

/// What building a session needs: the runtime, the device, threads per session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub runtime: &'static Runtime,
    pub device: Device,
    pub intra_threads: usize,
    pub sessions: usize,
}

impl SessionConfig {
    /// Loads the runtime and splits the thread budget. Warnings (CUDA missing) go to
    /// `warnings`.
    pub fn new(opts: &RuntimeOptions, warnings: &mut Vec<String>) -> Result<Self, RuntimeError> {
        let runtime = runtime(opts)?;
        let (sessions, intra_threads) = opts.thread_split();
        let mut device = opts.device;
        if let Device::Cuda(_) = device
            && !cuda_available()
        {
            warnings.push(format!(
                "the CUDA execution provider is not in {} (the PyPI onnxruntime wheel is CPU-only; \
                 onnxruntime-gpu has it); running on CPU",
                runtime.library.display()
            ));
            device = Device::Cpu;
        }
        Ok(SessionConfig {
            runtime,
            device,
            intra_threads,
            sessions,
        })
    }

    /// One session on `path`. With CUDA, a registration failure falls back to CPU and says so.
    pub fn session(&self, path: &Path, warnings: &mut Vec<String>) -> Result<Session, ort::Error> {
        if let Device::Cuda(id) = self.device {
            match self.build(path, Some(id)) {
                Ok(s) => return Ok(s),
                Err(e) => warnings.push(format!(
                    "CUDA could not run {}: {e}; running it on CPU",
                    path.display()
                )),
            }
        }
        self.build(path, None)
    }

    fn build(&self, path: &Path, cuda: Option<i32>) -> Result<Session, ort::Error> {
        let up = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            ort::Error::new_with_code(e.code(), e.message())
        };
        let mut b = Session::builder(&self.runtime.env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(up)?
            .with_intra_threads(self.intra_threads)
            .map_err(up)?
            .with_inter_threads(1)
            .map_err(up)?
            // ORT's intra-op threads otherwise spin between ops, holding cores that the
            // producer thread (decode, perturb, preprocess the next batch) needs. Measured on
            // 2 cores: the reference VLM's graphs 24-30 s -> 18-19 s, the fixtures' halved
            // (BENCHMARKS.md, "Where an eval's time goes"). Results do not change.
            .with_intra_op_spinning(false)
            .map_err(up)?;
        if let Some(id) = cuda {
            b = b
                .with_execution_providers([ep::CUDA::default()
                    .with_device_id(id)
                    .build()
                    .error_on_failure()])
                .map_err(up)?;
        }
        b.commit_from_file(path)
    }
}

/// `n` sessions of one graph; [`SessionPool::get`] lends one out, waiting while all are busy.
pub struct SessionPool {
    path: PathBuf,
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("path", &self.path)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl SessionPool {
    /// Loads `cfg.sessions` sessions of the graph at `path`.
    pub fn open(
        cfg: &SessionConfig,
        path: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<SessionPool, ort::Error> {
        let first = cfg.session(path, warnings)?;
        let inputs = first
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let outputs = first
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let mut idle = vec![first];
        for _ in 1..cfg.sessions {
            idle.push(cfg.session(path, warnings)?);
        }
        Ok(SessionPool {
            path: path.to_path_buf(),
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            inputs,
            outputs,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The graph's input names, in order.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// The declared element type and shape (`-1` for symbolic dims) of input `name`.
    pub fn input_type(&self, name: &str) -> Option<(ort::value::TensorElementType, Vec<i64>)> {
        let guard = self.idle.lock().ok()?;
        let s = guard.first()?;
        let outlet = s.inputs().iter().find(|i| i.name() == name)?;
        match outlet.dtype() {
            ort::value::ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
            _ => None,
        }
    }

    /// Lends a session until the guard drops.
    pub fn get(&self) -> PooledSession<'_> {
        let mut idle = lock(&self.idle);
        loop {
            if let Some(s) = idle.pop() {
                return PooledSession {
                    pool: self,
                    session: Some(s),
                };
            }
            idle = match self.returned.wait(idle) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a session was lent cannot leave the Vec half-updated.
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A session on loan from a [`SessionPool`].
pub struct PooledSession<'p> {
    pool: &'p SessionPool,
    session: Option<Session>,
}

impl std::ops::Deref for PooledSession<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        // Only `Drop` takes the session out.
        self.session.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            lock(&self.pool.idle).push(s);
            self.pool.returned.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_budget_is_never_exceeded() {
        for threads in 1..=9 {
            for sessions in 0..=12 {
                let o = RuntimeOptions {
                    threads: Some(threads),
                    sessions,
                    ..RuntimeOptions::default()
                };
                let (s, t) = o.thread_split();
                assert!(s >= 1 && t >= 1);
                assert!(s * t <= threads, "{threads} {sessions}: {s}x{t}");
            }
        }
    }

    #[test]
    fn devices_parse_and_reject_unknown_names() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:1".parse::<Device>(), Ok(Device::Cuda(1)));
        assert!("gpu".parse::<Device>().is_err());
        assert!("cuda:-1".parse::<Device>().is_err());
    }

    #[test]
    fn a_missing_explicit_library_is_reported_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let opts = RuntimeOptions {
            library: Some(dir.path().join("nope.so")),
            ..RuntimeOptions::default()
        };
        // The search goes on past a missing explicit path; whether it finds one depends on
        // the machine, but the missing path is never returned.
        match find_library(&opts) {
            Ok(p) => assert_ne!(p, dir.path().join("nope.so")),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("nope.so") && msg.contains("scripts/setup.sh"),
                    "{msg}"
                );
                assert!(!msg.contains('\n'));
            }
        }
    }

    #[test]
    fn library_files_are_found_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        if cfg!(target_os = "linux") {
            let p = dir.path().join("libonnxruntime.so.1.99.0");
            std::fs::write(&p, b"").unwrap();
            assert_eq!(library_in(dir.path()), Some(p));
            let pinned = dir.path().join(format!("libonnxruntime.so.{ORT_VERSION}"));
            std::fs::write(&pinned, b"").unwrap();
            assert_eq!(library_in(dir.path()), Some(pinned));
        }
    }
}

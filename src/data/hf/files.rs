//! Spec paths to data files, image roots and path resolution under them.

use super::*;

/// The files a spec path names: the file itself; every file with one of `exts` in a folder
/// (or, when it has none, in its `data/` subfolder, the HF repository layout); or the
/// files matching a `*` pattern in the last path component. Sorted by name.
pub fn data_files(spec_path: &str, exts: &[&str]) -> Result<Vec<PathBuf>, DataError> {
    let path = PathBuf::from(spec_path);
    let has_ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    let list = |dir: &Path, keep: &dyn Fn(&Path) -> bool| -> Result<Vec<PathBuf>, DataError> {
        let rd = std::fs::read_dir(dir).map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && keep(p))
            .collect();
        v.sort();
        Ok(v)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = if name.contains('*') {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        list(&dir, &|p: &Path| {
            p.file_name()
                .is_some_and(|n| wildcard(&name, &n.to_string_lossy()))
        })?
    } else if path.is_dir() {
        let here = list(&path, &has_ext)?;
        if here.is_empty() && path.join("data").is_dir() {
            list(&path.join("data"), &has_ext)?
        } else {
            here
        }
    } else {
        std::fs::metadata(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        vec![path.clone()]
    };
    if files.is_empty() {
        return Err(DataError::Invalid {
            path,
            message: format!("no .{} files found", exts.join(" or .")),
        });
    }
    Ok(files)
}

/// `*` matches any run of characters; everything else matches itself.
pub(super) fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Where image paths resolve: `--image-root`, else the first data file's folder, or that
/// folder's parent when the files sit in an HF repository's `data/` folder without an
/// `images/` folder of their own.
pub fn image_root(files: &[PathBuf], given: Option<&Path>) -> PathBuf {
    if let Some(r) = given {
        return r.to_path_buf();
    }
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    match dir.parent() {
        Some(up)
            if dir.file_name().is_some_and(|n| n == "data") && !dir.join("images").is_dir() =>
        {
            if up.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                up.to_path_buf()
            }
        }
        _ => dir,
    }
}

/// [`resolve_under`](crate::data::decode::resolve_under) once per distinct path: Kvasir-VQA-x1
/// asks for each of its 6.5k images about 25 times.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    seen: std::collections::HashMap<String, Result<PathBuf, ImageError>>,
}

impl Resolver {
    pub fn new(root: PathBuf) -> Resolver {
        Resolver {
            root,
            seen: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn resolve(&mut self, rel: &str) -> Result<PathBuf, ImageError> {
        if let Some(r) = self.seen.get(rel) {
            return r.clone();
        }
        let r = crate::data::decode::resolve_under(&self.root, rel);
        self.seen.insert(rel.to_string(), r.clone());
        r
    }
}

/// A file's name for locations in failures.
pub fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

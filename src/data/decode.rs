//! Safe image loading, shared by every loader.
//!
//! - Paths from a dataset file are resolved with [`resolve_under`]: absolute paths, `..`
//!   components and symlinks that lead out of the dataset root are refused.
//! - The format is sniffed from the first bytes, never from the file extension: PNG, JPEG,
//!   WebP, and DICOM by its `DICM` magic ([`super::dicom`]).
//! - The header is read first and an image over the pixel budget is refused before any
//!   pixel buffer is allocated (decompression bombs).
//! - [`ImageStore`] decodes each image once, however many questions share it, and keeps a
//!   bounded number of bytes of decoded pixels.

use std::io::{BufReader, Cursor, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use image::{ImageFormat, ImageReader, Limits};

use super::dicom::Window;
use crate::cache::BoundedCache;
use crate::pixels::Pixels;
use crate::sample::{ImageRef, ImageSource};

/// Default pixel budget: 64 megapixels (an 8000×8000 image). Mammograms and large
/// radiographs fit; a 30000×30000 header does not.
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;

/// The formats medvqa decodes. Anything else is refused with its sniffed name.
const ALLOWED: [ImageFormat; 3] = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP];

pub use crate::sample::ImageError;

/// Resolves a dataset-relative image path under `root`, refusing anything that could reach
/// outside it. The file must exist.
pub fn resolve_under(root: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    if rel.trim().is_empty() {
        return Err(ImageError::EmptyPath {
            path: rel.to_string(),
        });
    }
    let p = Path::new(rel);
    for c in p.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return Err(ImageError::AbsolutePath {
                    path: rel.to_string(),
                });
            }
            Component::ParentDir => {
                return Err(ImageError::ParentComponent {
                    path: rel.to_string(),
                });
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    let joined = root.join(p);
    let real = match joined.canonicalize() {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::Missing { path: joined });
        }
        Err(e) => {
            return Err(ImageError::Io {
                what: joined.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let real_root = root.canonicalize().map_err(|e| ImageError::Io {
        what: root.display().to_string(),
        message: e.to_string(),
    })?;
    if !real.starts_with(&real_root) {
        return Err(ImageError::EscapesRoot {
            path: rel.to_string(),
            root: root.to_path_buf(),
        });
    }
    Ok(real)
}

/// Decodes encoded bytes after sniffing the format and checking the header against the
/// pixel budget. `what` names the image in errors.
pub fn decode_bytes(bytes: &[u8], what: &str, max_pixels: u64) -> Result<Pixels, ImageError> {
    decode_bytes_with(bytes, what, max_pixels, Window::Auto)
}

/// As [`decode_bytes`], with how DICOM grey values become 8-bit.
pub fn decode_bytes_with(
    bytes: &[u8],
    what: &str,
    max_pixels: u64,
    window: Window,
) -> Result<Pixels, ImageError> {
    if super::dicom::is_dicom(bytes) {
        return super::dicom::decode(bytes, what, window, |w, h| {
            check_budget(what, w, h, max_pixels)
        });
    }
    let format = sniff(bytes, what)?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ImageError::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    check_budget(what, width, height, max_pixels)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits_for(width, height));
    let img = reader.decode().map_err(|e| ImageError::Decode {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    Ok(Pixels::from_dynamic(img))
}

/// Reads only the header: `(width, height)`. Used by loaders that must convert pixel-frame
/// boxes without decoding the image.
pub fn read_dimensions(source: &ImageSource, what: &str) -> Result<(u32, u32), ImageError> {
    match source {
        ImageSource::Pixels(p) => Ok(p.dimensions()),
        ImageSource::Bytes(b) => dims_of(b, what),
        ImageSource::Deferred(d) => dims_of(&d.read()?, what),
        ImageSource::Frame { video, .. } => Ok(video.dimensions()),
        ImageSource::File(path) => {
            let mut head = Vec::with_capacity(64 * 1024);
            let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
            // Headers of PNG/JPEG/WebP sit in the first few KiB; JPEG may put EXIF first.
            BufReader::new(f)
                .take(1 << 20)
                .read_to_end(&mut head)
                .map_err(|e| io_err(path, e))?;
            dims_of(&head, what)
        }
    }
}

fn dims_of(bytes: &[u8], what: &str) -> Result<(u32, u32), ImageError> {
    if super::dicom::is_dicom(bytes) {
        return super::dicom::dimensions(bytes, what);
    }
    let format = sniff(bytes, what)?;
    ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| ImageError::Decode {
            what: what.to_string(),
            message: e.to_string(),
        })
}

fn sniff(bytes: &[u8], what: &str) -> Result<ImageFormat, ImageError> {
    match image::guess_format(bytes) {
        Ok(f) if ALLOWED.contains(&f) => Ok(f),
        Ok(f) => Err(ImageError::UnsupportedFormat {
            what: what.to_string(),
            sniffed: format!("{f:?}"),
        }),
        Err(_) => Err(ImageError::UnsupportedFormat {
            what: what.to_string(),
            sniffed: "unknown bytes".to_string(),
        }),
    }
}

fn check_budget(what: &str, width: u32, height: u32, budget: u64) -> Result<(), ImageError> {
    let pixels = width as u64 * height as u64;
    if pixels > budget {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            width,
            height,
            pixels,
            budget,
        });
    }
    Ok(())
}

/// Decoder limits that admit exactly the checked dimensions, with room for 16-bit RGBA.
fn limits_for(width: u32, height: u32) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(width);
    l.max_image_height = Some(height);
    l.max_alloc = Some((width as u64 * height as u64 * 8).max(1 << 20));
    l
}

fn io_err(path: &Path, e: std::io::Error) -> ImageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ImageError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        ImageError::Io {
            what: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// Decodes one image from wherever its bytes are.
pub fn decode_source(
    source: &ImageSource,
    what: &str,
    max_pixels: u64,
) -> Result<Pixels, ImageError> {
    decode_source_with(source, what, max_pixels, Window::Auto)
}

fn decode_source_with(
    source: &ImageSource,
    what: &str,
    max_pixels: u64,
    window: Window,
) -> Result<Pixels, ImageError> {
    match source {
        ImageSource::Pixels(p) => {
            check_budget(what, p.width(), p.height(), max_pixels)?;
            Ok((**p).clone())
        }
        ImageSource::Bytes(b) => decode_bytes_with(b, what, max_pixels, window),
        ImageSource::Deferred(d) => decode_bytes_with(&d.read()?, what, max_pixels, window),
        ImageSource::Frame { video, index } => video.frame(*index, max_pixels),
        ImageSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
            decode_bytes_with(&bytes, what, max_pixels, window)
        }
    }
}

/// A decode-once cache of images keyed by [`ImageRef::key`], on [`BoundedCache`].
///
/// Concurrent requests for one key wait for a single decode. Decoded pixels are kept up to
/// `capacity_bytes`; past that the oldest entries are dropped (and would be decoded again if
/// asked for, which the pipeline avoids by grouping work by image). Failures are cached too:
/// a corrupt file is read once and every question on it gets the same error.
pub struct ImageStore {
    max_pixels: u64,
    dicom_window: Window,
    cache: BoundedCache<String, Result<Arc<Pixels>, ImageError>>,
}

impl ImageStore {
    pub fn new(max_pixels: u64, capacity_bytes: usize) -> ImageStore {
        ImageStore {
            max_pixels,
            dicom_window: Window::Auto,
            cache: BoundedCache::new(capacity_bytes),
        }
    }

    /// How DICOM grey values become 8-bit in this store (default: the file's own VOI).
    pub fn with_dicom_window(mut self, window: Window) -> ImageStore {
        self.dicom_window = window;
        self
    }

    /// Returns the decoded image, decoding it on first use.
    pub fn get(&self, image: &ImageRef) -> Result<Arc<Pixels>, ImageError> {
        self.cache.get_or_make(
            &image.key,
            || {
                decode_source_with(
                    &image.source,
                    &image.key,
                    self.max_pixels,
                    self.dicom_window,
                )
                .map(Arc::new)
            },
            |r| r.as_ref().map_or(0, |p| p.as_raw().len()),
        )
    }

    /// How many decodes have run (not cache hits). Tests use it to prove decode-once.
    pub fn decode_count(&self) -> u64 {
        self.cache.made()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};

    fn png(w: u32, h: u32) -> Vec<u8> {
        Pixels::Gray(GrayImage::from_pixel(w, h, Luma([7])))
            .encode_png()
            .unwrap()
    }

    #[test]
    fn paths_with_parent_or_root_are_refused_before_touching_disk() {
        let root = Path::new("/nonexistent-root");
        assert!(matches!(
            resolve_under(root, "../../etc/passwd"),
            Err(ImageError::ParentComponent { .. })
        ));
        assert!(matches!(
            resolve_under(root, "/etc/passwd"),
            Err(ImageError::AbsolutePath { .. })
        ));
        assert!(matches!(
            resolve_under(root, "a/../../b"),
            Err(ImageError::ParentComponent { .. })
        ));
        assert!(matches!(
            resolve_under(root, " "),
            Err(ImageError::EmptyPath { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.png"), png(2, 2)).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.png"),
            root.path().join("link.png"),
        )
        .unwrap();
        std::fs::write(root.path().join("ok.png"), png(2, 2)).unwrap();
        assert!(matches!(
            resolve_under(root.path(), "link.png"),
            Err(ImageError::EscapesRoot { .. })
        ));
        assert!(resolve_under(root.path(), "./ok.png").is_ok());
        assert!(matches!(
            resolve_under(root.path(), "missing.png"),
            Err(ImageError::Missing { .. })
        ));
    }

    #[test]
    fn format_is_sniffed_from_bytes() {
        let bytes = png(3, 2);
        let p = decode_bytes(&bytes, "named.jpg", DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(p.dimensions(), (3, 2));
        assert!(matches!(
            decode_bytes(b"GIF89a......", "x.png", DEFAULT_MAX_PIXELS),
            Err(ImageError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn over_budget_is_refused_from_the_header() {
        let bytes = png(100, 100);
        let err = decode_bytes(&bytes, "big", 9_999).unwrap_err();
        assert!(
            matches!(err, ImageError::TooLarge { pixels: 10_000, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let bytes = png(64, 64);
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            decode_bytes(cut, "cut", DEFAULT_MAX_PIXELS),
            Err(ImageError::Decode { .. })
        ));
    }

    #[test]
    fn store_decodes_each_key_once_across_threads() {
        let bytes: Arc<[u8]> = png(8, 8).into();
        let store = ImageStore::new(DEFAULT_MAX_PIXELS, 1 << 20);
        let img = ImageRef {
            key: "a".into(),
            source: ImageSource::Bytes(bytes),
        };
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| store.get(&img).unwrap());
            }
        });
        assert_eq!(store.decode_count(), 1);
    }

    #[test]
    fn store_caches_failures_and_bounds_memory() {
        let store = ImageStore::new(DEFAULT_MAX_PIXELS, 100);
        let bad = ImageRef {
            key: "bad".into(),
            source: ImageSource::Bytes(Arc::from(&b"nope"[..])),
        };
        assert!(store.get(&bad).is_err());
        assert!(store.get(&bad).is_err());
        assert_eq!(store.decode_count(), 1);
        for i in 0..5 {
            let r = ImageRef {
                key: format!("k{i}"),
                source: ImageSource::Bytes(png(8, 8).into()),
            };
            store.get(&r).unwrap();
        }
        assert!(
            store.cache.held() <= 128,
            "cache holds {} bytes",
            store.cache.held()
        );
    }
}

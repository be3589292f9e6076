//! Decoded images as every stage sees them: 8-bit grayscale or 8-bit RGB.
//!
//! Radiographs stay single-channel so perturbations on them cost a third of RGB work;
//! anything with colour (or alpha, which is dropped) becomes RGB. 16-bit inputs are scaled
//! linearly from the full 16-bit range to 8 bits, the same for every image, so no per-image
//! windowing can make two runs disagree. Writing goes through PNG with fixed settings, so the
//! same pixels always give the same bytes.

use std::io::Cursor;
use std::path::Path;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, GrayImage, ImageEncoder, RgbImage};

/// A decoded image.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    Gray(GrayImage),
    Rgb(RgbImage),
}

impl Pixels {
    /// Converts any decoded image: gray stays gray, everything else becomes RGB, and 16-bit
    /// and float samples are scaled to 8 bits.
    pub fn from_dynamic(img: DynamicImage) -> Pixels {
        match img {
            DynamicImage::ImageLuma8(g) => Pixels::Gray(g),
            DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLumaA16(_) => Pixels::Gray(img.to_luma8()),
            DynamicImage::ImageRgb8(rgb) => Pixels::Rgb(rgb),
            other => Pixels::Rgb(other.to_rgb8()),
        }
    }

    pub fn width(&self) -> u32 {
        match self {
            Pixels::Gray(g) => g.width(),
            Pixels::Rgb(c) => c.width(),
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            Pixels::Gray(g) => g.height(),
            Pixels::Rgb(c) => c.height(),
        }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width(), self.height())
    }

    pub fn channels(&self) -> usize {
        match self {
            Pixels::Gray(_) => 1,
            Pixels::Rgb(_) => 3,
        }
    }

    pub fn is_gray(&self) -> bool {
        matches!(self, Pixels::Gray(_))
    }

    /// Interleaved samples, row-major.
    pub fn as_raw(&self) -> &[u8] {
        match self {
            Pixels::Gray(g) => g.as_raw(),
            Pixels::Rgb(c) => c.as_raw(),
        }
    }

    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        match self {
            Pixels::Gray(g) => g,
            Pixels::Rgb(c) => c,
        }
    }

    /// An RGB copy (gray is replicated into three channels), as VLM processors expect.
    /// The image as RGB, borrowed when it already is: what preprocessing reads without a copy.
    pub fn rgb(&self) -> std::borrow::Cow<'_, RgbImage> {
        match self {
            Pixels::Rgb(c) => std::borrow::Cow::Borrowed(c),
            Pixels::Gray(_) => std::borrow::Cow::Owned(self.to_rgb()),
        }
    }

    pub fn to_rgb(&self) -> RgbImage {
        match self {
            // Each gray value three times, as Pillow's `convert("RGB")` does; the `image`
            // crate's generic conversion goes through floats and is several times slower.
            Pixels::Gray(g) => {
                let rgb: Vec<u8> = g.as_raw().iter().flat_map(|&v| [v, v, v]).collect();
                RgbImage::from_raw(g.width(), g.height(), rgb)
                    .unwrap_or_else(|| RgbImage::new(g.width(), g.height()))
            }
            Pixels::Rgb(c) => c.clone(),
        }
    }

    pub fn to_dynamic(&self) -> DynamicImage {
        match self {
            Pixels::Gray(g) => DynamicImage::ImageLuma8(g.clone()),
            Pixels::Rgb(c) => DynamicImage::ImageRgb8(c.clone()),
        }
    }

    /// PNG bytes with fixed encoder settings: identical pixels give identical bytes.
    /// `Fast` (fdeflate) costs about 1 ms for a 448×384 RGB frame where the default zlib
    /// level takes about 40 ms, for files about 20% larger.
    pub fn encode_png(&self) -> Result<Vec<u8>, image::ImageError> {
        let mut out = Cursor::new(Vec::new());
        let enc =
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
        let (w, h) = self.dimensions();
        let color = match self {
            Pixels::Gray(_) => image::ExtendedColorType::L8,
            Pixels::Rgb(_) => image::ExtendedColorType::Rgb8,
        };
        enc.write_image(self.as_raw(), w, h, color)?;
        Ok(out.into_inner())
    }

    /// Writes PNG bytes to `path` (see [`Pixels::encode_png`]).
    pub fn save_png(&self, path: &Path) -> Result<(), PixelsWriteError> {
        let bytes = self
            .encode_png()
            .map_err(|source| PixelsWriteError::Encode {
                path: path.to_path_buf(),
                source,
            })?;
        std::fs::write(path, bytes).map_err(|source| PixelsWriteError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PixelsWriteError {
    #[error("cannot encode PNG for {path}")]
    Encode {
        path: std::path::PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("cannot write {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgba};

    #[test]
    fn gray_to_rgb_repeats_each_value_as_the_generic_conversion_does() {
        let g = GrayImage::from_fn(17, 5, |x, y| Luma([(x * 15 + y * 7) as u8]));
        let want = DynamicImage::ImageLuma8(g.clone()).to_rgb8();
        assert_eq!(Pixels::Gray(g).to_rgb(), want);
    }

    #[test]
    fn sixteen_bit_gray_scales_over_the_full_range() {
        let g16: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_vec(3, 1, vec![0, 32896, 65535]).unwrap();
        let p = Pixels::from_dynamic(DynamicImage::ImageLuma16(g16));
        assert!(p.is_gray());
        assert_eq!(p.as_raw(), &[0, 128, 255]);
    }

    #[test]
    fn rgba_drops_alpha_to_rgb() {
        let rgba: ImageBuffer<Rgba<u8>, Vec<u8>> =
            ImageBuffer::from_vec(1, 1, vec![10, 20, 30, 0]).unwrap();
        let p = Pixels::from_dynamic(DynamicImage::ImageRgba8(rgba));
        assert_eq!(p.as_raw(), &[10, 20, 30]);
    }

    #[test]
    fn png_bytes_are_stable() {
        let p = Pixels::Gray(GrayImage::from_fn(17, 9, |x, y| {
            Luma([(x * 7 + y * 3) as u8])
        }));
        assert_eq!(p.encode_png().unwrap(), p.encode_png().unwrap());
        let back = image::load_from_memory(&p.encode_png().unwrap()).unwrap();
        assert_eq!(Pixels::from_dynamic(back), p);
    }
}

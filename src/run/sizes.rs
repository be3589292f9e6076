//! Image sizes from image headers, for the `pixels` box frame: the run layer reads them
//! through the data layer's decoder and hands them to the scorer as [`ImageSizes`].

use crate::cache::BoundedCache;
use crate::data::decode::read_dimensions;
use crate::sample::Sample;
use crate::score::ImageSizes;

/// Sizes kept at once (each is a few bytes).
const ENTRIES: usize = 1 << 20;

/// Reads sizes from image headers (no decode), for images as the dataset gives them; each
/// image is read once.
pub struct HeaderSizes(BoundedCache<String, Result<(u32, u32), String>>);

impl Default for HeaderSizes {
    fn default() -> Self {
        HeaderSizes(BoundedCache::new(ENTRIES))
    }
}

impl ImageSizes for HeaderSizes {
    fn size(&self, sample: &Sample, index: usize) -> Result<(u32, u32), String> {
        let img = sample
            .images
            .get(index)
            .ok_or_else(|| format!("sample has no image {index}"))?;
        self.0.get_or_make(
            &img.key,
            || read_dimensions(&img.source, &img.key).map_err(|e| e.to_string()),
            |_| 1,
        )
    }
}

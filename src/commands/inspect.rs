//! `medvqa inspect`: load a dataset, decode its images once, print what loaded and what
//! failed; optionally export it as a medvqa manifest.

use std::fmt::Write;

use anyhow::Context;

use super::{Outcome, load_dataset, out};
use crate::cli::InspectArgs;
use crate::data::decode::ImageStore;
use crate::data::{Counts, manifest};
use crate::progress::Progress;

/// Decoded pixels kept while inspecting: enough for any set's working set, bounded.
const INSPECT_CACHE_BYTES: usize = 512 << 20;

pub fn run(a: &InspectArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let (mut ds, _) = load_dataset(&a.data)?;
    if !a.no_decode {
        let store = ImageStore::new(a.data.max_pixels, INSPECT_CACHE_BYTES)
            .with_dicom_window(a.data.dicom_window);
        let progress = Progress::new(0, "decode", quiet);
        ds.validate_images(&store, &progress);
        progress.finish();
    }
    let counts = Counts::of(&ds);
    if a.json {
        let v = serde_json::json!({
            "dataset": a.data.dataset,
            "name": ds.name,
            "format": ds.format,
            "source_box_frame": ds.source_frame.to_string(),
            "counts": counts,
            "failures": ds.failures,
        });
        out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        out(&render(&a.data.dataset, &ds, &counts))?;
    }
    if let Some(path) = &a.export {
        manifest::write(path, &ds.name, &ds.samples, &export_images_dir(path))
            .with_context(|| format!("exporting to {}", path.display()))?;
        eprintln!("wrote {} samples to {}", ds.samples.len(), path.display());
    }
    Ok(Outcome::from_failures(ds.failures.len()))
}

/// Images that must be copied go to `<stem>_images/` beside the exported manifest.
fn export_images_dir(path: &std::path::Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "manifest".to_string());
    format!("{stem}_images")
}

fn render(spec: &str, ds: &crate::data::Dataset, c: &Counts) -> String {
    let mut s = String::new();
    let join = |m: &mut dyn Iterator<Item = (String, usize)>| {
        m.map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let _ = writeln!(s, "dataset      {spec}");
    let _ = writeln!(
        s,
        "name         {} (format {}, source box frame {})",
        ds.name, ds.format, ds.source_frame
    );
    let _ = writeln!(
        s,
        "samples      {} loaded, {} failed",
        c.samples, c.failures
    );
    let _ = writeln!(s, "images       {} distinct", c.images);
    let _ = writeln!(s, "boxes        {}", c.boxes);
    let _ = writeln!(
        s,
        "by kind      {}",
        join(&mut c.by_kind.iter().map(|(k, v)| (k.clone(), *v)))
    );
    let _ = writeln!(
        s,
        "by modality  {}",
        join(&mut c.by_modality.iter().map(|(k, v)| (k.clone(), *v)))
    );
    let _ = writeln!(
        s,
        "by images    {}",
        join(
            &mut c
                .by_n_images
                .iter()
                .map(|(k, v)| (format!("{k} image(s):"), *v))
        )
    );
    if !c.meta_keys.is_empty() {
        let _ = writeln!(
            s,
            "meta keys    {}  (samples with each; --filter KEY=VALUE and --by KEY use them)",
            join(&mut c.meta_keys.iter().map(|(k, v)| (k.clone(), *v)))
        );
    }
    if !ds.failures.is_empty() {
        let _ = writeln!(s, "failures ({}):", ds.failures.len());
        for f in &ds.failures {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}

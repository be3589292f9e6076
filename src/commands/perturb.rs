//! `medvqa perturb`: write perturbed copies of a dataset ([`crate::run::export`]) and/or a
//! contact sheet of one sample across severities ([`crate::run::write_sheet`]).

use super::{Outcome, load_dataset, out};
use crate::cli::PerturbArgs;
use crate::run::{self, ExportRequest, SheetRequest};

pub fn run(a: &PerturbArgs, quiet: bool) -> anyhow::Result<Outcome> {
    run::export::check_names(&a.perturbation)?;
    let (ds, _) = load_dataset(&a.data)?;
    let mut failed = ds.failures.len();
    if let Some(dir) = &a.out {
        let s = run::export(
            &ds,
            &ExportRequest {
                perturbations: a.perturbation.clone(),
                severities: a.severity.clone(),
                any_modality: a.any_modality,
                seed: a.seed,
                out: dir.clone(),
                max_pixels: a.data.max_pixels,
                dicom_window: a.data.dicom_window,
                quiet,
            },
        )?;
        out(&format!(
            "wrote {} samples ({} images) to {}; {} failed\n",
            s.samples,
            s.images,
            s.manifest.display(),
            s.failures.len()
        ))?;
        for f in s.failures.iter().take(20) {
            eprintln!("  {f}");
        }
        if s.failures.len() > 20 {
            eprintln!("  … and {} more in failures.jsonl", s.failures.len() - 20);
        }
        failed = s.failures.len();
    }
    if let Some(path) = &a.sheet {
        let (id, rows) = run::write_sheet(
            &ds,
            &SheetRequest {
                perturbations: a.perturbation.clone(),
                severities: a.severity.clone(),
                seed: a.seed,
                path: path.clone(),
                sample: a.sheet_sample.clone(),
                thumb: a.sheet_thumb,
                max_pixels: a.data.max_pixels,
                dicom_window: a.data.dicom_window,
            },
        )?;
        eprintln!(
            "wrote contact sheet of {id} ({rows} rows) to {}",
            path.display()
        );
    }
    Ok(Outcome::from_failures(failed))
}

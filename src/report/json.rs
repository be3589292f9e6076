//! `report.json` and JSON lines: serde with ordered maps; floats in metric summaries are
//! rounded to 6 decimals by their serialisers, so equal inputs give equal bytes.

use serde::Serialize;

use super::{Report, ReportError};

/// The pretty-printed report with a trailing newline.
pub fn render(report: &Report) -> Result<String, ReportError> {
    let s = serde_json::to_string_pretty(report).map_err(|source| ReportError::Json {
        what: "report",
        source,
    })?;
    Ok(format!("{s}\n"))
}

/// One compact JSON line with its newline.
pub fn line<T: Serialize>(value: &T, what: &'static str) -> Result<String, ReportError> {
    let s = serde_json::to_string(value).map_err(|source| ReportError::Json { what, source })?;
    Ok(format!("{s}\n"))
}

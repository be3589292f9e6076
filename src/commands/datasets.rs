//! `medvqa datasets`: the registry of dataset formats, with layouts and id schemes.

use std::fmt::Write;

use super::{Outcome, out};
use crate::data::FORMATS;

pub fn run() -> anyhow::Result<Outcome> {
    let mut s = String::new();
    for f in FORMATS {
        let _ = writeln!(s, "{}:PATH\n    {}", f.name, f.summary);
        for line in f.layout.lines() {
            let _ = writeln!(s, "    layout: {}", line.trim());
        }
        let _ = writeln!(s, "    boxes:  {}", f.frame);
        let _ = writeln!(s, "    ids:    {}", f.ids);
        let _ = writeln!(s, "    clusters (bootstrap): {}\n", f.cluster);
    }
    out(&s)?;
    Ok(Outcome::Clean)
}

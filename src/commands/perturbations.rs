//! `medvqa perturbations`: the perturbation registry and the tracks, as a table or JSON.

use std::fmt::Write;

use super::{Outcome, out};
use crate::cli::PerturbationsArgs;
use crate::perturb::presets::{TRACKS, TrackKind};
use crate::perturb::{Perturbation, REGISTRY};

pub fn run(a: &PerturbationsArgs) -> anyhow::Result<Outcome> {
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&json())?))?;
    } else {
        out(&table())?;
    }
    Ok(Outcome::Clean)
}

fn modalities(p: &Perturbation) -> String {
    p.modalities
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn table() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<22} {:<11} {:<20} {:<6} SUMMARY",
        "NAME", "FAMILY", "MODALITIES", "SEEDED"
    );
    for p in REGISTRY {
        let _ = writeln!(
            s,
            "{:<22} {:<11} {:<20} {:<6} {}{}",
            p.name,
            p.family.as_str(),
            modalities(p),
            if p.seeded { "yes" } else { "no" },
            p.summary,
            if p.is_image_level() {
                ""
            } else {
                " [sample level]"
            },
        );
        let levels: Vec<String> = p
            .severities()
            .map(|sev| format!("s{sev} {}", (p.table)(sev)))
            .collect();
        let _ = writeln!(s, "{:>23}{}: {}", "", p.parameter, levels.join(" | "));
    }
    let _ = writeln!(s, "\nTRACKS (use in place of a name; severities 0 = clean)");
    for t in TRACKS {
        let _ = writeln!(s, "{:<22} {}", t.name, t.summary);
        if let TrackKind::Fixed(items) = t.kind {
            let list: Vec<String> = items
                .iter()
                .map(|i| {
                    let mut e = i.perturbation.to_string();
                    if let Some(sev) = i.severities {
                        let _ = write!(e, " s{sev:?}");
                    }
                    if i.variants > 0 {
                        let _ = write!(e, " x{}", i.variants);
                    }
                    e
                })
                .collect();
            let _ = writeln!(s, "{:>23}{}", "", list.join(", "));
        }
    }
    s
}

fn json() -> serde_json::Value {
    let perturbations: Vec<serde_json::Value> = REGISTRY
        .iter()
        .map(|p| {
            let table: serde_json::Map<String, serde_json::Value> = p
                .severities()
                .map(|sev| (sev.to_string(), (p.table)(sev).into()))
                .collect();
            serde_json::json!({
                "name": p.name,
                "family": p.family.as_str(),
                "summary": p.summary,
                "modalities": p.modalities.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "levels": p.levels,
                "seeded": p.seeded,
                "geometric": p.geometric,
                "sample_level": !p.is_image_level(),
                "parameter": p.parameter,
                "severities": table,
            })
        })
        .collect();
    let tracks: Vec<serde_json::Value> = TRACKS
        .iter()
        .map(|t| {
            let items: Vec<serde_json::Value> = match t.kind {
                TrackKind::Fixed(items) => items
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "perturbation": i.perturbation,
                            "severities": i.severities,
                            "variants": i.variants,
                        })
                    })
                    .collect(),
                TrackKind::ByModality => Vec::new(),
            };
            serde_json::json!({"name": t.name, "summary": t.summary, "items": items})
        })
        .collect();
    serde_json::json!({"perturbations": perturbations, "tracks": tracks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_name_and_track() {
        let t = table();
        for p in REGISTRY {
            assert!(t.contains(p.name), "{}", p.name);
        }
        for tr in TRACKS {
            assert!(t.contains(tr.name));
        }
        assert!(t.contains("s5 0.38"), "gaussian-noise's table is printed");
    }
}

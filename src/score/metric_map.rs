//! [`MetricMap`]: a scored record's values keyed by metric name, kept compact.
//!
//! A record holds a handful of metrics, and a run holds one record per prediction: at
//! 100k predictions a `BTreeMap<String, f64>` per record (a node of eleven slots plus one
//! heap string per name) was a large share of `medvqa score`'s memory (issue 15). This is
//! a [`VecMap`] whose names point at the metric registry's own `&'static str` where they
//! can, so a record's map is one small allocation. It serialises exactly as the `BTreeMap`
//! did: a JSON object in name order.

use std::borrow::Cow;

use crate::vecmap::{MapKey, VecMap};

/// A metric's name: the registry's spelling when it is one, an owned string otherwise
/// (a record read back from a newer medvqa's `scored.jsonl`).
pub type MetricName = Cow<'static, str>;

impl MapKey for MetricName {
    fn from_name(name: &str) -> Self {
        match super::metric(name) {
            Some(m) => Cow::Borrowed(m.name),
            None => Cow::Owned(name.to_string()),
        }
    }
}

/// Values keyed by metric name, in name order.
pub type MetricMap<V> = VecMap<MetricName, V>;

impl<V> VecMap<MetricName, V> {
    /// Sets `name`'s value, returning the one it replaces.
    pub fn insert(&mut self, name: &str, value: V) -> Option<V> {
        self.put(name, || MetricName::from_name(name), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn it_serialises_and_reads_back_as_the_btreemap_did() {
        let pairs = [
            ("token_f1", 0.5),
            ("accuracy", 1.0),
            ("zz-new", 2.0),
            ("bleu", 0.25),
        ];
        let mut m = MetricMap::new();
        let mut b = BTreeMap::new();
        for (k, v) in pairs {
            m.insert(k, v);
            b.insert(k.to_string(), v);
        }
        let (js, jb) = (
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&b).unwrap(),
        );
        assert_eq!(js, jb);
        let back: MetricMap<f64> = serde_json::from_str(&js).unwrap();
        assert_eq!(back, m);
        assert_eq!(back["accuracy"], 1.0);
        assert_eq!(back.get("zz-new"), Some(&2.0));
        assert_eq!(m.insert("accuracy", 0.0), Some(1.0));
        // Registry names are not copied per record; others are kept as read.
        assert!(
            back.iter()
                .all(|(k, _)| matches!(k, Cow::Borrowed(_)) == (k != "zz-new"))
        );
    }
}

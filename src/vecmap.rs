//! [`VecMap`]: a small map from names to values, kept as one sorted vector.
//!
//! A sample's `meta` and a scored record's metrics hold a handful of entries each, and a
//! run holds one of each per question. As `BTreeMap<String, _>`s they cost a B-tree node
//! of eleven slots apiece (about 630 bytes for a one-key `meta`), which made them the
//! largest share of `medvqa score`'s memory at 100k questions (issue 15). A sorted vector
//! holds the same entries in one exact-sized allocation, looks them up by binary search,
//! and iterates and serialises in name order, as the `BTreeMap` did, so every output is
//! byte-identical.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A key a [`VecMap`] can hold: a name, made from its spelling when first inserted.
pub trait MapKey: AsRef<str> {
    fn from_name(name: &str) -> Self;
}

impl MapKey for String {
    fn from_name(name: &str) -> Self {
        name.to_string()
    }
}

/// Entries in name order, at most one per name.
#[derive(Clone, PartialEq)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: AsRef<str>, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k.as_ref(), v)))
            .finish()
    }
}

impl<K: MapKey, V> VecMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name`'s value, returning the one it replaces; `key` makes the key when `name`
    /// is new.
    pub(crate) fn put(&mut self, name: &str, key: impl FnOnce() -> K, value: V) -> Option<V> {
        match self.find(name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key(), value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(key, value)` in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, (K, V)> {
        self.0.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// Gives back the spare capacity once the entries are all in.
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<V> VecMap<String, V> {
    /// Sets `name`'s value, returning the one it replaces (as `BTreeMap::insert`).
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        fn pair<K, V>((k, v): &(K, V)) -> (&K, &V) {
            (k, v)
        }
        self.0.iter().map(pair)
    }
}

impl<K: MapKey, V> std::ops::Index<&str> for VecMap<K, V> {
    type Output = V;

    /// # Panics
    /// When `name` is absent, as `BTreeMap`'s index does; tests use it.
    #[allow(clippy::panic)]
    fn index(&self, name: &str) -> &V {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry {name:?}"),
        }
    }
}

impl<K: MapKey, V, N: AsRef<str>> FromIterator<(N, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut m = Self::new();
        m.extend(iter);
        m
    }
}

impl<K: MapKey, V, N: AsRef<str>> Extend<(N, V)> for VecMap<K, V> {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            let name = k.as_ref();
            self.put(name, || K::from_name(name), v);
        }
        self.shrink_to_fit();
    }
}

impl<K: AsRef<str>, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de, K: MapKey, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(PhantomData<(K, V)>);
        impl<'de, K: MapKey, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = VecMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = VecMap::new();
                // A repeated name keeps its last value, as a `BTreeMap` did.
                while let Some((k, v)) = a.next_entry::<std::borrow::Cow<'de, str>, V>()? {
                    m.put(&k, || K::from_name(&k), v);
                }
                m.shrink_to_fit();
                Ok(m)
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn it_reads_writes_and_iterates_as_a_btreemap_does() {
        let pairs = [
            ("token_f1", 0.5),
            ("accuracy", 1.0),
            ("zz-new", 2.0),
            ("bleu", 0.25),
        ];
        let mut m: VecMap<String, f64> = VecMap::new();
        let mut b = BTreeMap::new();
        for (k, v) in pairs {
            assert_eq!(m.insert(k.into(), v), b.insert(k.to_string(), v));
        }
        assert_eq!(m.insert("bleu".into(), 0.5), b.insert("bleu".into(), 0.5));
        let (js, jb) = (
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&b).unwrap(),
        );
        assert_eq!(js, jb);
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        assert!(m.iter().map(|(k, v)| (k, v)).eq(b.iter()));
        let back: VecMap<String, f64> =
            serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        let back_b: BTreeMap<String, f64> =
            serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert!(back.iter().map(|(k, v)| (k, v)).eq(back_b.iter()));
        assert_eq!(back["b"], 3.0);
        assert_eq!(m.remove("accuracy"), Some(1.0));
        assert!(!m.contains_key("accuracy") && m.get("miou").is_none());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["bleu", "token_f1", "zz-new"]);
        assert_eq!(m.len(), 3);
    }
}

//! [`BoundedCache`]: compute a value once per key, keep a bounded amount of them.
//!
//! The decoded-image store, the run's perturbed-image cache and the parquet chunk cache all
//! need the same thing: concurrent callers asking for one key wait for a single computation
//! (failures included, so a corrupt file is read once), and the oldest finished entries are
//! dropped once their total weight passes a budget. The newest entry is always kept, so a
//! single value larger than the budget still works.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A map from keys to values computed on first use, bounded by a total weight.
pub struct BoundedCache<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    slots: HashMap<K, Arc<OnceLock<V>>>,
    /// Finished entries, oldest first, with their weights.
    order: VecDeque<(K, usize)>,
    held: usize,
    made: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    /// A cache holding up to `capacity` weight (bytes, or entries when each weighs 1).
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity,
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                order: VecDeque::new(),
                held: 0,
                made: 0,
            }),
        }
    }

    /// The value for `key`, made by `make` on first use; `weigh` gives its weight against
    /// the capacity. Callers asking for a key being made wait for that one computation.
    pub fn get_or_make(
        &self,
        key: &K,
        make: impl FnOnce() -> V,
        weigh: impl FnOnce(&V) -> usize,
    ) -> V {
        let slot = self.lock().slots.entry(key.clone()).or_default().clone();
        let mut fresh = false;
        let value = slot.get_or_init(|| {
            fresh = true;
            make()
        });
        if fresh {
            let w = weigh(value);
            let mut inner = self.lock();
            inner.made += 1;
            inner.held += w;
            inner.order.push_back((key.clone(), w));
            while inner.held > self.capacity && inner.order.len() > 1 {
                let Some((old, w)) = inner.order.pop_front() else {
                    break;
                };
                inner.slots.remove(&old);
                inner.held = inner.held.saturating_sub(w);
            }
        }
        value.clone()
    }

    /// How many values have been made (not served from the cache).
    pub fn made(&self) -> u64 {
        self.lock().made
    }

    /// The total weight held now.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        // Every update under this lock leaves the maps consistent before anything that could
        // panic, so a poisoned lock (a panic in another thread) is recovered; at worst an
        // entry is made twice.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_key_is_made_once_however_many_threads_ask() {
        let cache: BoundedCache<u32, Result<u32, String>> = BoundedCache::new(100);
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let v = cache.get_or_make(
                        &7,
                        || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(20));
                            Err("corrupt".to_string())
                        },
                        |_| 1,
                    );
                    assert_eq!(v, Err("corrupt".to_string()));
                });
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1, "failures are cached too");
        assert_eq!(cache.made(), 1);
    }

    #[test]
    fn the_oldest_entries_go_past_the_budget_and_the_newest_always_stays() {
        let cache: BoundedCache<u32, Vec<u8>> = BoundedCache::new(10);
        for k in 0..5 {
            cache.get_or_make(&k, || vec![0; 4], Vec::len);
        }
        assert!(cache.held() <= 10, "{}", cache.held());
        assert_eq!(cache.made(), 5);
        // 4 is still held; 0 was dropped and is made again.
        cache.get_or_make(&4, || vec![1; 4], Vec::len);
        assert_eq!(cache.made(), 5);
        cache.get_or_make(&0, || vec![0; 4], Vec::len);
        assert_eq!(cache.made(), 6);
        // One value over the whole budget is still kept.
        let big = cache.get_or_make(&99, || vec![0; 50], Vec::len);
        assert_eq!(big.len(), 50);
        assert_eq!(cache.held(), 50);
    }
}

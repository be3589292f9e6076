//! [`bounded_map`]: a function over a slice on at most `workers` scoped threads, each taking
//! the next item when it is free, the results in item order. The decoder engine runs its
//! batches this way, a served model its requests and the LLM judge its verdicts: where the
//! limit is the point (sessions, requests in flight), not the cores rayon would use.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(i, &items[i])` for every item, on at most `workers` threads (at least one); result
/// `i` is for item `i`, `None` if the thread running it stopped (a panic).
pub fn bounded_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<Option<R>> {
    let workers = workers.min(items.len()).max(1);
    if workers == 1 {
        return items
            .iter()
            .enumerate()
            .map(|(i, t)| Some(f(i, t)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let out = f(i, item);
                    let mut slots = match slots.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    slots[i] = Some(out);
                }
            });
        }
    });
    match slots.into_inner() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_and_the_limit_holds() {
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u64> = (0..40).collect();
        let out = bounded_map(&items, 3, |i, &x| {
            let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(40 - x));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            (i as u64) * 10 + x
        });
        assert_eq!(out, items.iter().map(|&x| Some(x * 11)).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert!(bounded_map(&[] as &[u8], 4, |_, _| 0).is_empty());
    }
}

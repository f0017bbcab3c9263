//! A parallel map over a slice on std threads, for studies whose jobs are
//! independent and too small for candle to spread over the cores itself.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, Result};

/// `f` applied to every item on all available cores (std threads taking
/// items in turn), results in item order. Each item's work is seeded on its
/// own, so the results do not depend on the number of threads.
///
/// A worker stops at its first error, and one of the errors is returned; a
/// worker that panics is reported as an error, not propagated.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let per_worker: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return Ok(done);
                        };
                        done.push((i, f(item)?));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Shape {
                        context: "parallel map".into(),
                        message: "a worker thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut all = Vec::with_capacity(items.len());
    for done in per_worker {
        all.extend(done?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_item_order_and_returns_errors() {
        let items: Vec<usize> = (0..37).collect();
        let squares = parallel_map(&items, |&i| Ok(i * i));
        assert_eq!(
            squares.ok(),
            Some(items.iter().map(|i| i * i).collect::<Vec<_>>())
        );
        let failed = parallel_map(&items, |&i| {
            if i == 20 {
                Err(Error::invalid("item", i, "not 20"))
            } else {
                Ok(i)
            }
        });
        assert!(matches!(failed, Err(Error::InvalidParameter { .. })));
        assert_eq!(parallel_map(&[] as &[usize], |&i| Ok(i)).ok(), Some(vec![]));
    }
}

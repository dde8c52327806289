//! The queue list of each FETCH: strict, or a weighted random order from the seeded generator.

use crate::backoff::SplitMix64;

use super::config::Queues;

/// Produces the queue list of each FETCH.
#[derive(Clone, Debug)]
pub(crate) struct QueuePicker {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Strict(Vec<String>),
    Weighted {
        /// Queues with a non-zero weight.
        weighted: Vec<(String, u64)>,
        /// Queues with weight 0: always last, in configuration order.
        zero: Vec<String>,
        total: u64,
    },
}

impl QueuePicker {
    pub(crate) fn new(queues: &Queues) -> Self {
        let kind = match queues {
            Queues::Strict(v) => Kind::Strict(v.clone()),
            Queues::Weighted(v) => {
                let weighted: Vec<(String, u64)> = v
                    .iter()
                    .filter(|(_, w)| *w > 0)
                    .map(|(n, w)| (n.clone(), u64::from(*w)))
                    .collect();
                let zero = v
                    .iter()
                    .filter(|(_, w)| *w == 0)
                    .map(|(n, _)| n.clone())
                    .collect();
                let total = weighted.iter().map(|(_, w)| *w).sum();
                Kind::Weighted {
                    weighted,
                    zero,
                    total,
                }
            }
        };
        QueuePicker { kind }
    }

    /// The queue list of every FETCH when it never changes (strict order), so the FETCH command
    /// can be built once.
    pub(crate) fn fixed(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Strict(v) => Some(v),
            Kind::Weighted { .. } => None,
        }
    }

    /// The queue list for the next FETCH.
    pub(crate) fn next_order(&self, rng: &mut SplitMix64) -> Vec<String> {
        match &self.kind {
            Kind::Strict(v) => v.clone(),
            Kind::Weighted {
                weighted,
                zero,
                total,
            } => {
                let mut left: Vec<&(String, u64)> = weighted.iter().collect();
                let mut remaining = *total;
                let mut out = Vec::with_capacity(weighted.len() + zero.len());
                while !left.is_empty() {
                    let mut pick = rng.below(remaining);
                    let mut index = left.len() - 1;
                    for (i, (_, w)) in left.iter().enumerate() {
                        if pick < *w {
                            index = i;
                            break;
                        }
                        pick -= *w;
                    }
                    if index < left.len() {
                        let (name, w) = left.remove(index);
                        remaining = remaining.saturating_sub(*w);
                        out.push(name.clone());
                    }
                }
                out.extend(zero.iter().cloned());
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_keeps_order_and_weighted_is_a_permutation() {
        let mut rng = SplitMix64::new(3);
        let p = QueuePicker::new(&Queues::strict(["a", "b"]));
        assert_eq!(p.next_order(&mut rng), ["a", "b"]);
        assert_eq!(p.fixed(), Some(&["a".to_owned(), "b".to_owned()][..]));
        let p = QueuePicker::new(&Queues::weighted([("a", 1), ("z", 0), ("b", 5), ("c", 2)]));
        assert_eq!(p.fixed(), None);
        for _ in 0..100 {
            let mut order = p.next_order(&mut rng);
            assert_eq!(order.last().map(String::as_str), Some("z"));
            order.sort();
            assert_eq!(order, ["a", "b", "c", "z"]);
        }
    }
}

//! A small SplitMix64 generator: random queues and the 1% FAILs of `load` (no `rand` dependency).

/// SplitMix64 (Steele, Lea, Flood 2014): fast, and good enough to pick queues.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator seeded from the clock, the process id and `salt`.
    pub fn from_entropy(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32) ^ salt.rotate_left(17))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// `true` with probability `percent / 100`.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_bounds() {
        let mut r = SplitMix64::new(7);
        let mut counts = [0usize; 5];
        let mut fails = 0;
        for _ in 0..100_000 {
            counts[r.below(5)] += 1;
            if r.percent(1) {
                fails += 1;
            }
        }
        for c in counts {
            assert!((18_000..22_000).contains(&c), "{counts:?}");
        }
        assert!((700..1_300).contains(&fails), "{fails}");
        assert_eq!(r.below(0), 0);
        assert_eq!(SplitMix64::new(1).next_u64(), SplitMix64::new(1).next_u64());
    }
}

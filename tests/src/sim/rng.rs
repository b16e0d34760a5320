//! The simulator's random numbers: a seeded xoshiro256++ generator, written here so that a
//! seed means the same run on every machine and every version of every dependency.

/// One step of SplitMix64: expands a single `u64` seed into well-mixed state words.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic pseudo-random generator (xoshiro256++ seeded through SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s =
            [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Rng { s }
    }

    /// An independent generator drawn from this one (so one part of a run can draw more or
    /// fewer numbers without shifting what another part sees).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (0 when `n` is 0). Multiply-shift: the bias is below 2^-32 for the
    /// ranges a simulation uses, which no test can observe.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// True with probability `p`; never draws a number when `p` is zero.
    pub fn chance(&mut self, p: Probability) -> bool {
        p.0 != 0 && (p.0 == u64::MAX || self.next_u64() < p.0)
    }
}

/// A probability prepared for [`Rng::chance`]: a threshold on 64 random bits, so the hot path
/// compares integers instead of converting to floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probability(u64);

impl Probability {
    /// Never.
    pub const NEVER: Probability = Probability(0);
    /// Always.
    pub const ALWAYS: Probability = Probability(u64::MAX);

    /// `p` clamped to `[0, 1]` (NaN counts as 0).
    pub fn new(p: f64) -> Self {
        if p.is_nan() || p <= 0.0 {
            Probability::NEVER
        } else if p >= 1.0 {
            Probability::ALWAYS
        } else {
            // 2^64 as f64 is exact; p < 1 keeps the product below it.
            Probability((p * 18_446_744_073_709_551_616.0) as u64)
        }
    }

    /// True if this probability is zero.
    pub fn is_never(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(8);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_and_between_stay_in_range() {
        let mut r = Rng::new(1);
        for n in 1..50 {
            for _ in 0..100 {
                assert!(r.below(n) < n);
                let x = r.between(n, n + 3);
                assert!((n..=n + 3).contains(&x));
            }
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.between(5, 5), 5);
    }

    #[test]
    fn chance_matches_its_probability_roughly() {
        let mut r = Rng::new(3);
        let p = Probability::new(0.3);
        let hits = (0..100_000).filter(|_| r.chance(p)).count();
        assert!((28_000..32_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(Probability::NEVER)));
        assert!((0..1000).all(|_| r.chance(Probability::ALWAYS)));
        assert_eq!(Probability::new(f64::NAN), Probability::NEVER);
        assert_eq!(Probability::new(2.0), Probability::ALWAYS);
    }
}

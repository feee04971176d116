//! Shared by the seeded tests and the properties: a tiny deterministic random
//! source, so every failure replays from its printed seed, and the proptest
//! settings.
#![allow(dead_code)]

/// splitmix64: tiny, well-mixed, and enough for choosing test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// An exponential sample with the given mean.
    pub fn exp(&mut self, mean_ns: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (-(mean_ns as f64) * (1.0 - u).ln()) as u64
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Settings for the proptest properties: `cases` random cases per run, no
/// `proptest-regressions/` files in the repo (a failure prints its shrunk input
/// instead), and shrinking capped at a minute, since one case of the 100,000-key
/// properties takes a while. The seed is fixed, so CI runs the same cases every
/// time and never flakes; `PROPTEST_RNG_SEED=<n>` explores other cases.
pub fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0f17_c4a3_5eed);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 60_000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..proptest::test_runner::Config::default()
    }
}

//! Seeded, simulated-time tests of the health and retry state machines: many
//! seeds, invariants checked at every step, the seed printed on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::Rng;
use fulcrum_core::health::{
    may_eject, next_probe, panic_mode, warm_share_permille, Outcome, Outlier, OutlierParams,
    OutlierPool, RiseFall, RiseFallParams, SlowStart, SlowStartParams, Status,
};
use fulcrum_core::retry::{backoff, BackoffParams, RetryBudget, RetryBudgetParams};

const SEEDS: u64 = 20;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[test]
fn rise_fall_transitions_only_on_full_streaks() {
    for seed in 0..SEEDS * 5 {
        let mut rng = Rng(seed);
        let (rise, fall) = (1 + rng.below(4) as u32, 1 + rng.below(4) as u32);
        let mut rf = RiseFall::new(RiseFallParams { rise, fall });
        let mut history: Vec<bool> = Vec::new();
        // Biased phases make streaks long enough to transition, and flapping between them.
        let mut p_ok = 50;
        for step in 0..2_000 {
            if step % 100 == 0 {
                p_ok = [5, 50, 95][rng.below(3)];
            }
            let ok = rng.chance(p_ok);
            let before = rf.status();
            history.push(ok);
            let tail = |n: u32, v: bool| {
                history.len() >= n as usize
                    && history.iter().rev().take(n as usize).all(|&h| h == v)
            };
            let changed = rf.observe(ok);
            let after = rf.status();
            assert_eq!(
                changed.is_some(),
                before != after,
                "seed {seed} step {step}"
            );
            assert_ne!(after, Status::Draining, "seed {seed}");
            match (before, changed) {
                (Status::Unknown, Some(Status::Up)) => assert!(ok, "seed {seed} step {step}"),
                (Status::Down, Some(Status::Up)) => {
                    assert!(tail(rise, true), "seed {seed} step {step}")
                }
                (_, Some(Status::Down)) => assert!(tail(fall, false), "seed {seed} step {step}"),
                (_, None) => {}
                other => panic!("seed {seed} step {step}: unexpected transition {other:?}"),
            }
            // A settled state never changes on a result that agrees with it.
            if matches!(before, Status::Up) && ok || matches!(before, Status::Down) && !ok {
                assert!(changed.is_none(), "seed {seed} step {step}");
            }
        }
    }
}

#[test]
fn probes_of_a_pool_never_fire_in_lockstep_and_spread_uniformly() {
    let interval = Duration::from_secs(10);
    let (backends, rounds) = (20, 500); // 10,000 probes
    for seed in 0..SEEDS {
        let mut rng = Rng(seed);
        // All backends added in the same instant: the worst case for lockstep.
        let mut at = vec![Duration::ZERO; backends];
        let mut bins = [0u32; 10];
        for round in 0..rounds {
            for t in at.iter_mut() {
                let next = next_probe(interval, 0.1, rng.next(), *t);
                let offset = (next - *t).as_nanos() as i128 - interval.as_nanos() as i128;
                let jitter = interval.as_nanos() as i128 / 10;
                assert!(offset.abs() <= jitter, "seed {seed}: offset {offset}");
                let bin = ((offset + jitter) * 10 / (2 * jitter + 1)) as usize;
                bins[bin] += 1;
                *t = next;
            }
            let lo = at.iter().min().unwrap();
            let hi = at.iter().max().unwrap();
            assert!(
                *hi - *lo > interval / 100,
                "seed {seed} round {round}: lockstep"
            );
        }
        // Each tenth of the jitter range expects 1,000 of 10,000 (sd ≈ 30).
        for (i, &n) in bins.iter().enumerate() {
            assert!(
                (850..=1150).contains(&n),
                "seed {seed}: bin {i} has {n}: {bins:?}"
            );
        }
    }
}

fn always_failing(rng: &mut Rng) -> Outcome {
    if rng.chance(50) {
        Outcome::gateway_failure()
    } else {
        Outcome::response(500, Duration::from_millis(5))
    }
}

#[test]
fn ejections_grow_by_base_and_stop_at_the_cap() {
    let p = OutlierParams::default(); // 5 × 5xx, 30 s base, 300 s cap
    let mut o = Outlier::new(p, Duration::ZERO);
    let mut now = Duration::from_secs(1);
    let mut lengths = Vec::new();
    for _ in 0..14 {
        let mut ejection = None;
        for i in 0..5 {
            assert!(ejection.is_none());
            ejection = o.record(Outcome::response(503, Duration::from_millis(1)), now);
            assert_eq!(ejection.is_some(), i == 4);
        }
        let e = ejection.unwrap();
        assert!(o.is_ejected(now) && o.is_ejected(e.until - Duration::from_nanos(1)));
        assert!(!o.is_ejected(e.until));
        // Outcomes landing during the ejection do not extend it.
        assert_eq!(o.record(Outcome::gateway_failure(), now), None);
        lengths.push((e.until - now).as_secs());
        now = e.until;
    }
    assert_eq!(
        lengths,
        [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300, 300, 300]
    );
    // Ten clean minutes (two × max_ejection_time) forgive two ejections.
    now += Duration::from_secs(600);
    for _ in 0..4 {
        assert_eq!(o.record(Outcome::response(500, Duration::ZERO), now), None);
    }
    let e = o
        .record(Outcome::response(500, Duration::ZERO), now)
        .unwrap();
    assert_eq!(e.count, 13);
}

#[test]
fn failure_percentage_and_latency_detectors_fire_over_the_window() {
    let p = OutlierParams {
        consecutive_5xx: 0,
        consecutive_gateway_failures: 0,
        failure_percentage: 50,
        min_requests: 20,
        max_latency: Some(Duration::from_millis(100)),
        ..OutlierParams::default()
    };
    // Alternate success and failure: no streak, but 50% failures.
    let mut o = Outlier::new(p, Duration::ZERO);
    let ms = Duration::from_millis;
    let fired = (0..40).find_map(|i| {
        let status = if i % 2 == 0 { 200 } else { 500 };
        o.record(Outcome::response(status, ms(1)), ms(i * 10))
    });
    assert_eq!(
        fired.unwrap().reason,
        fulcrum_core::health::Reason::FailurePercentage
    );
    // 1 slow response in 10 (10% > 5%): p95 above max_latency.
    let mut o = Outlier::new(p, Duration::ZERO);
    let fired = (0..40).find_map(|i| {
        let latency = if i % 10 == 0 { ms(500) } else { ms(10) };
        o.record(Outcome::response(200, latency), ms(i * 10))
    });
    let e = fired.unwrap();
    assert_eq!(e.reason, fulcrum_core::health::Reason::Latency);
    // 1 in 25 (4%) keeps p95 under the threshold.
    let mut o = Outlier::new(p, Duration::ZERO);
    for i in 0..1_000 {
        let latency = if i % 25 == 24 { ms(500) } else { ms(10) };
        assert_eq!(
            o.record(Outcome::response(200, latency), ms(i * 10)),
            None,
            "{i}"
        );
    }
}

#[test]
fn max_ejection_percent_is_never_exceeded_when_every_backend_fails() {
    for seed in 0..SEEDS {
        let mut rng = Rng(seed);
        let size = 1 + rng.below(40);
        let pct = [0, 10, 25, 50, 100][rng.below(5)];
        let params = OutlierParams {
            max_ejection_percent: pct,
            ..OutlierParams::default()
        };
        let cap = if pct == 0 {
            0
        } else {
            (pct as usize * size / 100).max(1)
        };
        let mut pool = OutlierPool::new(params, size, Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut peak = 0;
        // Three simulated minutes at ~1,000 rps spread over the pool.
        for step in 0..180_000 {
            now += Duration::from_micros(rng.exp(1_000) / 1_000);
            let b = rng.below(size);
            let outcome = always_failing(&mut rng);
            let before = pool.ejected(now);
            if let Some(e) = pool.record(b, outcome, now) {
                assert!(e.until > now, "seed {seed}");
                assert!(may_eject(before, size, pct), "seed {seed} step {step}");
            }
            let ejected = pool.ejected(now);
            peak = peak.max(ejected);
            assert!(
                ejected <= cap,
                "seed {seed} step {step}: {ejected}/{size} > {pct}%"
            );
        }
        assert_eq!(peak, cap, "seed {seed}: size {size} pct {pct}");
    }
}

#[test]
fn may_eject_follows_the_cap_with_one_always_allowed() {
    assert!(may_eject(0, 3, 10)); // Envoy: at least one
    assert!(!may_eject(1, 3, 10));
    assert!(may_eject(1, 20, 10));
    assert!(!may_eject(2, 20, 10));
    assert!(!may_eject(0, 5, 0));
    assert!(!may_eject(0, 0, 100));
    assert!(!may_eject(4, 4, 100));
    assert!(may_eject(3, 4, 100));
}

#[test]
fn panic_mode_when_available_share_falls_under_the_threshold() {
    for total in 1..=40usize {
        for available in 0..=total {
            let expect = available * 2 < total; // under 50%
            assert_eq!(
                panic_mode(available, total, 50),
                expect,
                "{available}/{total}"
            );
            assert!(!panic_mode(available, total, 0));
        }
    }
    assert!(!panic_mode(0, 0, 50));
    // Outages of growing size in a pool of 10: panic from 6 down (4 of 10 left).
    let panicked: Vec<bool> = (0..=10).map(|down| panic_mode(10 - down, 10, 50)).collect();
    assert_eq!(panicked.iter().position(|&p| p), Some(6));
}

#[test]
fn slow_start_ramp_is_monotone_small_at_first_and_full_exactly_at_the_window() {
    for seed in 0..SEEDS * 5 {
        let mut rng = Rng(seed);
        let full = nz(1 + rng.below(10_000) as u32);
        let window = Duration::from_millis(1 + rng.below(60_000) as u64);
        let since = Duration::from_millis(rng.below(1_000_000) as u64);
        let aggression = [1.0, 1.0, 1.5, 2.0, 4.0][rng.below(5)];
        let params = SlowStartParams {
            window,
            aggression,
            ..SlowStartParams::default()
        };
        let s = SlowStart::new(params, since);
        let first = s.weight(full, since);
        assert_eq!(first.get(), (full.get() / 10).max(1), "seed {seed}");
        let mut prev = first;
        for k in 0..=1_000u32 {
            let now = since + window * k / 1_000;
            let w = s.weight(full, now);
            assert!(w >= prev && w <= full, "seed {seed} k {k}");
            prev = w;
        }
        assert_eq!(s.weight(full, since + window), full, "seed {seed}");
        if full.get() >= 2 {
            let just_before = since + window - Duration::from_nanos(1);
            assert!(s.weight(full, just_before) < full, "seed {seed}");
        }
    }
}

#[test]
fn after_a_whole_pool_outage_the_pool_is_not_handed_full_load_at_once() {
    // Ten backends come back in the same instant after every one was down.
    let full = nz(100);
    let t0 = Duration::from_secs(1_000);
    let ramps = vec![SlowStart::new(SlowStartParams::default(), t0); 10];
    let share = |now| warm_share_permille(ramps.iter().map(|r| (r.weight(full, now), full)));
    assert_eq!(share(t0), 100); // 10% of the pool's capacity is warm
    let mut prev = 0;
    for s in 0..=30 {
        let now = t0 + Duration::from_secs(s);
        let w = share(now);
        assert!(w >= prev);
        prev = w;
        // Nothing gets more than its ramp allows: at most 10% + elapsed share.
        assert!(w <= 100 + 1000 * s as u32 / 30, "{s}s: {w}");
    }
    assert_eq!(share(t0 + Duration::from_secs(30)), 1000);
    // A backend joining a warm pool gets a small share of the traffic at first.
    let warm = SlowStart::new(SlowStartParams::default(), Duration::ZERO);
    let cold = SlowStart::new(SlowStartParams::default(), t0);
    let (w, c) = (warm.weight(full, t0).get(), cold.weight(full, t0).get());
    assert!(c * 10 <= w + c, "newcomer share {c}/{}", w + c);
}

#[test]
fn retry_budget_holds_at_every_step_of_a_storm() {
    for seed in 0..SEEDS / 4 {
        let mut rng = Rng(seed);
        let params = RetryBudgetParams::default(); // 20% + 10/s over 10 s
        let mut budget = RetryBudget::new(params);
        let w = budget.window_secs() as usize;
        let mut requests = vec![0u64; 60];
        let mut retries = vec![0u64; 60];
        // 1,000 rps for 60 s, every attempt fails, each request wants 2 retries.
        for i in 0..60_000u64 {
            let now = Duration::from_micros(i * 1_000 + rng.below(1_000) as u64);
            let sec = now.as_secs() as usize;
            budget.record_request(now);
            requests[sec] += 1;
            for _ in 0..2 {
                if !budget.try_retry(now) {
                    break;
                }
                retries[sec] += 1;
            }
            let from = (sec + 1).saturating_sub(w);
            let req: u64 = requests[from..=sec].iter().sum();
            let ret: u64 = retries[from..=sec].iter().sum();
            assert_eq!(budget.counts(now), (req, ret), "seed {seed} step {i}");
            let bound =
                req * params.ratio_percent as u64 / 100 + params.min_per_sec as u64 * w as u64;
            assert!(
                ret <= bound,
                "seed {seed} step {i}: {ret} retries > {bound}"
            );
        }
        let total_req: u64 = requests.iter().sum();
        let total_ret: u64 = retries.iter().sum();
        // Amplification stays near 1.2, far from the 3× of unbudgeted retries.
        assert!(
            total_ret * 100 <= total_req * 22,
            "seed {seed}: {total_ret}/{total_req}"
        );
        assert!(
            total_ret * 100 >= total_req * 19,
            "seed {seed}: budget unused"
        );
    }
}

#[test]
fn backoff_stays_within_the_cap_and_averages_half_of_it() {
    let p = BackoffParams {
        base: Duration::from_millis(10),
        max: Duration::from_millis(640),
    };
    for attempt in 0..12u32 {
        let cap = (p.base * 2u32.pow(attempt.min(20))).min(p.max);
        let mut rng = Rng(u64::from(attempt));
        let n = 100_000u32;
        let mut sum = Duration::ZERO;
        for _ in 0..n {
            let d = backoff(attempt, p, rng.next());
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
            sum += d;
        }
        let mean = sum / n;
        let half = cap / 2;
        let diff = mean.abs_diff(half);
        assert!(
            diff * 100 <= cap,
            "attempt {attempt}: mean {mean:?}, cap {cap:?}"
        );
    }
}

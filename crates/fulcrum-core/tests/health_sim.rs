//! Seeded, simulated-time tests of the health and retry state machines: many
//! seeds, invariants checked at every step, the seed printed on failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::Rng;
use fulcrum_core::health::{
    may_eject, next_probe, panic_mode, pool_verdict, warm_share_permille, BackendHealth,
    HealthParams, Outcome, Outlier, OutlierParams, OutlierPool, RiseFall, RiseFallParams,
    SlowStart, SlowStartParams, State, Status,
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

// === BackendHealth: the combined state machine ===

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const FULL_RAMP: NonZeroU32 = NonZeroU32::MIN.saturating_add(999);

fn linear_ramp(window: Duration) -> SlowStartParams {
    SlowStartParams {
        window,
        ..SlowStartParams::default()
    }
}

fn random_params(rng: &mut Rng) -> HealthParams {
    HealthParams {
        checks: rng.chance(80).then(|| RiseFallParams {
            rise: 1 + rng.below(3) as u32,
            fall: 1 + rng.below(3) as u32,
        }),
        outlier: rng.chance(80).then(|| OutlierParams {
            consecutive_5xx: rng.below(4) as u32,
            consecutive_gateway_failures: 1 + rng.below(4) as u32,
            base_ejection_time: secs(1 + rng.below(20) as u64),
            max_ejection_time: secs(30 + rng.below(60) as u64),
            ..OutlierParams::default()
        }),
        slow_start: SlowStartParams {
            window: secs([0, 5, 30][rng.below(3)]),
            aggression: [1.0, 2.0][rng.below(2)],
            ..SlowStartParams::default()
        },
        drain_timeout: secs(1 + rng.below(60) as u64),
    }
}

/// Random probes, outcomes, drains and undrains against a plain model of the
/// precedence: Draining > (Ejected over Up only) > probe status.
#[test]
fn backend_health_follows_its_precedence_at_every_step() {
    for seed in 0..SEEDS * 5 {
        let mut rng = Rng(seed);
        let p = random_params(&mut rng);
        let joining = rng.chance(50);
        let mut now = secs(rng.below(1_000) as u64);
        let mut h = BackendHealth::new(&p, joining, now);
        // The model.
        let mut checks = p.checks.map(RiseFall::new);
        let mut until: Option<Duration> = None;
        let mut drain: Option<Duration> = None; // deadline
        let mut ejections = 0;
        let mut ramp_since = (joining && p.checks.is_none()).then_some(now);
        let mut first_up_ramps = joining && p.checks.is_some();
        let mut prev_ramp = h.ramp_permille(now);
        for step in 0..3_000 {
            let ctx = format!("seed {seed} step {step}");
            now += Duration::from_millis(rng.below(2_000) as u64);
            let before = h.state(now);
            let mut restart = |at: Duration| {
                ramp_since = Some(ramp_since.map_or(at, |s: Duration| s.max(at)));
            };
            match rng.below(100) {
                0..=39 => {
                    let ok = rng.chance(60);
                    let changed = h.probe(ok, now);
                    if let Some(rf) = checks.as_mut() {
                        let from = rf.status();
                        if rf.observe(ok) == Some(Status::Up)
                            && (from == Status::Down || first_up_ramps)
                        {
                            restart(now);
                        }
                        if from == Status::Unknown && rf.status() != Status::Unknown {
                            first_up_ramps = false;
                        }
                    }
                    let after = h.state(now);
                    assert_eq!(changed, (after != before).then_some(after), "{ctx}");
                }
                40..=89 => {
                    let outcome = if rng.chance(50) {
                        Outcome::gateway_failure()
                    } else {
                        Outcome::response(200, Duration::from_millis(3))
                    };
                    let allow = rng.chance(70);
                    let mut asked = false;
                    let e = h.record(outcome, now, || {
                        asked = true;
                        allow
                    });
                    let ejected = until.is_some_and(|u| now < u);
                    assert!(!(ejected && asked), "{ctx}: asked while ejected");
                    assert_eq!(e.is_some(), asked && allow, "{ctx}");
                    if let Some(e) = e {
                        assert!(e.until > now && p.outlier.is_some(), "{ctx}");
                        until = Some(e.until);
                        ejections += 1;
                        restart(e.until);
                    }
                    assert!(p.outlier.is_some() || !asked, "{ctx}");
                }
                90..=94 => {
                    h.drain(now);
                    drain.get_or_insert(now + p.drain_timeout);
                }
                _ => {
                    h.undrain(now);
                    let up = checks.as_ref().is_none_or(|rf| rf.status() == Status::Up);
                    if drain.take().is_some() && up {
                        restart(now);
                    }
                }
            }
            let probe_status = checks.as_ref().map_or(Status::Up, RiseFall::status);
            let expect = match (drain, probe_status) {
                (Some(_), _) => State::Draining,
                (None, Status::Up) if until.is_some_and(|u| now < u) => State::Ejected,
                (None, Status::Up) => State::Up,
                (None, Status::Down) => State::Down,
                (None, _) => State::Unknown,
            };
            assert_eq!(h.state(now), expect, "{ctx}");
            assert_eq!(h.ejections_total(), ejections, "{ctx}");
            let in_flight = rng.below(3) as u64;
            let released = drain.is_some_and(|d| in_flight == 0 || now >= d);
            assert_eq!(h.is_released(in_flight, now), released, "{ctx}");
            // The ramp: exactly the model's latest ramp, rising between restarts.
            let ramp = h.ramp_permille(now);
            let expect = ramp_since.map_or(1000, |since| {
                SlowStart::new(p.slow_start, since)
                    .weight(FULL_RAMP, now)
                    .get()
            });
            assert_eq!(ramp, expect, "{ctx}");
            assert!((1..=1000).contains(&ramp), "{ctx}");
            if p.slow_start.window.is_zero() {
                assert_eq!(ramp, 1000, "{ctx}");
            }
            if ramp_since.is_none_or(|s| now >= s + p.slow_start.window) {
                assert_eq!(ramp, 1000, "{ctx}");
            }
            if ramp < prev_ramp {
                // Only a return (ejection, Down → Up, undrain) starts a new ramp.
                assert!(
                    ramp_since.is_some_and(|s| s + p.slow_start.window > now),
                    "{ctx}"
                );
            }
            prev_ramp = ramp;
        }
    }
}

#[test]
fn unknown_goes_up_on_the_first_pass_and_only_a_joining_backend_ramps() {
    let p = HealthParams {
        checks: Some(RiseFallParams { rise: 3, fall: 3 }),
        slow_start: linear_ramp(secs(30)),
        ..HealthParams::default()
    };
    for joining in [false, true] {
        let mut h = BackendHealth::new(&p, joining, secs(0));
        assert_eq!(h.state(secs(0)), State::Unknown);
        assert_eq!(h.probe(true, secs(5)), Some(State::Up));
        let ramp = h.ramp_permille(secs(5));
        assert_eq!(ramp, if joining { 100 } else { 1000 }, "joining {joining}");
        assert_eq!(h.ramp_permille(secs(35)), 1000);
    }
    // Without checks, a joining backend is Up and ramping at once.
    let p = HealthParams {
        slow_start: linear_ramp(secs(30)),
        ..HealthParams::default()
    };
    let h = BackendHealth::new(&p, true, secs(10));
    assert_eq!(h.state(secs(10)), State::Up);
    assert_eq!(h.ramp_permille(secs(25)), 500);
    let h = BackendHealth::new(&p, false, secs(10));
    assert_eq!(h.ramp_permille(secs(10)), 1000);
}

#[test]
fn a_return_from_down_ramps_monotonically_to_full_over_the_window() {
    for seed in 0..SEEDS * 5 {
        let mut rng = Rng(seed);
        let window = Duration::from_millis(1_000 + rng.below(60_000) as u64);
        let rise = 1 + rng.below(4) as u32;
        let p = HealthParams {
            checks: Some(RiseFallParams { rise, fall: 1 }),
            slow_start: SlowStartParams {
                window,
                aggression: [1.0, 1.5, 3.0][rng.below(3)],
                ..SlowStartParams::default()
            },
            ..HealthParams::default()
        };
        let mut h = BackendHealth::new(&p, false, Duration::ZERO);
        h.probe(true, secs(1));
        assert_eq!(h.probe(false, secs(2)), Some(State::Down), "seed {seed}");
        let mut now = secs(3);
        for _ in 1..rise {
            assert_eq!(h.probe(true, now), None, "seed {seed}");
            now += secs(1);
        }
        assert_eq!(h.probe(true, now), Some(State::Up), "seed {seed}");
        let mut prev = h.ramp_permille(now);
        assert_eq!(prev, 100, "seed {seed}");
        for k in 1..=500u32 {
            let r = h.ramp_permille(now + window * k / 500);
            assert!(r >= prev, "seed {seed} k {k}: {r} < {prev}");
            prev = r;
        }
        assert!(h.ramp_permille(now + window - Duration::from_nanos(1)) < 1000);
        assert_eq!(prev, 1000, "seed {seed}");
    }
}

#[test]
fn an_ejection_returns_through_slow_start_from_its_end() {
    let p = HealthParams {
        checks: Some(RiseFallParams { rise: 1, fall: 1 }),
        outlier: Some(OutlierParams {
            consecutive_gateway_failures: 3,
            base_ejection_time: secs(20),
            ..OutlierParams::default()
        }),
        slow_start: linear_ramp(secs(10)),
        ..HealthParams::default()
    };
    let mut h = BackendHealth::new(&p, false, Duration::ZERO);
    h.probe(true, secs(1));
    assert!(h.outlier_enabled());
    assert_eq!(h.ramp_permille(secs(1)), 1000);
    let t = secs(100);
    let mut ejection = None;
    for _ in 0..3 {
        ejection = h.record(Outcome::gateway_failure(), t, || true);
    }
    let e = ejection.unwrap();
    assert_eq!(e.until, secs(120));
    assert_eq!(h.state(t), State::Ejected);
    assert_eq!(h.state(secs(119)), State::Ejected);
    // Passing probes during the ejection change nothing visible.
    assert_eq!(h.probe(true, secs(110)), None);
    assert_eq!(h.state(secs(120)), State::Up);
    assert_eq!(h.ramp_permille(secs(120)), 100);
    assert_eq!(h.ramp_permille(secs(125)), 500);
    assert_eq!(h.ramp_permille(secs(130)), 1000);
    // A Down → Up during the ejection still ramps from its end, not earlier.
    h.probe(false, secs(200));
    let e = (0..3)
        .find_map(|_| h.record(Outcome::gateway_failure(), secs(201), || true))
        .unwrap();
    assert_eq!((e.count, e.until), (2, secs(241)));
    assert_eq!(h.state(secs(202)), State::Down);
    assert_eq!(h.probe(true, secs(203)), Some(State::Ejected));
    assert_eq!(h.ramp_permille(secs(241)), 100);
    assert_eq!(h.ramp_permille(secs(251)), 1000);
    assert_eq!(h.ejections_total(), 2);
}

#[test]
fn a_drain_releases_at_zero_in_flight_or_at_the_deadline_and_undrain_ramps() {
    let p = HealthParams {
        slow_start: linear_ramp(secs(10)),
        drain_timeout: secs(30),
        ..HealthParams::default()
    };
    let mut h = BackendHealth::new(&p, false, Duration::ZERO);
    assert!(!h.is_released(0, secs(1)), "not draining");
    h.drain(secs(10));
    assert_eq!(h.state(secs(10)), State::Draining);
    h.drain(secs(20)); // no-op: the deadline stays at 40 s
    assert!(!h.is_released(5, secs(39)));
    assert!(h.is_released(0, secs(11)));
    assert!(h.is_released(5, secs(40)));
    h.undrain(secs(50));
    assert_eq!(h.state(secs(50)), State::Up);
    assert!(!h.is_released(0, secs(50)));
    assert_eq!(h.ramp_permille(secs(50)), 100);
    assert_eq!(h.ramp_permille(secs(60)), 1000);
    // Undrained while Down: no ramp yet; it starts when the probes pass.
    let p = HealthParams {
        checks: Some(RiseFallParams { rise: 1, fall: 1 }),
        ..p
    };
    let mut h = BackendHealth::new(&p, false, Duration::ZERO);
    h.probe(false, secs(1));
    h.drain(secs(2));
    h.undrain(secs(3));
    assert_eq!(h.state(secs(3)), State::Down);
    assert_eq!(h.probe(true, secs(20)), Some(State::Up));
    assert_eq!(h.ramp_permille(secs(20)), 100);
}

#[test]
fn reconfigure_keeps_the_visible_state() {
    for seed in 0..SEEDS * 5 {
        let mut rng = Rng(seed);
        let p = random_params(&mut rng);
        let mut h = BackendHealth::new(&p, rng.chance(50), Duration::ZERO);
        let mut now = Duration::ZERO;
        for step in 0..200 {
            now += Duration::from_millis(rng.below(3_000) as u64);
            match rng.below(10) {
                0..=3 => {
                    h.probe(rng.chance(50), now);
                }
                4..=7 => {
                    h.record(Outcome::gateway_failure(), now, || true);
                }
                8 => h.drain(now),
                _ => h.undrain(now),
            }
            let before = h.state(now);
            let q = random_params(&mut rng);
            h.reconfigure(&q, now);
            let after = h.state(now);
            if matches!(before, State::Down | State::Unknown) && q.checks.is_none() {
                // Without checks there is no Down or Unknown: Up at once, or
                // Ejected if an ejection hidden under Down still runs.
                assert!(
                    matches!(after, State::Up | State::Ejected),
                    "seed {seed} step {step}: {after:?}"
                );
            } else {
                assert_eq!(after, before, "seed {seed} step {step}");
            }
            assert_eq!(h.outlier_enabled(), q.outlier.is_some());
        }
    }
}

// === pool_verdict ===

#[test]
fn a_pool_with_two_of_three_down_panics_but_never_routes_unknown_or_draining() {
    use State::*;
    let mut out = Vec::new();
    assert!(pool_verdict(&[Up, Down, Down], 50, &mut out));
    assert_eq!(out, [true, true, true]);
    assert!(pool_verdict(
        &[Up, Ejected, Down, Unknown, Draining],
        50,
        &mut out
    ));
    assert_eq!(out, [true, true, true, false, false]);
    // Draining backends do not count: 1 of 2 up is 50%, not under it.
    assert!(!pool_verdict(&[Up, Down, Draining, Draining], 50, &mut out));
    assert_eq!(out, [true, false, false, false]);
    // A pool whose first probes are out is not in panic: Unknown does not count.
    assert!(!pool_verdict(&[Unknown, Unknown, Unknown], 50, &mut out));
    assert!(!pool_verdict(&[Up, Unknown, Unknown], 50, &mut out));
    assert_eq!(out, [true, false, false]);
}

#[test]
fn pool_verdict_invariants() {
    for seed in 0..SEEDS * 50 {
        let mut rng = Rng(seed);
        let states: Vec<State> = (0..rng.below(12))
            .map(|_| State::ALL[rng.below(5)])
            .collect();
        let threshold = [0, 10, 50, 100][rng.below(4)];
        let mut out = vec![true; 3]; // stale content must be replaced
        let panic = pool_verdict(&states, threshold, &mut out);
        assert_eq!(out.len(), states.len(), "seed {seed}");
        let counted = states
            .iter()
            .filter(|&&s| !matches!(s, State::Draining | State::Unknown))
            .count();
        let up = states.iter().filter(|&&s| s == State::Up).count();
        assert_eq!(panic, panic_mode(up, counted, threshold), "seed {seed}");
        for (s, &routed) in states.iter().zip(&out) {
            let expect = match s {
                State::Up => true,
                State::Down | State::Ejected => panic,
                State::Unknown | State::Draining => false,
            };
            assert_eq!(routed, expect, "seed {seed}: {s:?}");
        }
    }
}

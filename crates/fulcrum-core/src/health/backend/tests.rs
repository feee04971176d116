use super::*;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn checked(rise: u32, fall: u32) -> HealthParams {
    HealthParams {
        checks: Some(RiseFallParams { rise, fall }),
        ..HealthParams::default()
    }
}

fn failing() -> Outcome {
    Outcome::gateway_failure()
}

/// Outlier detection that ejects on the first gateway failure, for 10 s.
fn eager_outlier() -> OutlierParams {
    OutlierParams {
        consecutive_gateway_failures: 1,
        base_ejection_time: secs(10),
        ..OutlierParams::default()
    }
}

#[test]
fn names_and_defaults() {
    let names: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["unknown", "up", "down", "ejected", "draining"]);
    let p = HealthParams::default();
    assert_eq!((p.checks, p.outlier), (None, None));
    assert_eq!(p.slow_start.window, Duration::ZERO);
    assert_eq!(p.slow_start.min_share, 10);
    assert_eq!(p.drain_timeout, secs(30));
}

#[test]
fn without_checks_a_backend_is_up_at_once_and_probes_are_ignored() {
    let mut h = BackendHealth::new(&HealthParams::default(), false, secs(1));
    assert_eq!(h.state(secs(1)), State::Up);
    assert_eq!(h.probe(false, secs(2)), None);
    assert_eq!(h.state(secs(2)), State::Up);
    assert!(!h.outlier_enabled());
    assert_eq!(h.record(failing(), secs(2), || true), None);
}

#[test]
fn ejected_shows_only_over_up_and_draining_shows_over_everything() {
    let p = HealthParams {
        outlier: Some(eager_outlier()),
        ..checked(1, 1)
    };
    let mut h = BackendHealth::new(&p, false, secs(0));
    assert_eq!(h.probe(true, secs(1)), Some(State::Up));
    let e = h.record(failing(), secs(1), || true).unwrap();
    assert_eq!(e.until, secs(11));
    assert_eq!(h.state(secs(2)), State::Ejected);
    assert_eq!(h.probe(false, secs(2)), Some(State::Down));
    assert_eq!(h.probe(true, secs(3)), Some(State::Ejected));
    h.drain(secs(4));
    assert_eq!(h.state(secs(4)), State::Draining);
    assert_eq!(h.probe(false, secs(5)), None); // Down underneath, still Draining
    h.undrain(secs(6));
    assert_eq!(h.state(secs(6)), State::Down);
    assert_eq!(h.probe(true, secs(7)), Some(State::Ejected));
    assert_eq!(h.state(secs(11)), State::Up);
    assert_eq!(h.ejections_total(), 1);
}

#[test]
fn the_pool_guard_is_asked_only_when_a_detector_fires() {
    let p = HealthParams {
        outlier: Some(OutlierParams {
            consecutive_gateway_failures: 2,
            ..eager_outlier()
        }),
        ..HealthParams::default()
    };
    let mut h = BackendHealth::new(&p, false, secs(0));
    assert_eq!(h.record(failing(), secs(1), || panic!("asked")), None);
    assert_eq!(h.record(failing(), secs(1), || false), None);
    assert_eq!(h.state(secs(1)), State::Up);
    assert_eq!(h.ejections_total(), 0);
}

#[test]
fn reconfigure_keeps_status_ejection_and_drain() {
    let mut h = BackendHealth::new(&checked(2, 1), false, secs(0));
    h.probe(false, secs(1));
    assert_eq!(h.state(secs(1)), State::Down);
    // New thresholds: still Down, and the streak restarts under them.
    h.reconfigure(&checked(3, 1), secs(2));
    assert_eq!(h.state(secs(2)), State::Down);
    assert_eq!(h.probe(true, secs(3)), None);
    assert_eq!(h.probe(true, secs(4)), None);
    assert_eq!(h.probe(true, secs(5)), Some(State::Up));
    // Checks removed, then added again: Up throughout.
    h.reconfigure(&HealthParams::default(), secs(6));
    assert_eq!(h.state(secs(6)), State::Up);
    h.reconfigure(&checked(1, 2), secs(7));
    assert_eq!(h.state(secs(7)), State::Up);
    assert_eq!(h.probe(false, secs(8)), None);
    assert_eq!(h.probe(false, secs(9)), Some(State::Down));
    // Checks removed from a Down backend: Up at once.
    h.reconfigure(&HealthParams::default(), secs(10));
    assert_eq!(h.state(secs(10)), State::Up);

    // Ejection and drain survive a reload that turns detection off.
    let p = HealthParams {
        outlier: Some(eager_outlier()),
        ..HealthParams::default()
    };
    let mut h = BackendHealth::new(&p, false, secs(0));
    h.record(failing(), secs(1), || true).unwrap();
    h.reconfigure(&HealthParams::default(), secs(2));
    assert!(!h.outlier_enabled());
    assert_eq!(h.state(secs(2)), State::Ejected);
    assert_eq!(h.state(secs(11)), State::Up);
    h.drain(secs(12));
    h.reconfigure(&p, secs(13));
    assert_eq!(h.state(secs(13)), State::Draining);
    assert!(h.is_released(1, secs(42)) && !h.is_released(1, secs(41)));
}

#[test]
fn a_changed_outlier_config_keeps_the_running_ejection_and_its_backoff() {
    let p = HealthParams {
        outlier: Some(eager_outlier()),
        ..HealthParams::default()
    };
    let mut h = BackendHealth::new(&p, false, secs(0));
    h.record(failing(), secs(1), || true).unwrap();
    let mut q = p;
    q.outlier = Some(OutlierParams {
        min_requests: 7,
        ..eager_outlier()
    });
    h.reconfigure(&q, secs(2));
    assert_eq!(h.record(failing(), secs(5), || true), None);
    // The second ejection is twice as long: the history was kept.
    let e = h.record(failing(), secs(11), || true).unwrap();
    assert_eq!((e.count, e.until), (2, secs(31)));
}

#[test]
fn verdict_without_panic_routes_only_up() {
    use State::*;
    let mut out = Vec::new();
    let states = [Up, Up, Down, Ejected, Unknown, Draining];
    assert!(!pool_verdict(&states, 30, &mut out));
    assert_eq!(out, [true, true, false, false, false, false]);
    // Threshold 0 disables panic even with nothing up.
    assert!(!pool_verdict(&[Down, Down], 0, &mut out));
    assert_eq!(out, [false, false]);
    assert!(!pool_verdict(&[], 50, &mut out));
    assert!(out.is_empty());
}

#[test]
fn backups_serve_only_while_no_other_backend_is_up() {
    use State::*;
    let mut out = Vec::new();
    let backup = [false, false, true];
    assert!(!tiered_verdict(&[Up, Down, Up], &backup, 0, &mut out));
    assert_eq!(out, [true, false, false]);
    assert!(!tiered_verdict(&[Down, Ejected, Up], &backup, 0, &mut out));
    assert_eq!(out, [false, false, true]);
    // Nothing up anywhere: the primaries' panic mode, not the backups'.
    assert!(tiered_verdict(&[Down, Down, Down], &backup, 50, &mut out));
    assert_eq!(out, [true, true, false]);
    // Without backups it is the plain verdict.
    assert!(!tiered_verdict(&[Up, Down], &[], 50, &mut out));
    assert_eq!(out, [true, false]);
}

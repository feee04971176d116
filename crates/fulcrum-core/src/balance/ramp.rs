//! Slow start for every algorithm: a ramping backend is passed over by chance.
//!
//! A ramp changes a backend's share every second, but the balancers build
//! their structures once per reload (smooth weights, prefix sums, rings,
//! Maglev tables), and round robin, least connections and the hashes have no
//! weight to change at all. So the ramp is applied after the pick, as
//! admission: a candidate at ramp `r` permille is kept with probability
//! `r / 1000` and otherwise passed over for a re-pick that excludes it. Its
//! share of picks becomes its share under the algorithm times `r / 1000`
//! (with round robin, whose cursor also moves past it, exactly `r / 1000` of
//! a full backend's share), and the balancers never see a changing weight.
use super::least_conn::Mix;
use super::{Backend, BackendId, Balancer, PickCtx};

/// Re-picks after the first candidate; the last candidate is then taken, so
/// a pool that is ramping all over still answers in a few picks.
const REPICKS: usize = 3;

/// Full ramp in permille.
const FULL: u32 = 1000;

/// Picks like `balancer.pick`, but slow start applies: a backend still ramping
/// (`ramp_permille < 1000`) is passed over with probability `1 - ramp/1000`
/// when another eligible backend exists.
///
/// Admission draws come from `ctx.entropy` remixed, never the bits the
/// balancer used, so a randomised balancer's choice and the admission are
/// independent. `scratch` is a reusable buffer (callers keep one) holding
/// `ctx.exclude` plus the passed-over backends. After three re-picks the
/// last candidate is taken; when a re-pick finds nothing, the first
/// passed-over candidate is returned. A candidate at full ramp costs one
/// atomic load and no allocation.
pub fn pick_ramped(
    balancer: &dyn Balancer,
    pool: &[Backend],
    ctx: &PickCtx<'_>,
    scratch: &mut Vec<BackendId>,
) -> Option<BackendId> {
    let first = balancer.pick(pool, ctx)?;
    let mut ramp = ramp_of(pool, first);
    if ramp >= FULL {
        return Some(first);
    }
    let mut rng = Mix::new(admission_seed(ctx.entropy));
    scratch.clear();
    scratch.extend_from_slice(ctx.exclude);
    let mut candidate = first;
    for _ in 0..REPICKS {
        if ramp >= FULL || rng.below_u64(u64::from(FULL)) < u64::from(ramp) {
            return Some(candidate);
        }
        scratch.push(candidate);
        let retry = PickCtx {
            hash: ctx.hash,
            exclude: scratch,
            // Fresh bits, or a randomised balancer would redraw the same way.
            entropy: rng.next_u64(),
            now_ns: ctx.now_ns,
            load: ctx.load,
        };
        match balancer.pick(pool, &retry) {
            Some(next) => candidate = next,
            // The passed-over backends were the only eligible ones.
            None => return Some(first),
        }
        ramp = ramp_of(pool, candidate);
    }
    Some(candidate)
}

/// The ramp of `id`; full for an id outside the pool (a balancer bug), so it
/// is returned as the balancer chose it.
fn ramp_of(pool: &[Backend], id: BackendId) -> u32 {
    pool.get(id.index())
        .map_or(FULL, |b| b.state.ramp_permille())
}

/// A seed for admission draws that no balancer's stream (seeded with
/// `entropy` itself) runs through.
fn admission_seed(entropy: u64) -> u64 {
    entropy.rotate_left(32) ^ 0xD6E8_FEB8_6659_FD93
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::test_support::pool;
    use super::*;

    /// Returns scripted picks (skipping excluded ones) and records each exclude list.
    #[derive(Debug, Default)]
    struct Script {
        order: Vec<u32>,
        seen: Mutex<Vec<(Vec<BackendId>, u64)>>,
    }

    impl Balancer for Script {
        fn pick(&self, _pool: &[Backend], ctx: &PickCtx<'_>) -> Option<BackendId> {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((ctx.exclude.to_vec(), ctx.entropy));
            }
            self.order
                .iter()
                .map(|&i| BackendId(i))
                .find(|id| !ctx.exclude.contains(id))
        }
    }

    fn script(order: &[u32]) -> Script {
        Script {
            order: order.to_vec(),
            ..Script::default()
        }
    }

    #[test]
    fn a_full_candidate_is_returned_without_touching_scratch() {
        let pool = pool(&[1, 1]);
        let b = script(&[1, 0]);
        let mut scratch = vec![BackendId(7)];
        let ctx = PickCtx::default();
        assert_eq!(
            pick_ramped(&b, &pool, &ctx, &mut scratch),
            Some(BackendId(1))
        );
        assert_eq!(scratch, [BackendId(7)]);
        assert_eq!(b.seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_cold_candidate_is_passed_over_for_a_full_one_with_fresh_entropy() {
        let pool = pool(&[1, 1, 1]);
        pool[0].state.set_ramp_permille(1);
        let b = script(&[0, 2]);
        let exclude = [BackendId(1)];
        let mut scratch = Vec::new();
        let mut passed = 0;
        for entropy in 0..1_000u64 {
            let ctx = PickCtx {
                exclude: &exclude,
                entropy,
                ..PickCtx::default()
            };
            if pick_ramped(&b, &pool, &ctx, &mut scratch) == Some(BackendId(2)) {
                passed += 1;
            }
        }
        assert!(passed >= 990, "{passed}");
        let seen = b.seen.lock().unwrap();
        let (exclude, entropy) = &seen[1];
        assert_eq!(exclude, &[BackendId(1), BackendId(0)]);
        assert_ne!(*entropy, 0);
    }

    #[test]
    fn the_only_eligible_backend_is_returned_however_cold() {
        let pool = pool(&[1, 1]);
        pool[0].state.set_ramp_permille(1);
        let b = script(&[0]);
        let mut scratch = Vec::new();
        for entropy in 0..100 {
            let ctx = PickCtx {
                entropy,
                ..PickCtx::default()
            };
            assert_eq!(
                pick_ramped(&b, &pool, &ctx, &mut scratch),
                Some(BackendId(0))
            );
        }
    }

    #[test]
    fn the_last_candidate_is_taken_after_three_repicks() {
        let pool = pool(&[1; 5]);
        for b in &pool {
            b.state.set_ramp_permille(1);
        }
        let b = script(&[0, 1, 2, 3, 4]);
        let mut scratch = Vec::new();
        let mut last = 0;
        for entropy in 0..100 {
            let ctx = PickCtx {
                entropy,
                ..PickCtx::default()
            };
            if pick_ramped(&b, &pool, &ctx, &mut scratch) == Some(BackendId(3)) {
                last += 1;
            }
        }
        assert!(last >= 99, "{last}");
        assert!(b.seen.lock().unwrap().len() <= 100 * 4);
    }
}

//! Balancing through the real proxy.

use std::collections::HashMap;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_hits_every_backend_equally() {
    within(async {
        let b: Vec<Backend> = futures_join(["a", "b", "c"]).await;
        let f = Fulcrum::start(&one_pool(
            "round_robin",
            &b.iter().map(quoted).collect::<Vec<_>>(),
            "",
        ));
        let c = client();
        let mut count: HashMap<String, usize> = HashMap::new();
        for _ in 0..300 {
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200);
            *count.entry(backend).or_default() += 1;
        }
        assert_eq!(count.len(), 3, "{count:?}");
        assert!(count.values().all(|&n| n == 100), "{count:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smooth_weighted_is_exact_and_interleaved() {
    within(async {
        let b: Vec<Backend> = futures_join(["a", "b", "c"]).await;
        let list = vec![
            format!("{{ address = \"{}\", weight = 3 }}", b[0].addr),
            quoted(&b[1]),
            quoted(&b[2]),
        ];
        let f = Fulcrum::start(&one_pool("weighted_round_robin", &list, ""));
        let c = client();
        let mut seq = Vec::new();
        for _ in 0..50 {
            let (status, backend, _) = get(&c, &format!("{}/", f.url("public"))).await;
            assert_eq!(status, 200);
            seq.push(backend);
        }
        for cycle in seq.chunks(5) {
            let a = cycle.iter().filter(|x| *x == "a").count();
            assert_eq!(a, 3, "cycle {cycle:?}");
        }
        for w in seq.windows(3) {
            assert!(
                !(w[0] == "a" && w[1] == "a" && w[2] == "a"),
                "three in a row: {seq:?}"
            );
        }
    })
    .await;
}

/// Starts named backends.
pub async fn futures_join<const N: usize>(names: [&str; N]) -> Vec<Backend> {
    let mut v = Vec::new();
    for n in names {
        v.push(Backend::start(n).await);
    }
    v
}

//! Hot reload without loss: steady load and an open streaming response while the
//! config is reloaded 50 times, valid and invalid changes mixed.

use bytes::Bytes;

use crate::support::*;
use crate::support_health::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_nothing_and_the_stream_completes() {
    within(async {
        let b = Switchable::start_n(3).await;
        let all: Vec<&Switchable> = b.iter().collect();
        let f = Fulcrum::start(&pool_of(&all, ""));
        let load = Load::start(format!("{}/", f.url("public")), 4);
        load.wait_total(50).await;
        // A long response opened before the first reload, finished after the last.
        let long = tokio::spawn({
            let url = format!("{}/stream-hold", f.url("public"));
            async move { send(&client(), "GET", &url, "").await }
        });
        until("the long response is held", || {
            b.iter().map(|x| x.held()).sum::<usize>() == 1
        })
        .await;
        let list = |set: &[&Switchable]| set.iter().map(|x| x.quoted()).collect::<Vec<_>>();
        let (mut ok, mut refused) = (0, 0);
        for i in 0..50 {
            let config = match i % 5 {
                // Invalid: refused with the old config serving.
                0 => "workers = 1\n[pools.p]\nbackends = []\n".to_owned(),
                1 => one_pool("no_such_algorithm", &list(&all), ""),
                // Valid: the backend set and the algorithm change.
                2 => pool_of(&all[..2], ""),
                3 => one_pool("least_connections", &list(&all[1..]), ""),
                _ => one_pool("random", &list(&all), ""),
            };
            let line = tokio::task::block_in_place(|| f.reload(&config));
            if line.contains("config reloaded") {
                ok += 1;
            } else {
                assert!(line.contains("reload failed"), "{line}");
                refused += 1;
            }
            let before = load.tally().total;
            load.wait_total(before + 5).await;
        }
        assert_eq!((ok, refused), (30, 20), "{}", f.log.all());
        for x in &b {
            x.release();
        }
        let r = long.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.body,
            Bytes::from_static(b"start\nend\n"),
            "the stream was cut"
        );
        let tally = load.stop().await;
        println!("requests {}, failed {}", tally.total, tally.failed());
        assert_eq!(tally.failed(), 0, "{tally:?}");
        assert!(tally.total > 300, "{tally:?}");
    })
    .await;
}

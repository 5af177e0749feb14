//! End to end on the local system (Redis cluster on 7000–7005, moto on 4566): POST through
//! every ingest route ⇒ Kinesis ⇒ pollers + writer ⇒ Redis head ⇒ flush ⇒ DynamoDB items
//! that decode to exactly the posted points; then a replay of the stream while the main
//! pollers run ⇒ byte-identical items. Windows are 10 s with 1 s grace, so it takes seconds.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use carat_core::{chunk, window, Config, Point, Tenant};
use carat_local::replay::backup_poller;
use carat_store::ports::{WindowItem, WindowTable};
use common::{json, now_ms, post, remote_write, test_config};

/// The items of `series` covering `points` (one per window: no rollup items since
/// issue 8), once they hold exactly the posted points, or `None` at the deadline.
async fn settled_items(
    table: &dyn WindowTable,
    cfg: &Config,
    series: &str,
    points: &[Point],
) -> Option<Vec<WindowItem>> {
    let from = window::start(cfg.window.raw_secs, points.first()?.time);
    let to = points.last()?.time;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let raw = table
            .query(&format!("default#{series}#raw"), from, to)
            .await
            .unwrap();
        let got: Vec<Point> = raw
            .iter()
            .flat_map(|i| chunk::decode(&i.body).unwrap())
            .collect();
        if got == points {
            return Some(raw);
        }
        if tokio::time::Instant::now() > deadline {
            eprintln!("{series}: stored {got:?}, posted {points:?}");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn posted_points_reach_dynamodb_exactly_and_survive_a_replay() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let run = format!("{}{}", std::process::id(), now_ms() % 1_000_000);
    let cfg = test_config(&run, 10);
    // Pollers from just before this test (the shared stream holds other tests' records),
    // the writer and the flusher, in-process.
    let sys = common::System::start(cfg.clone()).await;
    eprintln!("pollers started on {} shards", sys.shards.len());
    let api = sys.api(&Tenant::default_tenant());
    let t = now_ms() / 1000 - 4;
    let pts = |k: f64| {
        vec![
            Point::new(t, 1.5 * k),
            Point::new(t + 1, 2.25 * k),
            Point::new(t + 2, 12.34 * k),
        ]
    };
    let mut posted: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    let host = format!("it{run}");
    post(&api, json("/api/v0/tsdb", &serde_json::json!(pts(1.0).iter().map(|p| serde_json::json!({"hostId": host, "name": "cpu.user", "time": p.time, "value": p.value})).collect::<Vec<_>>()))).await;
    posted.insert(format!("host.{host}.cpu.user"), pts(1.0));
    post(
        &api,
        json(
            &format!("/api/v0/services/{host}/tsdb"),
            &serde_json::json!(pts(2.0)
                .iter()
                .map(|p| serde_json::json!({"name": "req.count", "time": p.time, "value": p.value}))
                .collect::<Vec<_>>()),
        ),
    )
    .await;
    posted.insert(format!("service.{host}.req.count"), pts(2.0));
    post(&api, json("/api/v1/points", &serde_json::json!(pts(3.0).iter().map(|p| serde_json::json!({"series": format!("{host}.native"), "time": p.time, "value": p.value})).collect::<Vec<_>>()))).await;
    posted.insert(format!("{host}.native"), pts(3.0));
    post(&api, remote_write(&format!("{host}_prom"), &pts(4.0))).await;
    posted.insert(format!("{host}_prom.job.it"), pts(4.0));
    // A later post overwrites one point of the native series: a later stamp wins. Stamps
    // compare in whole seconds (within one second the greater value bits would), so the
    // correction comes a second later.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    post(&api, json("/api/v1/points", &serde_json::json!([{"series": format!("{host}.native"), "time": t + 1, "value": -7.0}]))).await;
    posted.get_mut(&format!("{host}.native")).unwrap()[1] = Point::new(t + 1, -7.0);

    eprintln!("posted");
    let mut before = BTreeMap::new();
    for (series, points) in &posted {
        let items = settled_items(sys.state.clients.table.as_ref(), &cfg, series, points).await;
        before.insert(
            series.clone(),
            items.unwrap_or_else(|| panic!("{series} never reached DynamoDB exactly")),
        );
    }

    eprintln!("items stored");
    // The backup writer replays the stream from before the test while the main pollers run.
    let mut replays = tokio::task::JoinSet::new();
    for shard in &sys.shards {
        let p = backup_poller(
            &sys.state.config,
            &sys.state,
            Arc::new(carat_local::poller::writer(&sys.state)),
            true,
        );
        let (shard, start, sd) = (shard.clone(), sys.started.clone(), sys.shutdown.clone());
        replays.spawn(async move { p.run(&shard, start, sd).await.unwrap() });
    }
    let mut replayed = 0;
    while let Some(stats) = replays.join_next().await {
        replayed += stats.unwrap().records;
    }
    eprintln!("replayed {replayed} records");
    assert!(
        replayed >= 5,
        "the replay read this test's records ({replayed})"
    );
    // Let the replay's re-marked windows flush (writer in-batch or the flusher each second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    carat_local::schedule::flusher(&sys.state)
        .run()
        .await
        .unwrap();
    for (series, points) in &posted {
        let after = settled_items(sys.state.clients.table.as_ref(), &cfg, series, points)
            .await
            .unwrap();
        assert_eq!(
            &after, &before[series],
            "{series}: replay changed the stored bytes"
        );
    }
    sys.stop().await;
}

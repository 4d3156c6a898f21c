//! Plans: schedules, matchers, replacing a plan, and seeded chaos.

use super::*;

#[tokio::test]
async fn schedules_matchers_and_plan_replacement() {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    let client = client();
    let mut statuses = Vec::new();

    // A burst of two 503s, then everything passes.
    proxy.set_plan(Plan::new().rule(Rule::new(Action::server_busy()).first_n(2)));
    for _ in 0..4 {
        statuses.push(
            send(&client, get(&proxy, "/a"))
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 201, 201]);

    // Replacing the plan restarts the counters: Put Block requests 1 and 2 fail, and every
    // second GET (counted among GETs only) fails; the first matching rule wins.
    proxy.set_plan(
        Plan::new()
            .rule(
                Rule::new(Action::status(500, "InternalError"))
                    .query_contains("comp=block")
                    .between(1, 3),
            )
            .rule(
                Rule::new(Action::status(409, "Conflict"))
                    .method(Method::GET)
                    .every_nth(2),
            )
            .rule(Rule::new(Action::status(412, "ConditionNotMet")).path_contains("/locked/")),
    );
    let mut statuses = Vec::new();
    for i in 0..5 {
        statuses.push(
            send(&client, put(&proxy, "/c/b?comp=block", "x"))
                .await
                .unwrap()
                .status
                .as_u16(),
        );
        statuses.push(
            send(&client, get(&proxy, &format!("/c/{i}")))
                .await
                .unwrap()
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [201, 201, 500, 409, 500, 201, 201, 409, 201, 201]);
    assert_eq!(
        send(&client, put(&proxy, "/c/locked/b?comp=block", "x"))
            .await
            .unwrap()
            .status,
        412
    );

    let stats = proxy.stats();
    assert_eq!(stats.requests, 15);
    assert_eq!(stats.forwarded, 8);
    assert_eq!(stats.statuses, 7);
    assert_eq!(
        stats.statuses_by_code,
        BTreeMap::from([(409, 2), (412, 1), (500, 2), (503, 2)])
    );
    assert_eq!(stats.failures_injected(), 7);
    assert_eq!(upstream.seen().len(), 8);

    proxy.set_plan(Plan::pass());
    assert_eq!(
        send(&client, put(&proxy, "/c/locked/b?comp=block", "x"))
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(proxy.stats().connections, 1);
}

/// What one request met, as the client and the upstream saw it.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Failed { reached_upstream: bool },
}

async fn chaos_run(seed: u64) -> (Vec<Outcome>, Stats) {
    let upstream = Upstream::start().await;
    let proxy = FaultProxy::start(&upstream.url()).await;
    proxy.set_plan(Plan::chaos(seed, 0.1, 0.1, 0.1, 0.1));
    let client = client();
    let mut outcomes = Vec::new();
    for i in 0..200 {
        let before = upstream.seen().len();
        let outcome = match send(
            &client,
            put(&proxy, &format!("/c/b?comp=block&n={i}"), "record"),
        )
        .await
        {
            Ok(answer) => Outcome::Status(answer.status.as_u16()),
            Err(_) => Outcome::Failed {
                reached_upstream: upstream.seen().len() > before,
            },
        };
        outcomes.push(outcome);
    }
    let stats = proxy.stats();
    assert_eq!(stats.forwarded, upstream.seen().len() as u64);
    (
        outcomes,
        Stats {
            connections: 0,
            ..stats
        },
    )
}

#[tokio::test]
async fn chaos_with_a_fixed_seed_is_reproducible() {
    let (first, first_stats) = chaos_run(42).await;
    let (again, again_stats) = chaos_run(42).await;
    let (other, _) = chaos_run(43).await;
    assert_eq!(first, again);
    assert_eq!(first_stats, again_stats);
    assert_ne!(first, other, "another seed gives another sequence");

    let count = |o: &Outcome| first.iter().filter(|x| *x == o).count();
    assert!(count(&Outcome::Status(503)) > 5, "{first_stats:?}");
    assert!(count(&Outcome::Status(429)) > 5, "{first_stats:?}");
    assert!(
        count(&Outcome::Failed {
            reached_upstream: false
        }) > 5,
        "{first_stats:?}"
    );
    assert!(
        count(&Outcome::Failed {
            reached_upstream: true
        }) > 5,
        "{first_stats:?}"
    );
    assert!(count(&Outcome::Status(201)) > 90, "{first_stats:?}");
    assert_eq!(
        count(&Outcome::Failed {
            reached_upstream: false
        }) as u64,
        first_stats.resets
    );
    assert_eq!(
        count(&Outcome::Failed {
            reached_upstream: true
        }) as u64,
        first_stats.dropped_responses
    );
}

#[test]
fn chaos_probabilities_are_honoured() {
    let mut plan = ActivePlan::new(Plan::chaos(7, 0.25, 0.25, 0.25, 0.25));
    let uri: Uri = "/c/b".parse().unwrap();
    let mut counts = BTreeMap::new();
    for _ in 0..20_000 {
        *counts
            .entry(plan.decide(&Method::PUT, &uri).label())
            .or_insert(0) += 1;
    }
    assert_eq!(counts.get("pass"), None, "the four faults add up to 1");
    assert_eq!(
        counts["status"],
        counts.values().sum::<i32>() - counts["reset"] - counts["drop-response"]
    );
    for (label, n) in &counts {
        let expected = if *label == "status" { 10_000 } else { 5_000 };
        assert!(
            (n - expected).abs() < 400,
            "{label}: {n} (expected about {expected})"
        );
    }

    let mut none = ActivePlan::new(Plan::chaos(7, 0.0, 0.0, 0.0, 0.0));
    assert!((0..1000).all(|_| none.decide(&Method::PUT, &uri) == Action::Pass));
}

//! The load generator's plans, rounds and counts.

use super::*;

#[test]
fn a_measured_run_lasts_five_seconds_unless_a_count_alone_is_asked() {
    let five = Plan::measured(64, None, None);
    assert_eq!(
        (five.requests, five.duration),
        (None, Some(Duration::from_secs(5)))
    );
    let count = Plan::measured(64, Some(200), None);
    assert_eq!((count.requests, count.duration), (Some(200), None));
    // A time wins over a count, as --requests' help says.
    let both = Plan::measured(4, Some(200), Some(1.5));
    assert_eq!(
        (both.requests, both.duration, both.clients),
        (None, Some(Duration::from_millis(1500)), 4)
    );
}

#[test]
fn a_plan_shared_over_rounds_adds_up_to_the_plan() {
    let count = Plan {
        clients: 8,
        requests: Some(10),
        duration: None,
    };
    let shares: Vec<usize> = (0..4)
        .map(|i| count.share(i, 4).requests.unwrap())
        .collect();
    assert_eq!(shares, [3, 3, 2, 2]);
    let timed = Plan::measured(8, None, Some(6.0)).share(2, 4);
    assert_eq!(
        (timed.duration, timed.requests, timed.clients),
        (Some(Duration::from_millis(1500)), None, 8)
    );
}

#[tokio::test]
async fn merged_rounds_add_up_and_summarise_every_request() {
    let plan = |n| Plan {
        clients: 2,
        requests: Some(n),
        duration: None,
    };
    let first = run("a", plan(30), |_| async { Ok(()) }).await;
    let second = run("b", plan(20), |i| async move {
        if i == 3 {
            Err("third".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let elapsed = first.elapsed + second.elapsed;
    let merged = Outcome::merge(vec![first, second]);
    assert_eq!(
        (merged.requests, merged.errors, merged.latency.count),
        (50, 1, 50)
    );
    assert_eq!(merged.elapsed, elapsed);
    assert_eq!(merged.first_error.as_deref(), Some("third"));
}

#[tokio::test]
async fn runs_exactly_the_requests_asked_and_counts_errors() {
    let plan = Plan {
        clients: 4,
        requests: Some(100),
        duration: None,
    };
    let outcome = run("test", plan, |i| async move {
        if i % 10 == 0 {
            Err(format!("bad {i}"))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(outcome.requests, 100);
    assert_eq!(outcome.errors, 10);
    assert!(outcome.first_error.is_some());
}

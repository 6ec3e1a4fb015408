//! Interleaved rounds, how `start` and `status` measure the engine next to their references
//! on a noisy machine. Each round runs every reference, then the engine, for its share of
//! the plan (`Plan::share`); each series' rounds are then merged into one outcome
//! (`Outcome::merge`). A slow spell of the machine, which here can last seconds to minutes
//! and slows a loopback HTTP server by a quarter (docs/BENCHMARKS.md, "Machine"), then falls
//! on the engine and on its references alike instead of on whichever ran during it; the
//! ratio of each round, printed as a range, shows how much the machine moved.

use super::load::{Outcome, Plan};

/// How many rounds a run makes: as asked, at least one, and no more than it sends requests
/// (a round with nothing to send would have no rate).
pub fn count(asked: usize, plan: Plan) -> usize {
    asked.clamp(1, plan.requests.unwrap_or(usize::MAX).max(1))
}

/// Requests per second of each round of a series.
pub fn rates(series: &[Outcome]) -> Vec<f64> {
    series.iter().map(Outcome::per_second).collect()
}

/// Each round's engine rate over its reference's.
pub fn ratios(engine: &[Outcome], reference: &[Outcome]) -> Vec<f64> {
    engine
        .iter()
        .zip(reference)
        .map(|(e, r)| e.per_second() / r.per_second())
        .collect()
}

/// The progress label of round `round` (0-based) of `scenario`: "start 2/4".
pub fn label(scenario: &str, round: usize, rounds: usize) -> String {
    if rounds > 1 {
        format!("{scenario} {}/{rounds}", round + 1)
    } else {
        scenario.to_owned()
    }
}

/// ", in N interleaved rounds" for a scenario's title; nothing for one round.
pub fn describe(rounds: usize) -> String {
    if rounds > 1 {
        format!(", in {rounds} interleaved rounds")
    } else {
        String::new()
    }
}

/// "; per round a-b%" for the ratios of each round; nothing for one round.
pub fn spread(per_round: &[f64]) -> String {
    if per_round.len() < 2 {
        return String::new();
    }
    let low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let high = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("; per round {:.1}-{:.1}%", low * 100.0, high * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_names_the_lowest_and_highest_round() {
        assert_eq!(spread(&[0.28, 0.251, 0.3]), "; per round 25.1-30.0%");
        assert_eq!(spread(&[0.28]), "");
        assert_eq!(describe(4), ", in 4 interleaved rounds");
        assert_eq!(describe(1), "");
        assert_eq!(
            (label("start", 1, 4), label("status", 0, 1)),
            ("start 2/4".to_owned(), "status".to_owned())
        );
    }

    #[test]
    fn a_run_makes_no_more_rounds_than_it_sends_requests() {
        let count_of = |requests| Plan {
            clients: 4,
            requests,
            duration: None,
        };
        assert_eq!(count(4, count_of(Some(3))), 3);
        assert_eq!(count(4, count_of(Some(200))), 4);
        assert_eq!(count(0, count_of(None)), 1);
        assert_eq!(count(4, count_of(Some(0))), 1);
    }
}

//! Pagination of `GET /v1/predictions`: the opaque cursor and the choice of which slice of the
//! creation-ordered store one page shows. Pure functions over positions; no locks, no IO.
//!
//! Predictions are stored in creation order with non-decreasing `created_at`, so a filter is a
//! contiguous range of positions and a cursor is a position: ties on `created_at` cannot make a
//! page repeat or skip a prediction.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

/// Where a page starts. Encoded as URL-safe base64 of a small JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `"n"`: positions below `p` (older); `"p"`: positions at or above `p` (newer).
    pub d: String,
    pub p: usize,
    /// `created_after` filter, unix nanoseconds, carried from the first request.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub a: Option<i128>,
    /// `created_before` filter, unix nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub b: Option<i128>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor always serialises"))
    }

    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let invalid = || ApiError::BadRequest("Invalid cursor".into());
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| invalid())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if cursor.d != "n" && cursor.d != "p" {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

/// One page: positions `start..end` (shown newest first) and the cursors around it.
#[derive(Debug, PartialEq, Eq)]
pub struct PagePlan {
    pub start: usize,
    pub end: usize,
    pub next: Option<usize>,
    pub previous: Option<usize>,
}

/// Chooses the page inside the filtered range `lo..hi`.
pub fn plan_page(lo: usize, hi: usize, cursor: Option<&Cursor>, page_size: usize) -> PagePlan {
    let page_size = page_size.max(1);
    let (start, end) = match cursor {
        None => (hi.saturating_sub(page_size).max(lo), hi),
        Some(c) if c.d == "n" => {
            let end = c.p.clamp(lo, hi);
            (end.saturating_sub(page_size).max(lo), end)
        }
        Some(c) => {
            let start = c.p.clamp(lo, hi);
            (start, (start + page_size).min(hi))
        }
    };
    PagePlan {
        start,
        end,
        next: (start > lo).then_some(start),
        previous: (end < hi).then_some(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(lo: usize, hi: usize, size: usize) -> Vec<usize> {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = plan_page(lo, hi, cursor.as_ref(), size);
            seen.extend((page.start..page.end).rev());
            match page.next {
                Some(p) => {
                    cursor = Some(Cursor {
                        d: "n".into(),
                        p,
                        a: None,
                        b: None,
                    })
                }
                None => return seen,
            }
        }
    }

    #[test]
    fn following_next_visits_every_position_once_newest_first() {
        assert_eq!(walk(0, 7, 3), vec![6, 5, 4, 3, 2, 1, 0]);
        assert_eq!(walk(2, 9, 100), (2..9).rev().collect::<Vec<_>>());
        assert_eq!(walk(0, 0, 3), Vec::<usize>::new());
    }

    #[test]
    fn previous_returns_to_the_page_before() {
        let first = plan_page(0, 7, None, 3);
        let second = plan_page(
            0,
            7,
            Some(&Cursor {
                d: "n".into(),
                p: first.next.unwrap(),
                a: None,
                b: None,
            }),
            3,
        );
        assert_eq!((second.start, second.end), (1, 4));
        let back = plan_page(
            0,
            7,
            Some(&Cursor {
                d: "p".into(),
                p: second.previous.unwrap(),
                a: None,
                b: None,
            }),
            3,
        );
        assert_eq!((back.start, back.end), (4, 7));
        assert_eq!(back.previous, None);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            d: "n".into(),
            p: 42,
            a: Some(-5),
            b: None,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not a cursor!").is_err());
    }
}

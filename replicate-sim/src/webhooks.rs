//! The pure parts of webhook delivery: Standard-Webhooks signing, which events a prediction
//! asked for, the retry schedule of the terminal webhook, message ids and the per-attempt fault
//! draw. No IO, no clock, no locks; [`crate::delivery`] carries them out.
//!
//! Events: only `start` and `completed` are sent. A prediction without `webhook_events_filter`
//! gets both (the docs leave the real default unconfirmed); `output` and `logs` in a filter are
//! accepted but never sent, since simulated output appears only at completion, where the
//! `completed` body already carries it.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::faults::{chance, Faults};

/// The two events the simulator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Right after creation; never retried.
    Start,
    /// On the terminal state (succeeded, failed, canceled, aborted); retried with backoff.
    Completed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Completed => "completed",
        }
    }
}

/// Whether a prediction's filter asks for `event`; no filter means `start` and `completed`.
pub fn wants(filter: Option<&[String]>, event: Event) -> bool {
    match filter {
        None => true,
        Some(events) => events.iter().any(|e| e == event.as_str()),
    }
}

/// The signing key of a `whsec_<base64>` secret: the base64-decoded part after `whsec_`. A
/// secret that is not valid base64 signs with its raw bytes instead (never the case for the
/// secrets the simulator makes; [`valid_secret`] tells a caller in advance).
pub fn signing_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// True for `whsec_` followed by non-empty standard base64.
pub fn valid_secret(secret: &str) -> bool {
    secret
        .strip_prefix("whsec_")
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .is_some_and(|key| !key.is_empty())
}

/// A fresh `whsec_` secret over 24 random bytes.
pub fn random_secret(rng: &mut impl Rng) -> String {
    let mut key = [0u8; 24];
    rng.fill(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// The `webhook-signature` value: `v1,<base64(HMAC_SHA256(key, id.timestamp.body))>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Retries of the terminal webhook after the first attempt.
pub const MAX_RETRIES: u32 = 7;

/// When attempt `attempt` (0 = the first, 1..=[`MAX_RETRIES`] = retries) of a terminal webhook
/// is due, measured from the prediction's completion: 0, then 0.5 s doubling
/// (0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s) and a last retry capped at 60 s, all times `scale`.
/// `None` once the retries are used up.
pub fn retry_offset(attempt: u32, scale: f64) -> Option<Duration> {
    if attempt > MAX_RETRIES {
        return None;
    }
    let seconds = (0.5 * ((1u64 << attempt) - 1) as f64).min(60.0);
    let scale = if scale.is_finite() {
        scale.max(0.0)
    } else {
        1.0
    };
    Some(Duration::from_secs_f64(seconds * scale))
}

/// A fresh message id: `msg_` and 27 random alphanumerics.
pub fn message_id(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..27)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("msg_{tail}")
}

/// The webhook part of [`Faults`], copied out of the gate when a delivery is planned or tried.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WebhookFaults {
    pub drop_rate: f64,
    pub drop_all: bool,
    pub duplicate_rate: f64,
    pub delay_ms: (u64, u64),
    pub reorder: bool,
}

impl WebhookFaults {
    pub fn from_faults(faults: &Faults) -> Self {
        WebhookFaults {
            drop_rate: faults.webhook_drop_rate,
            drop_all: faults.webhook_drop_all,
            duplicate_rate: faults.webhook_duplicate_rate,
            delay_ms: faults.webhook_delay_ms,
            reorder: faults.webhook_reorder,
        }
    }

    /// The extra delay before one attempt, uniform in `delay_ms`.
    pub fn delay(&self, rng: &mut impl Rng) -> Duration {
        let (min, max) = self.delay_ms;
        Duration::from_millis(if max > min {
            rng.random_range(min..=max)
        } else {
            min
        })
    }

    /// One attempt's fate; draws nothing for switches that are off.
    pub fn draw(&self, rng: &mut impl Rng) -> AttemptFate {
        if self.drop_all || chance(rng, self.drop_rate) {
            AttemptFate::Drop
        } else if chance(rng, self.duplicate_rate) {
            AttemptFate::SendTwice
        } else {
            AttemptFate::Send
        }
    }
}

/// What happens to one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFate {
    /// Not sent; a terminal webhook counts it as failed and retries.
    Drop,
    Send,
    /// Sent, then sent again with the same `webhook-id` and a fresh timestamp and signature.
    SendTwice,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_standard_webhooks_test_vector_signs() {
        let key = signing_key(SECRET);
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(valid_secret(SECRET));
        assert!(!valid_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(!valid_secret("whsec_not base64!"));
        assert!(valid_secret(&random_secret(&mut StdRng::seed_from_u64(1))));
    }

    #[test]
    fn the_documented_terminal_delivery_signs() {
        // A terminal delivery of a succeeded prediction, 689 bytes, no trailing newline. The
        // expected signature was computed outside this code (HMAC-SHA256 over
        // "id.timestamp.body" with the test secret's key), so the test checks our signing
        // against an independent vector.
        let body = concat!(
            r#"{"id":"x7q3mzr5ndrgc0cm2s8t9hf1vw","model":"black-forest-labs/flux-schnell","#,
            r#""version":"hidden","input":{"prompt":"a red bicycle"},"logs":"","#,
            r#""output":["https://replicate.delivery/xezq/abc123/out-0.webp"],"data_removed":false,"#,
            r#""error":null,"source":"api","status":"succeeded","created_at":"2025-01-01T00:00:00.123Z","#,
            r#""started_at":"2025-01-01T00:00:01.456789Z","completed_at":"2025-01-01T00:00:02.789012Z","#,
            r#""urls":{"cancel":"https://api.replicate.com/v1/predictions/x7q3mzr5ndrgc0cm2s8t9hf1vw/cancel","#,
            r#""get":"https://api.replicate.com/v1/predictions/x7q3mzr5ndrgc0cm2s8t9hf1vw","#,
            r#""web":"https://replicate.com/p/x7q3mzr5ndrgc0cm2s8t9hf1vw"},"#,
            r#""metrics":{"predict_time":1.332223,"total_time":2.666012}}"#
        );
        assert_eq!(body.len(), 689);
        assert_eq!(
            sign(
                &signing_key(SECRET),
                "msg_2nQHkA9Zm3xR7bT1vY5cE8dW0pL",
                1735689603,
                body.as_bytes()
            ),
            "v1,WpQoRAeDmN7CuMaPUI8ofxKQJnG9hWQY7eWx4RCQAvA="
        );
    }

    #[test]
    fn filters_default_to_start_and_completed() {
        assert!(wants(None, Event::Start) && wants(None, Event::Completed));
        let completed = vec!["completed".to_string()];
        assert!(!wants(Some(&completed), Event::Start));
        assert!(wants(Some(&completed), Event::Completed));
        assert!(!wants(Some(&[]), Event::Completed));
    }

    #[test]
    fn retries_back_off_to_about_a_minute_and_scale() {
        let offsets: Vec<f64> = (0..=MAX_RETRIES)
            .map(|n| retry_offset(n, 1.0).unwrap().as_secs_f64())
            .collect();
        assert_eq!(offsets, [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 60.0]);
        assert_eq!(retry_offset(MAX_RETRIES + 1, 1.0), None);
        assert_eq!(retry_offset(2, 0.1), Some(Duration::from_millis(150)));
        assert_eq!(retry_offset(7, 0.0), Some(Duration::ZERO));
    }

    #[test]
    fn message_ids_look_like_standard_webhooks_ids() {
        let mut rng = StdRng::seed_from_u64(9);
        let (a, b) = (message_id(&mut rng), message_id(&mut rng));
        assert!(a.starts_with("msg_") && a.len() == 31);
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn attempt_fates_follow_the_switches() {
        let mut rng = StdRng::seed_from_u64(4);
        let off = WebhookFaults::default();
        assert_eq!(off.draw(&mut rng), AttemptFate::Send);
        assert_eq!(off.delay(&mut rng), Duration::ZERO);
        let all = WebhookFaults {
            drop_all: true,
            duplicate_rate: 1.0,
            ..off
        };
        assert_eq!(all.draw(&mut rng), AttemptFate::Drop);
        let twice = WebhookFaults {
            duplicate_rate: 1.0,
            delay_ms: (5, 9),
            ..off
        };
        assert_eq!(twice.draw(&mut rng), AttemptFate::SendTwice);
        assert!((5..=9).contains(&twice.delay(&mut rng).as_millis()));
    }
}

//! Verifying Replicate's webhook deliveries (Standard Webhooks): an HMAC-SHA256 over
//! `id.timestamp.body` with the key after `whsec_`, compared in constant time against every
//! `v1,` entry of `webhook-signature`, and a timestamp no more than 5 minutes off.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a delivery's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("the webhook-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the webhook-timestamp is more than 5 minutes from now")]
    Stale,
    #[error("no webhook-signature matches")]
    BadSignature,
}

/// A signing secret, decoded once at startup.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl WebhookKey {
    /// Parses `whsec_<base64>` (the prefix is optional).
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret
            .trim()
            .strip_prefix("whsec_")
            .unwrap_or(secret.trim());
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| format!("the webhook secret is not whsec_<base64>: {e}"))?;
        if key.is_empty() {
            return Err("the webhook secret is empty".into());
        }
        Ok(WebhookKey(key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of a message, as a sender would put it.
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }

    /// Checks a delivery; `now` is Unix seconds.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError> {
        let id = id.ok_or(WebhookError::MissingHeader("webhook-id"))?;
        let timestamp = timestamp.ok_or(WebhookError::MissingHeader("webhook-timestamp"))?;
        let signature = signature.ok_or(WebhookError::MissingHeader("webhook-signature"))?;
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        if (now - sent).abs() > TOLERANCE_SECS {
            return Err(WebhookError::Stale);
        }
        let matches = signature
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .any(|encoded| {
                STANDARD
                    .decode(encoded)
                    .is_ok_and(|given| self.mac(id, timestamp, body).verify_slice(&given).is_ok())
            });
        if matches {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_standard_webhooks_test_vector_signs_and_verifies() {
        let key = WebhookKey::parse(SECRET).unwrap();
        assert_eq!(key.sign(ID, TS, BODY), EXPECTED);
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some(EXPECTED), BODY, 1614265330),
            Ok(())
        );
        let several = format!("v1,bm90IGl0 {EXPECTED} v2,xyz");
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some(&several), BODY, 1614265330 + 299),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_incomplete_deliveries_are_refused() {
        let key = WebhookKey::parse(SECRET).unwrap();
        let at = 1614265330;
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some(EXPECTED), tampered, at),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            key.verify(Some("msg_other"), Some(TS), Some(EXPECTED), BODY, at),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some("v1,!!notbase64"), BODY, at),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some(EXPECTED), BODY, at + 301),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            key.verify(Some(ID), Some(TS), Some(EXPECTED), BODY, at - 301),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            key.verify(Some(ID), Some("soon"), Some(EXPECTED), BODY, at),
            Err(WebhookError::BadTimestamp)
        );
        assert_eq!(
            key.verify(None, Some(TS), Some(EXPECTED), BODY, at),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let other = WebhookKey::parse("whsec_c2VjcmV0LW90aGVy").unwrap();
        assert_eq!(
            other.verify(Some(ID), Some(TS), Some(EXPECTED), BODY, at),
            Err(WebhookError::BadSignature)
        );
        assert!(WebhookKey::parse("whsec_***").is_err());
    }
}

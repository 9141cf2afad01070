//! The admin token: `Authorization: Bearer <token>` on every call but
//! `/healthz`, compared in constant time (as digests, so the length leaks
//! nothing either). Failed attempts are logged with the client's address,
//! at most one line per [`LOG_EVERY_MS`] with a count of the rest.

use log::warn;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::response::ApiError;

/// At most one failed-login log line per this many milliseconds.
pub const LOG_EVERY_MS: u64 = 10_000;

/// The configured token, or none (then nothing is asked).
pub struct Auth {
    /// SHA-256 of the token.
    token: Option<[u8; 32]>,
    /// Failed attempts not logged yet, and when the last line was written.
    failures: parking_lot::Mutex<FailureLog>,
}

#[derive(Debug, Default)]
struct FailureLog {
    last_logged_ms: Option<u64>,
    suppressed: u64,
}

impl FailureLog {
    /// Counts a failure at `now_ms`; returns how many to report now
    /// (this one and those held back), or `None` to hold it back.
    fn record(&mut self, now_ms: u64) -> Option<u64> {
        let due = self
            .last_logged_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= LOG_EVERY_MS);
        if due {
            self.last_logged_ms = Some(now_ms);
            let n = self.suppressed + 1;
            self.suppressed = 0;
            Some(n)
        } else {
            self.suppressed += 1;
            None
        }
    }
}

impl Auth {
    pub fn new(token: Option<&str>) -> Self {
        Auth {
            token: token.map(|t| digest(t.as_bytes())),
            failures: parking_lot::Mutex::new(FailureLog::default()),
        }
    }

    /// Whether a token is configured.
    pub fn is_set(&self) -> bool {
        self.token.is_some()
    }

    /// `Ok` when no token is configured or `header` carries it.
    pub fn check(&self, header: Option<&[u8]>, client: &str, now_ms: u64) -> Result<(), ApiError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let refusal = match header {
            None => ApiError::new(
                401,
                "missing Authorization header: send \"Authorization: Bearer <token>\"",
            ),
            Some(header) => match bearer_token(header) {
                None => ApiError::new(401, "the Authorization header must be \"Bearer <token>\""),
                Some(presented) if bool::from(digest(presented).ct_eq(expected)) => return Ok(()),
                Some(_) => ApiError::new(401, "wrong token"),
            },
        };
        if let Some(n) = self.failures.lock().record(now_ms) {
            let message = refusal.messages.join("; ");
            if n == 1 {
                warn!("admin: authentication failed from {client}: {message}");
            } else {
                warn!("admin: authentication failed from {client}: {message} ({n} failures since the last line)");
            }
        }
        Err(refusal)
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let scheme = header.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = header[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(b"BEARER tok"), Some(&b"tok"[..]));
        assert_eq!(bearer_token(b"Bearer  tok "), Some(&b"tok"[..]));
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearertok"), None);
        assert_eq!(bearer_token(b"Basic tok"), None);
    }

    #[test]
    fn the_token_is_checked() {
        let auth = Auth::new(Some("s3cret"));
        assert!(auth.check(Some(b"Bearer s3cret"), "t", 0).is_ok());
        assert_eq!(
            auth.check(Some(b"Bearer s3cre"), "t", 0)
                .unwrap_err()
                .status,
            401
        );
        assert!(Auth::new(None).check(None, "t", 0).is_ok());
    }

    #[test]
    fn failures_are_logged_at_most_once_per_interval_with_a_count() {
        let mut log = FailureLog::default();
        assert_eq!(log.record(1_000), Some(1));
        assert_eq!(log.record(1_500), None);
        assert_eq!(log.record(9_000), None);
        assert_eq!(
            log.record(11_000),
            Some(3),
            "this one and the two held back"
        );
        assert_eq!(log.record(11_001), None);
    }
}

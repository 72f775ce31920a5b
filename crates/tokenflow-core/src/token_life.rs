//! When a cached or stored access token is due for renewal (docs/connectors.md, "Token
//! lifetimes"): `token_cache_skew` before it expires, but never earlier than half-way through
//! its life. Without that cap a token that lives no longer than the skew (60 s tokens are common
//! with short-lived credentials) would be renewed on every use, and a cache or vault in front of
//! it would only add a token request per call.

use time::{Duration, OffsetDateTime};

/// How long before `expires_at` a token obtained at `obtained_at` is renewed.
pub fn renewal_margin(
    skew: Duration,
    obtained_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Duration {
    let half_life: Duration = (expires_at - obtained_at) / 2;
    skew.min(half_life.max(Duration::ZERO))
}

/// Whether the token may still be handed out at `now` without renewing it.
pub fn still_fresh(
    now: OffsetDateTime,
    skew: Duration,
    obtained_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> bool {
    expires_at - renewal_margin(skew, obtained_at, expires_at) > now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn a_long_lived_token_is_renewed_one_skew_before_it_expires() {
        let skew = Duration::seconds(60);
        assert_eq!(renewal_margin(skew, at(0), at(3600)), skew);
        assert!(still_fresh(at(3539), skew, at(0), at(3600)));
        assert!(!still_fresh(at(3540), skew, at(0), at(3600)));
    }

    #[test]
    fn a_token_that_lives_no_longer_than_the_skew_is_used_for_half_its_life() {
        let skew = Duration::seconds(60);
        assert_eq!(renewal_margin(skew, at(0), at(60)), Duration::seconds(30));
        assert!(still_fresh(at(29), skew, at(0), at(60)));
        assert!(!still_fresh(at(30), skew, at(0), at(60)));
    }

    #[test]
    fn an_expired_or_zero_length_token_is_never_fresh() {
        let skew = Duration::seconds(60);
        assert!(!still_fresh(at(0), skew, at(0), at(0)));
        assert!(!still_fresh(at(10), skew, at(20), at(5)));
        assert_eq!(renewal_margin(skew, at(20), at(5)), Duration::ZERO);
    }
}

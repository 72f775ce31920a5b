//! Failed authentication attempts, counted per client address (docs/security.md, "Failed
//! sign-ins"): a wrong or missing API key on `/api/*` or the browser start, and a refused UI
//! sign-in. After [`MAX_FAILURES`] of them within [`WINDOW`], every attempt from that address is
//! answered `429` with `Retry-After` until the window is over — a correct key too, or the
//! guessing would go on and only the answers would change. Other addresses are not affected.
//!
//! The address is the TCP peer's ([`crate::serve`] puts it into each request); `X-Forwarded-For`
//! is not trusted, since any client can send it. An IPv6 client is counted by its /64 prefix,
//! the block one host is usually given. At most [`MAX_TRACKED`] addresses are remembered: when a
//! new one comes and the map is full, the finished windows are dropped first, then the oldest
//! window, so memory stays bounded whatever the number of addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use time::{Duration, OffsetDateTime};

/// Failures an address may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// How long failures are counted from an address's first one (a fixed window).
pub const WINDOW: Duration = Duration::seconds(60);
/// How many addresses are remembered at most.
pub const MAX_TRACKED: usize = 10_000;

/// The failures of each address in its current window.
#[derive(Debug, Default)]
pub struct FailedAttempts {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: OffsetDateTime,
    failures: u32,
}

impl FailedAttempts {
    /// `Err(seconds)`, how long until the address may try again, when it has used up its
    /// failures; `Ok` otherwise (and for requests whose address is unknown).
    pub fn check(&self, client: Option<IpAddr>, now: OffsetDateTime) -> Result<(), u64> {
        let Some(client) = client.map(counted_as) else {
            return Ok(());
        };
        let Ok(windows) = self.windows.lock() else {
            return Ok(());
        };
        match windows.get(&client) {
            Some(window) if window.failures >= MAX_FAILURES && now < window.since + WINDOW => {
                let left = (window.since + WINDOW - now).whole_seconds();
                Err(u64::try_from(left).unwrap_or(0).max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt of `client`.
    pub fn failed(&self, client: Option<IpAddr>, now: OffsetDateTime) {
        let Some(client) = client.map(counted_as) else {
            return;
        };
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if !windows.contains_key(&client) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, window| now < window.since + WINDOW);
            if windows.len() >= MAX_TRACKED
                && let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, window)| window.since)
                    .map(|(address, _)| *address)
            {
                windows.remove(&oldest);
            }
        }
        let window = windows.entry(client).or_insert(Window {
            since: now,
            failures: 0,
        });
        if now >= window.since + WINDOW {
            *window = Window {
                since: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// How many addresses are remembered.
    pub fn tracked(&self) -> usize {
        self.windows.lock().map_or(0, |windows| windows.len())
    }
}

/// The address a client is counted as: IPv4 (also when mapped into IPv6), or an IPv6 /64.
fn counted_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// The TCP peer's address of a request, when it came through [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        Self(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(seconds)
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let attempts = FailedAttempts::default();
        let client = Some("192.0.2.7".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert_eq!(attempts.check(client, at(10)), Ok(()));
            attempts.failed(client, at(10));
        }
        assert_eq!(attempts.check(client, at(30)), Err(40));
        let other = Some(IpAddr::V4([192, 0, 2, 8].into()));
        assert_eq!(attempts.check(other, at(30)), Ok(()));
        assert_eq!(attempts.check(client, at(70)), Ok(()));
        attempts.failed(client, at(70));
        assert_eq!(attempts.check(client, at(71)), Ok(()), "a new window");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix_and_mapped_ipv4_as_ipv4() {
        let attempts = FailedAttempts::default();
        for host in 0..MAX_FAILURES {
            let address: Ipv6Addr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
            attempts.failed(Some(IpAddr::V6(address)), at(0));
        }
        let same_prefix = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!(attempts.check(Some(same_prefix), at(1)).is_err());
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(counted_as(mapped), IpAddr::V4([192, 0, 2, 1].into()));
    }

    #[test]
    fn at_most_max_tracked_addresses_are_remembered_the_oldest_forgotten_first() {
        let attempts = FailedAttempts::default();
        let address = |n: usize| {
            let n = u32::try_from(n).unwrap();
            Some(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
        };
        for _ in 0..MAX_FAILURES {
            attempts.failed(address(0), at(0));
        }
        for n in 1..MAX_TRACKED + 5 {
            attempts.failed(address(n), at(1));
        }
        assert_eq!(attempts.tracked(), MAX_TRACKED);
        assert_eq!(
            attempts.check(address(0), at(2)),
            Ok(()),
            "the oldest window was forgotten"
        );
    }
}

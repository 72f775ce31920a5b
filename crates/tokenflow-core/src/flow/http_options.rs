//! The `retry` and `paginate` inputs of `http_connector` (docs/connectors.md, "Retries" and
//! "Pagination"): small objects read the same way when the flow is loaded (a constant is checked
//! then) and when the action runs. Every field has a documented bound; messages name fields.
//!
//! ```yaml
//! retry: { attempts: 4, backoff_ms: 500, on_status: [429, 503], retry_non_idempotent: false }
//! paginate: { next: odata, items: "$.value", max_pages: 50 }
//! paginate: { next: link }
//! paginate: { next: "$.paging.next", items: "$.data", allowed_origins: ["https://cdn.example"] }
//! ```

use serde_json::{Map, Value};
use url::Url;

use super::expr::check_bounds;

/// Most requests one page may take with `retry` (the first one included).
pub const MAX_ATTEMPTS: u32 = 10;
/// `retry.attempts` when absent.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// `retry.backoff_ms` when absent: the first wait is up to this long.
pub const DEFAULT_BACKOFF_MS: u64 = 500;
/// The largest `retry.backoff_ms`.
pub const MAX_BACKOFF_MS: u64 = 60_000;
/// No computed backoff wait is longer than this (30 s), however many attempts came before.
pub const BACKOFF_CAP_MS: u64 = 30_000;
/// The longest `Retry-After` honoured (120 s). A server asking for a longer wait gets no retry:
/// its response goes to the flow as it is, with a warning, so a server cannot park a run.
pub const MAX_RETRY_AFTER_MS: u64 = 120_000;
/// `retry.on_status` when absent.
pub const DEFAULT_RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// `paginate.max_pages` when absent.
pub const DEFAULT_MAX_PAGES: u32 = 100;
/// The largest `paginate.max_pages`.
pub const MAX_PAGES: u32 = 1_000;
/// Most `paginate.allowed_origins`.
pub const MAX_ALLOWED_ORIGINS: usize = 16;

/// An OAuth server's `reauth_on_status` when absent: a 401 means the token was refused
/// (RFC 6750 §3.1).
pub const DEFAULT_REAUTH_ON_STATUS: [u16; 1] = [401];

/// Checks an OAuth server's `reauth_on_status`: 4xx statuses only (a 5xx is the API's own
/// trouble, which a new token cannot mend; `retry` is for those), at most 16.
pub fn reauth_on_status(list: Option<Vec<u16>>) -> Result<Vec<u16>, String> {
    let Some(mut list) = list else {
        return Ok(DEFAULT_REAUTH_ON_STATUS.to_vec());
    };
    list.sort_unstable();
    list.dedup();
    if list.is_empty() || list.len() > 16 || list.iter().any(|c| !(400..=499).contains(c)) {
        return Err(
            "must be a non-empty list of at most 16 HTTP 4xx statuses, e.g. [401, 403]".to_owned(),
        );
    }
    Ok(list)
}

/// A checked `retry` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Requests at most, the first one included (1 ..= [`MAX_ATTEMPTS`]).
    pub attempts: u32,
    /// The base of the exponential backoff (0 ..= [`MAX_BACKOFF_MS`]).
    pub backoff_ms: u64,
    /// HTTP statuses answered by another attempt (each 400 ..= 599).
    pub on_status: Vec<u16>,
    /// Also retry POST and PATCH, which are not idempotent (RFC 9110 §9.2.2).
    pub retry_non_idempotent: bool,
}

impl Retry {
    /// Reads `retry`: an object with the documented fields, each optional.
    pub fn from_value(value: &Value) -> Result<Retry, String> {
        let object = object(value, "retry", &RETRY_FIELDS)?;
        let attempts = match object.get("attempts") {
            None => DEFAULT_ATTEMPTS,
            Some(v) => whole(v, "retry.attempts", 1, u64::from(MAX_ATTEMPTS))? as u32,
        };
        let backoff_ms = match object.get("backoff_ms") {
            None => DEFAULT_BACKOFF_MS,
            Some(v) => whole(v, "retry.backoff_ms", 0, MAX_BACKOFF_MS)?,
        };
        let on_status = match object.get("on_status") {
            None => DEFAULT_RETRY_STATUSES.to_vec(),
            Some(v) => statuses(v, "retry.on_status", 400, 599)?,
        };
        let retry_non_idempotent = match object.get("retry_non_idempotent") {
            None => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err("retry.retry_non_idempotent must be true or false".to_owned()),
        };
        Ok(Retry {
            attempts,
            backoff_ms,
            on_status,
            retry_non_idempotent,
        })
    }
}

const RETRY_FIELDS: [&str; 4] = [
    "attempts",
    "backoff_ms",
    "on_status",
    "retry_non_idempotent",
];
const PAGINATE_FIELDS: [&str; 4] = ["next", "items", "max_pages", "allowed_origins"];

/// Where the next page's URL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// The body's `@odata.nextLink` (Microsoft Graph, OData v4 §11.2.5.7).
    Odata,
    /// The `Link` header's `rel="next"` target (RFC 8288).
    Link,
    /// An RFC 9535 JSONPath to the URL in the body.
    Path(String),
}

/// A checked `paginate` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paginate {
    pub next: NextPage,
    /// JSONPath to the page's items; `$.value` for `odata`, the body itself (`$`) otherwise.
    pub items: String,
    /// Pages at most (1 ..= [`MAX_PAGES`]).
    pub max_pages: u32,
    /// Origins besides the first request's that next links may lead to (and receive the
    /// credentials); `scheme://host[:port]`.
    pub allowed_origins: Vec<Url>,
}

impl Paginate {
    /// Reads `paginate`; `next` is required, the other fields optional. The JSONPaths are
    /// checked for size here and compiled by the connector.
    pub fn from_value(value: &Value) -> Result<Paginate, String> {
        let object = object(value, "paginate", &PAGINATE_FIELDS)?;
        let next = match object.get("next") {
            None => return Err("paginate.next is missing (odata, link or a JSONPath)".to_owned()),
            Some(Value::String(next)) => match next.trim() {
                "odata" => NextPage::Odata,
                "link" => NextPage::Link,
                path if path.starts_with('$') => {
                    check_bounds("paginate.next", path, false)?;
                    NextPage::Path(path.to_owned())
                }
                _ => {
                    return Err(
                        "paginate.next must be odata, link or a JSONPath starting with `$`"
                            .to_owned(),
                    );
                }
            },
            Some(_) => return Err("paginate.next must be a string".to_owned()),
        };
        let items = match object.get("items") {
            None if next == NextPage::Odata => "$.value".to_owned(),
            None => "$".to_owned(),
            Some(Value::String(path)) if path.trim().starts_with('$') => {
                check_bounds("paginate.items", path, false)?;
                path.trim().to_owned()
            }
            Some(_) => {
                return Err("paginate.items must be a JSONPath starting with `$`".to_owned());
            }
        };
        let max_pages = match object.get("max_pages") {
            None => DEFAULT_MAX_PAGES,
            Some(v) => whole(v, "paginate.max_pages", 1, u64::from(MAX_PAGES))? as u32,
        };
        let allowed_origins = match object.get("allowed_origins") {
            None => Vec::new(),
            Some(Value::Array(list)) if list.len() <= MAX_ALLOWED_ORIGINS => {
                list.iter().map(origin).collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(format!(
                    "paginate.allowed_origins must be a list of at most {MAX_ALLOWED_ORIGINS} origins"
                ));
            }
        };
        Ok(Paginate {
            next,
            items,
            max_pages,
            allowed_origins,
        })
    }
}

/// One entry of `allowed_origins`: an `http(s)` URL with nothing but scheme, host and port.
fn origin(value: &Value) -> Result<Url, String> {
    let problem = || {
        "paginate.allowed_origins holds an entry that is not an origin such as \"https://api.example\""
            .to_owned()
    };
    let text = value.as_str().ok_or_else(problem)?;
    let url = Url::parse(text).map_err(|_| problem())?;
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(problem());
    }
    Ok(url)
}

/// The object, with no field outside `known`.
fn object<'a>(
    value: &'a Value,
    what: &str,
    known: &[&str],
) -> Result<&'a Map<String, Value>, String> {
    let Some(object) = value.as_object() else {
        return Err(format!(
            "{what} must be an object with some of: {}",
            known.join(", ")
        ));
    };
    if let Some(unknown) = object.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(format!(
            "unknown field `{unknown}` in {what} (known: {})",
            known.join(", ")
        ));
    }
    Ok(object)
}

/// A whole number in `min ..= max`; text holding one counts (a value from a variable).
fn whole(value: &Value, what: &str, min: u64, max: u64) -> Result<u64, String> {
    let number = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    };
    match number {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{what} must be a whole number from {min} to {max}")),
    }
}

/// A non-empty list of HTTP statuses, each in `min ..= max`.
pub fn statuses(value: &Value, what: &str, min: u16, max: u16) -> Result<Vec<u16>, String> {
    let problem =
        || format!("{what} must be a non-empty list of HTTP statuses from {min} to {max}");
    let list = value.as_array().filter(|l| !l.is_empty() && l.len() <= 64);
    let list = list.ok_or_else(problem)?;
    list.iter()
        .map(|v| {
            v.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(problem)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn retry_defaults_and_bounds() {
        let retry = Retry::from_value(&json!({})).unwrap();
        assert_eq!(retry.attempts, DEFAULT_ATTEMPTS);
        assert_eq!(retry.on_status, DEFAULT_RETRY_STATUSES);
        assert!(!retry.retry_non_idempotent);
        assert_eq!(
            Retry::from_value(&json!({"attempts": 11})).unwrap_err(),
            "retry.attempts must be a whole number from 1 to 10"
        );
        assert!(Retry::from_value(&json!({"attempts": 0})).is_err());
        assert!(Retry::from_value(&json!({"on_status": [200]})).is_err());
        assert!(Retry::from_value(&json!({"on_status": []})).is_err());
        assert!(Retry::from_value(&json!({"backoff_ms": 60_001})).is_err());
        assert!(Retry::from_value(&json!({"tries": 2})).is_err());
        assert!(Retry::from_value(&json!(3)).is_err());
        assert_eq!(
            Retry::from_value(&json!({"attempts": "4"}))
                .unwrap()
                .attempts,
            4
        );
    }

    #[test]
    fn reauth_on_status_takes_4xx_statuses_only() {
        assert_eq!(reauth_on_status(None).unwrap(), [401]);
        assert_eq!(
            reauth_on_status(Some(vec![403, 401, 403])).unwrap(),
            [401, 403]
        );
        assert!(reauth_on_status(Some(vec![401, 503])).is_err());
        assert!(reauth_on_status(Some(vec![])).is_err());
    }

    #[test]
    fn paginate_kinds_defaults_and_bounds() {
        let odata = Paginate::from_value(&json!({"next": "odata"})).unwrap();
        assert_eq!(odata.items, "$.value");
        assert_eq!(odata.max_pages, DEFAULT_MAX_PAGES);
        assert_eq!(
            Paginate::from_value(&json!({"next": "link"}))
                .unwrap()
                .items,
            "$"
        );
        assert_eq!(
            Paginate::from_value(&json!({"next": "$.next"}))
                .unwrap()
                .next,
            NextPage::Path("$.next".into())
        );
        assert!(Paginate::from_value(&json!({})).is_err());
        assert!(Paginate::from_value(&json!({"next": "cursor"})).is_err());
        assert!(Paginate::from_value(&json!({"next": "odata", "max_pages": 1001})).is_err());
        assert!(Paginate::from_value(&json!({"next": "odata", "items": "value"})).is_err());
        assert!(
            Paginate::from_value(
                &json!({"next": "odata", "allowed_origins": ["https://a.example/path"]})
            )
            .is_err()
        );
        assert_eq!(
            Paginate::from_value(
                &json!({"next": "odata", "allowed_origins": ["https://a.example"]})
            )
            .unwrap()
            .allowed_origins
            .len(),
            1
        );
    }
}

//! The pieces of `http_connector`'s `paginate` input (docs/connectors.md, "Pagination") that
//! look at one page: its items, and where the next page is. The engine runs the loop, because
//! every page is sent with the action's credentials and their renewal.
//!
//! Key design decisions:
//! - **Next links stay on the first request's origin** unless `allowed_origins` names another:
//!   every page carries the action's credentials (a bearer token, an API key), and a next link
//!   is data from the server, so a compromised or confused API could otherwise send tokenflow —
//!   and the token — to any host.
//! - **Items**: the `items` JSONPath (RFC 9535) selects the page's items; when it matches one
//!   array, that array's elements are the items (`$.value`), otherwise every match is one item
//!   (`$.data[*]`). A page whose path matches nothing has no items.

use serde_json::Value;
use serde_json_path::JsonPath;
use tokenflow_core::flow::http_options::{NextPage, Paginate};
use url::Url;

/// The items of one page's body.
pub fn page_items(body: &Value, items: &str) -> Result<Vec<Value>, String> {
    let path =
        JsonPath::parse(items).map_err(|err| format!("paginate.items is not a JSONPath: {err}"))?;
    let nodes = path.query(body).all();
    Ok(match nodes.as_slice() {
        [Value::Array(list)] => list.clone(),
        _ => nodes.into_iter().cloned().collect(),
    })
}

/// The next page's URL, if the page names one; relative links are resolved against `current`.
pub fn next_url(
    paginate: &Paginate,
    current: &Url,
    headers: Option<&Value>,
    body: &Value,
) -> Result<Option<Url>, String> {
    let link = match &paginate.next {
        NextPage::Odata => body
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .map(str::to_owned),
        NextPage::Link => headers.and_then(link_next),
        NextPage::Path(path) => {
            let path = JsonPath::parse(path)
                .map_err(|err| format!("paginate.next is not a JSONPath: {err}"))?;
            match path.query(body).at_most_one() {
                Ok(Some(Value::String(url))) => Some(url.clone()),
                Ok(None | Some(Value::Null)) => None,
                Ok(Some(_)) => {
                    return Err("paginate.next matched a value that is not a URL".to_owned());
                }
                Err(_) => return Err("paginate.next matched several values".to_owned()),
            }
        }
    };
    let Some(link) = link.filter(|link| !link.trim().is_empty()) else {
        return Ok(None);
    };
    // The link's text is not shown: it may carry a skip token or a key.
    let url = current
        .join(link.trim())
        .map_err(|err| format!("the next page's link is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the next page's link is not an http or https URL".to_owned());
    }
    Ok(Some(url))
}

/// Whether `next` may receive the action's credentials: the first request's origin, or one of
/// `allowed`.
pub fn origin_allowed(first: &Url, next: &Url, allowed: &[Url]) -> bool {
    next.origin() == first.origin() || allowed.iter().any(|a| a.origin() == next.origin())
}

/// The `rel="next"` target of the `Link` response headers (RFC 8288 §3), from the outputs'
/// list of `{Key, Value}`.
fn link_next(headers: &Value) -> Option<String> {
    headers
        .as_array()?
        .iter()
        .filter(|h| h.get("Key").and_then(Value::as_str) == Some("link"))
        .filter_map(|h| h.get("Value").and_then(Value::as_str))
        .find_map(next_in_link_value)
}

/// One `Link` value: `<uri>; rel="next"; title="…", <uri2>; rel=prev`. The relation may be a
/// space-separated list (RFC 8288 §3.3); names compare case-insensitively.
fn next_in_link_value(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        rest = &rest[end + 1..];
        // The parameters run to the next `<` outside a quoted string.
        let mut params_end = rest.len();
        let mut quoted = false;
        for (i, c) in rest.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '<' if !quoted => {
                    params_end = i;
                    break;
                }
                _ => {}
            }
        }
        // Without the `,` that separates this link from the next one.
        let params = rest[..params_end].trim_end().trim_end_matches(',');
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn link_headers_give_the_next_target() {
        assert_eq!(
            next_in_link_value(
                r#"<https://a.example/p?page=1>; rel="prev", <https://a.example/p?page=3>; rel="next""#
            ),
            Some("https://a.example/p?page=3".to_owned())
        );
        assert_eq!(
            next_in_link_value(r#"</p2>; title="a, <b>"; rel="last NEXT""#),
            Some("/p2".to_owned())
        );
        assert_eq!(
            next_in_link_value(r#"</p2>; rel="next", </p9>; rel="last""#),
            Some("/p2".to_owned())
        );
        assert_eq!(
            next_in_link_value(r#"<https://a.example/>; rel=prev"#),
            None
        );
        assert_eq!(next_in_link_value("garbage"), None);
    }

    #[test]
    fn items_are_one_arrays_elements_or_every_match() {
        let body = json!({"value": [1, 2], "data": [{"id": 1}, {"id": 2}]});
        assert_eq!(
            page_items(&body, "$.value").unwrap(),
            vec![json!(1), json!(2)]
        );
        assert_eq!(
            page_items(&body, "$.data[*].id").unwrap(),
            vec![json!(1), json!(2)]
        );
        assert!(page_items(&body, "$.missing").unwrap().is_empty());
        assert!(page_items(&body, "value").is_err());
    }

    #[test]
    fn relative_links_resolve_and_origins_are_compared() {
        let paginate = Paginate::from_value(&json!({"next": "$.next"})).unwrap();
        let current = Url::parse("https://api.example/v1/items?page=1").unwrap();
        let next = next_url(&paginate, &current, None, &json!({"next": "?page=2"}))
            .unwrap()
            .unwrap();
        assert_eq!(next.as_str(), "https://api.example/v1/items?page=2");
        assert!(origin_allowed(&current, &next, &[]));
        let other = Url::parse("https://evil.example/x").unwrap();
        assert!(!origin_allowed(&current, &other, &[]));
        let allowed = [Url::parse("https://evil.example").unwrap()];
        assert!(origin_allowed(&current, &other, &allowed));
        assert_eq!(
            next_url(&paginate, &current, None, &json!({"next": null})).unwrap(),
            None
        );
        assert!(next_url(&paginate, &current, None, &json!({"next": 3})).is_err());
    }
}

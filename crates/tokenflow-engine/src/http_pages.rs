//! `http_connector` with `paginate` (docs/connectors.md, "Pagination"): the first request, then
//! each next page with GET, every page with the action's credentials (renewed as for one call,
//! [`crate::http::Session`]), until the API names no next page or `max_pages` pages were read.
//!
//! - `content` is one JSON array: every page's items, in order; `http_status_code` and
//!   `headers` are the last page's; `pages` counts the pages read.
//! - The items together are bounded like one response body ([`MAX_CONTENT_BYTES`] as JSON text);
//!   past that the action fails with `response_too_large` rather than returning a cut list.
//! - A page that does not answer 2xx ends the action with that page's response as it is (flows
//!   route on `http_status_code`); the items of the pages before it are not returned.
//! - A next link on another origin is not followed (`cross_origin_next_link`) unless
//!   `allowed_origins` names it: the credentials go with every page.

use serde_json::Value;
use tokenflow_connectors::http_action::{HttpInput, HttpOutputs, MAX_CONTENT_BYTES};
use tokenflow_connectors::http_paging::{next_url, origin_allowed, page_items};
use tokenflow_connectors::status::HttpStatus;
use tokenflow_core::flow::http_options::Paginate;
use url::Url;

use crate::context::ActionContext;
use crate::http::Session;
use crate::outcome::Outcome;

/// Fetches every page and returns the action's outcome.
pub(crate) async fn fetch(
    engine: &ActionContext,
    mut session: Session,
    mut input: HttpInput,
    paginate: &Paginate,
) -> Outcome {
    // The connector checked the URL before anything was sent.
    let Some(first) = input.url.as_deref().and_then(|url| Url::parse(url).ok()) else {
        let out = HttpOutputs::failure(HttpStatus::InvalidUrl, "invalid_url", "no URL was given");
        return session.finish(out, None);
    };
    let mut current = first.clone();
    let mut items: Vec<Value> = Vec::new();
    let mut size = 2usize; // `[]`
    let mut pages = 0u32;
    loop {
        let mut out = session.send(engine, &mut input).await;
        pages += 1;
        let answered = out.status == HttpStatus::Successful
            && out
                .http_status_code
                .is_some_and(|c| (200..300).contains(&c));
        if !answered {
            if pages > 1 {
                session.warnings.push(format!(
                    "page {pages} did not answer 2xx; the items of the {} page(s) before it are not returned",
                    pages - 1
                ));
            }
            return session.finish(out, Some(pages));
        }
        let body = match serde_json::from_str::<Value>(out.content.as_deref().unwrap_or("")) {
            Ok(body) => body,
            Err(err) => {
                let description = format!("page {pages}'s body is not JSON: {err}");
                return fail(session, out, "invalid_page", description, pages);
            }
        };
        let found = match page_items(&body, &paginate.items) {
            Ok(found) => found,
            Err(description) => return fail(session, out, "invalid_paginate", description, pages),
        };
        for item in found {
            size += serde_json::to_string(&item).map_or(0, |text| text.len()) + 1;
            if size > MAX_CONTENT_BYTES {
                let description = format!(
                    "the items of {pages} page(s) are larger than {MAX_CONTENT_BYTES} bytes together"
                );
                return fail(session, out, "response_too_large", description, pages);
            }
            items.push(item);
        }
        let next = match next_url(paginate, &current, out.headers.as_ref(), &body) {
            Ok(next) => next,
            Err(description) => {
                let description = format!("page {pages}: {description}");
                return fail(session, out, "invalid_page", description, pages);
            }
        };
        let Some(next) = next else {
            out.content = Some(Value::Array(items).to_string());
            return session.finish(out, Some(pages));
        };
        if pages >= paginate.max_pages {
            session.warnings.push(format!(
                "paginate.max_pages ({}) reached; the API has more pages",
                paginate.max_pages
            ));
            out.content = Some(Value::Array(items).to_string());
            return session.finish(out, Some(pages));
        }
        if !origin_allowed(&first, &next, &paginate.allowed_origins) {
            let description = format!(
                "page {pages}'s next link leads to {}, another origin than the first request's; it was not followed, as the credentials would go there (name the origin in paginate.allowed_origins to allow it)",
                next.origin().ascii_serialization()
            );
            return fail(session, out, "cross_origin_next_link", description, pages);
        }
        input.url = Some(next.to_string());
        input.content = None;
        current = next;
    }
}

/// Ends the action with a failure after page `pages` answered: its status and headers are kept,
/// the body is not.
fn fail(
    session: Session,
    out: HttpOutputs,
    error: &str,
    description: String,
    pages: u32,
) -> Outcome {
    let mut failure = HttpOutputs::failure(HttpStatus::Unknown, error, description);
    failure.http_status_code = out.http_status_code;
    failure.headers = out.headers;
    failure.warnings = out.warnings;
    session.finish(failure, Some(pages))
}

//! `http_connector` with `paginate` (docs/connectors.md, "Pagination"): the first request, then
//! each next page with GET, every page with the action's credentials (renewed as for one call,
//! in the engine's `http` module), until the API names no next page or `max_pages` pages were read.
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

/// What to do after a page.
pub(crate) enum PageStep {
    /// `input` now names the next page: send it.
    Next,
    /// The action's last outputs.
    Done(HttpOutputs),
}

/// The pages read so far and their items.
pub(crate) struct Pager<'a> {
    paginate: &'a Paginate,
    first: Url,
    current: Url,
    items: Vec<Value>,
    /// The items' size as one JSON array text.
    size: usize,
    pub(crate) pages: u32,
    pub(crate) warnings: Vec<String>,
}

impl<'a> Pager<'a> {
    /// For a first request to `first` (checked by the connector).
    pub(crate) fn new(first: Url, paginate: &'a Paginate) -> Self {
        Self {
            paginate,
            current: first.clone(),
            first,
            items: Vec::new(),
            size: 2, // `[]`
            pages: 0,
            warnings: Vec::new(),
        }
    }

    /// Takes one page's outputs; on [`PageStep::Next`], `input` holds the next page's URL.
    pub(crate) fn page(&mut self, mut out: HttpOutputs, input: &mut HttpInput) -> PageStep {
        self.pages += 1;
        let pages = self.pages;
        let answered = out.status == HttpStatus::Successful
            && out
                .http_status_code
                .is_some_and(|c| (200..300).contains(&c));
        if !answered {
            if pages > 1 {
                self.warnings.push(format!(
                    "page {pages} did not answer 2xx; the items of the {} page(s) before it are not returned",
                    pages - 1
                ));
            }
            return PageStep::Done(out);
        }
        let body = match serde_json::from_str::<Value>(out.content.as_deref().unwrap_or("")) {
            Ok(body) => body,
            Err(err) => {
                let description = format!("page {pages}'s body is not JSON: {err}");
                return fail(out, "invalid_page", description);
            }
        };
        let found = match page_items(&body, &self.paginate.items) {
            Ok(found) => found,
            Err(description) => return fail(out, "invalid_paginate", description),
        };
        for item in found {
            self.size += serde_json::to_string(&item).map_or(0, |text| text.len()) + 1;
            if self.size > MAX_CONTENT_BYTES {
                let description = format!(
                    "the items of {pages} page(s) are larger than {MAX_CONTENT_BYTES} bytes together"
                );
                return fail(out, "response_too_large", description);
            }
            self.items.push(item);
        }
        let next = match next_url(self.paginate, &self.current, out.headers.as_ref(), &body) {
            Ok(next) => next,
            Err(description) => {
                let description = format!("page {pages}: {description}");
                return fail(out, "invalid_page", description);
            }
        };
        let Some(next) = next else {
            out.content = Some(Value::Array(std::mem::take(&mut self.items)).to_string());
            return PageStep::Done(out);
        };
        if pages >= self.paginate.max_pages {
            self.warnings.push(format!(
                "paginate.max_pages ({}) reached; the API has more pages",
                self.paginate.max_pages
            ));
            out.content = Some(Value::Array(std::mem::take(&mut self.items)).to_string());
            return PageStep::Done(out);
        }
        if !origin_allowed(&self.first, &next, &self.paginate.allowed_origins) {
            let description = format!(
                "page {pages}'s next link leads to {}, another origin than the first request's; it was not followed, as the credentials would go there (name the origin in paginate.allowed_origins to allow it)",
                next.origin().ascii_serialization()
            );
            return fail(out, "cross_origin_next_link", description);
        }
        input.url = Some(next.to_string());
        input.content = None;
        self.current = next;
        PageStep::Next
    }
}

/// A failure after a page answered: its status and headers are kept, the body is not.
fn fail(out: HttpOutputs, error: &str, description: String) -> PageStep {
    let mut failure = HttpOutputs::failure(HttpStatus::Unknown, error, description);
    failure.http_status_code = out.http_status_code;
    failure.headers = out.headers;
    failure.warnings = out.warnings;
    PageStep::Done(failure)
}

//! HTML outside the UI's templates: small message pages (nothing loaded from elsewhere) for people
//! who land on the server, such as the outcome of `/oauth-callback`, with all dynamic text
//! escaped; and the security headers that every HTML response of the server carries, whichever
//! handler made it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// The Content-Security-Policy of every HTML response: only the server's own stylesheet, script
/// and images; no framing (clickjacking); forms post to the server itself, or onwards to an
/// identity provider.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self' https: http:";

/// Adds the security headers to a response (a layer over the whole application, so error pages
/// made by extractors or other layers get them too): `nosniff` on every response; on HTML the
/// Content-Security-Policy, `Referrer-Policy: no-referrer` (a page's URL may carry a run id or a
/// CSRF token) and, unless the handler chose otherwise, `Cache-Control: no-store`.
pub async fn security_headers(mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("text/html")
        });
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// A page with a title, a message and an optional link.
pub fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let link = link
        .map(|(href, label)| {
            format!(
                "<p><a id=\"run-link\" href=\"{}\">{}</a></p>",
                escape(href),
                escape(label)
            )
        })
        .unwrap_or_default();
    // The UI's stylesheet rather than inline styles, which the Content-Security-Policy refuses.
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · tokenflow</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head><body><main class=\"narrow\">\
         <h1 id=\"title\">{title}</h1><p id=\"message\">{text}</p>{link}</main></body></html>",
        title = escape(title),
        text = escape(text),
    );
    (status, [("cache-control", "no-store")], Html(html)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_text_is_escaped() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }
}

//! Property and fuzz test of `/oauth-callback` over real HTTP (docs/testing.md): whatever query,
//! body and content type arrive, the answer is a page with 200, 400 or 415 — never a 500 —
//! (or a refusal of an oversized request: 413, 414, 431) that neither shows the authorization code nor reflects markup unescaped.

use proptest::prelude::*;
use tokenflow_testkit::fuzz::{callback_text, check, nasty_string, secret};

use crate::support::{Options, spawn_app};

const MARKUP: &str = "<script>alert(1)</script>";

#[test]
fn the_callback_answers_any_request_with_a_page_that_shows_no_code() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app(Options::default()));
    let content_type = prop_oneof![
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("application/x-www-form-urlencoded; charset=utf-8".to_owned()),
        Just("application/json".to_owned()),
        "[ -~]{0,40}",
    ];
    let input = secret().prop_flat_map(move |code| {
        (
            any::<bool>(),
            callback_text(
                code.clone(),
                prop_oneof![Just(MARKUP.to_owned()), nasty_string()],
            ),
            content_type.clone(),
            Just(code),
        )
    });
    check(
        "callback_endpoint",
        input,
        |(post, text, content_type, code)| {
            let (status, page) = runtime.block_on(async {
                let url = format!("{}/oauth-callback", app.url);
                let request = if post {
                    app.http
                        .post(&url)
                        .header("content-type", content_type)
                        .body(text)
                } else {
                    // Not percent-encoded again: the query goes as generated, mutations included.
                    let query: String = text
                        .chars()
                        .filter(|c| !c.is_whitespace() && *c != '#')
                        .collect();
                    app.http.get(format!("{url}?{query}"))
                };
                let response = match request.send().await {
                    Ok(response) => response,
                    // A request the HTTP client cannot build (a URI over 64 KiB) never leaves.
                    Err(err) if err.is_builder() => return (0, String::new()),
                    Err(err) => panic!("{err}"),
                };
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            });
            if status == 0 {
                return Ok(());
            }
            prop_assert!(
                matches!(status, 200 | 400 | 413 | 414 | 415 | 431),
                "HTTP {status}: {page:.300}"
            );
            prop_assert!(!page.contains(&code), "the page shows the code");
            prop_assert!(!page.contains(MARKUP), "the page reflects markup unescaped");
            Ok(())
        },
    );
}

//! Editing flows over plain HTTP: the validation endpoint, versions and their diff, and the
//! editor's forms without script (docs/flows.md, "Editing flows in the browser").

use reqwest::Method;
use serde_json::Value;

use crate::support::{API_KEY, Options, PURE_FLOW, TestApp, spawn_app};
use crate::ui::{client, get_page, post_form, signed_in};

pub(crate) async fn pure_app() -> TestApp {
    spawn_app(Options {
        flows: vec![("pure.yaml", PURE_FLOW.to_owned())],
        ..Options::default()
    })
    .await
}

async fn validate(app: &TestApp, query: &str, yaml: &str) -> (u16, Value) {
    let response = app
        .request(Method::POST, &format!("/api/flows/validate{query}"))
        .header("content-type", "application/yaml")
        .body(yaml.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// (line, column, message) of every problem.
fn problems(body: &Value, field: &str) -> Vec<(u64, u64, String)> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["column"].as_u64().unwrap(),
                p["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A flow's stored versions, newest first.
pub(crate) async fn versions(app: &TestApp, id: &str) -> Vec<i64> {
    let (status, list) = app.get_json(&format!("/api/flows/{id}/versions")).await;
    assert_eq!(status, 200, "{list}");
    list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect()
}

/// Three problems at three places of one file, each told with its line and column.
const THREE_PROBLEMS: &str = r#"id: pure
variables:
  a: {}
actions:
  read:
    type: extract_jsn
  other:
    type: extract_json
    input: { json: { var: nope }, path: "$.a" }
    output: { value: a }
steps:
  - { from: start, to: other }
  - { from: other, to: nowhere }
"#;

#[tokio::test]
async fn validating_a_flow_answers_every_problem_with_its_line_and_column_and_stores_nothing() {
    let app = pure_app().await;
    let (status, body) = validate(&app, "?id=pure", THREE_PROBLEMS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false);
    assert!(body.get("diagram_svg").is_none(), "{body}");
    let found = problems(&body, "problems");
    let at = |line: u64, column: u64, text: &str| {
        assert!(
            found
                .iter()
                .any(|(l, c, m)| (*l, *c) == (line, column) && m.contains(text)),
            "no `{text}` at {line}:{column} in {found:?}"
        );
    };
    at(6, 11, "extract_jsn");
    at(9, 20, "nope");
    at(13, 24, "nowhere");

    // A YAML syntax error: the parser stops there, and says where.
    let (_, body) = validate(&app, "", "id: pure\nactions: [\n  read\n").await;
    let found = problems(&body, "problems");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0 >= 2, "{found:?}");

    // Another id than the one asked for is a problem; the reserved ids are refused.
    let (_, body) = validate(&app, "?id=other", PURE_FLOW).await;
    assert_eq!(body["valid"], false);
    assert!(
        problems(&body, "problems")[0]
            .2
            .contains("differs from `other`")
    );
    let reserved = PURE_FLOW.replacen("id: pure", "id: new", 1);
    let (_, body) = validate(&app, "", &reserved).await;
    assert_eq!(
        problems(&body, "problems"),
        vec![(
            1,
            5,
            "the flow id cannot be `new` (`/flows/new` is the flow editor's own address)"
                .to_owned()
        )]
    );

    let put_reserved = app
        .request(Method::PUT, "/api/flows/new")
        .header("content-type", "application/yaml")
        .body(reserved)
        .send()
        .await
        .unwrap();
    assert_eq!(put_reserved.status(), 400);

    // A valid flow: its diagram, and what only warns.
    let (status, body) = validate(&app, "?id=pure", PURE_FLOW).await;
    assert_eq!(
        (status, &body["valid"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    assert!(body["diagram_svg"].as_str().unwrap().starts_with("<svg"));
    let warns = "id: warns\nvariables:\n  t: {}\nactions:\n  token:\n    type: oauth_server_login\n    oauth_server: unknown-server\n    input: { scope: x }\n    output: { access_token: t }\nsteps:\n  - { from: start, to: token }\n  - { from: token, to: stop }\n";
    let (_, body) = validate(&app, "", warns).await;
    assert_eq!(body["valid"], true, "{body}");
    let warnings = problems(&body, "warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!((warnings[0].0, warnings[0].1), (7, 19), "{warnings:?}");

    assert_eq!(versions(&app, "pure").await, vec![1], "nothing was stored");
}

#[tokio::test]
async fn the_validation_endpoint_needs_an_api_key_yaml_and_at_most_a_mebibyte() {
    let app = pure_app().await;
    let without_key = client()
        .post(format!("{}/api/flows/validate", app.url))
        .header("content-type", "application/yaml")
        .body(PURE_FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(without_key.status(), 401);
    let wrong_key = client()
        .post(format!("{}/api/flows/validate", app.url))
        .bearer_auth(format!("{API_KEY}-not"))
        .header("content-type", "application/yaml")
        .body(PURE_FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    let json = app
        .request(Method::POST, "/api/flows/validate")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    // Just over the 1 MiB a flow may have: refused before it is parsed.
    let big = format!(
        "{PURE_FLOW}# {}\n",
        "x".repeat(tokenflow_core::flow::parse::MAX_FLOW_BYTES)
    );
    let (status, body) = validate(&app, "", &big).await;
    assert_eq!((status, &body["error"]), (413, &"payload_too_large".into()));
    // At the limit it is validated (and too large for a flow by one byte more of YAML).
    let padding = tokenflow_core::flow::parse::MAX_FLOW_BYTES - PURE_FLOW.len() - 3;
    let (status, body) =
        validate(&app, "", &format!("{PURE_FLOW}# {}\n", "x".repeat(padding))).await;
    assert_eq!(
        (status, &body["valid"]),
        (200, &Value::Bool(true)),
        "{}",
        body["problems"]
    );
}

#[tokio::test]
async fn versions_are_listed_newest_first_and_the_diff_shows_the_changed_line() {
    let app = pure_app().await;
    let changed = PURE_FLOW.replace(r#""{\"a\": 7}""#, r#""{\"a\": 8}""#);
    assert_ne!(changed, PURE_FLOW);
    let put = app
        .request(Method::PUT, "/api/flows/pure")
        .header("content-type", "application/yaml")
        .body(changed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    assert_eq!(versions(&app, "pure").await, vec![2, 1]);
    let (status, first) = app.get_json("/api/flows/pure/versions/1").await;
    assert_eq!((status, first["version"].as_i64()), (200, Some(1)));
    assert_eq!(first["yaml"], PURE_FLOW);

    let (status, diff) = app.get_json("/api/flows/pure/diff?from=1&to=2").await;
    assert_eq!(status, 200, "{diff}");
    let changed_lines: Vec<(&str, Value, Value, &str)> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["change"] != "same")
        .map(|l| {
            (
                l["change"].as_str().unwrap(),
                l["old_line"].clone(),
                l["new_line"].clone(),
                l["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changed_lines,
        vec![
            (
                "removed",
                3.into(),
                Value::Null,
                r#"  doc: { default: "{\"a\": 7}" }"#
            ),
            (
                "added",
                Value::Null,
                3.into(),
                r#"  doc: { default: "{\"a\": 8}" }"#
            ),
        ]
    );
    assert_eq!(
        diff["lines"].as_array().unwrap().len(),
        PURE_FLOW.lines().count() + 1
    );
    // Either order, and a version with itself.
    let (_, back) = app.get_json("/api/flows/pure/diff?from=2&to=1").await;
    assert_eq!(
        back["lines"][2]["text"],
        r#"  doc: { default: "{\"a\": 8}" }"#
    );
    let (_, same) = app.get_json("/api/flows/pure/diff?from=2&to=2").await;
    assert!(
        same["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["change"] == "same")
    );

    for (path, expected) in [
        ("/api/flows/pure/diff?from=1&to=3", 404),
        ("/api/flows/pure/diff?from=1", 400),
        ("/api/flows/pure/versions/9", 404),
        ("/api/flows/nope/versions", 404),
    ] {
        assert_eq!(app.get_json(path).await.0, expected, "{path}");
    }
    let without_key = client()
        .get(format!("{}/api/flows/pure/diff?from=1&to=2", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(without_key.status(), 401);
}

/// The editor's three ways to change or probe something, each refused without the session's
/// token, and nothing stored.
#[tokio::test]
async fn the_editor_refuses_a_missing_or_forged_csrf_token_and_stores_nothing() {
    let app = pure_app().await;
    let (session, csrf) = signed_in(&app).await;
    let (_, other_sessions_csrf) = signed_in(&app).await;
    let edited = PURE_FLOW.replace("$.a", "$['a']");
    let created = PURE_FLOW.replacen("id: pure", "id: created", 1);
    for token in [
        None,
        Some("forged"),
        Some(""),
        Some(other_sessions_csrf.as_str()),
    ] {
        for (path, yaml) in [("/flows/pure/edit", &edited), ("/flows/new", &created)] {
            let mut form = vec![("yaml", yaml.as_str())];
            if let Some(token) = token {
                form.push(("csrf", token));
            }
            let (status, html) = post_form(&app, &session, path, &form).await;
            assert_eq!(status, 403, "{path} with {token:?}: {html}");
        }
        let mut request = client()
            .post(format!("{}/flows/validate?id=pure", app.url))
            .header("cookie", &session)
            .body(PURE_FLOW);
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        assert_eq!(request.send().await.unwrap().status(), 403, "{token:?}");
    }
    assert_eq!(versions(&app, "pure").await, vec![1]);
    assert_eq!(app.get_json("/api/flows/created").await.0, 404);

    // Signed out, the validation is not answered either.
    let signed_out = client()
        .post(format!("{}/flows/validate", app.url))
        .header("x-csrf-token", &csrf)
        .body(PURE_FLOW)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    // With the token it answers as the API does.
    let answer: Value = client()
        .post(format!("{}/flows/validate?id=pure", app.url))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .body(THREE_PROBLEMS)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_, api) = validate(&app, "?id=pure", THREE_PROBLEMS).await;
    assert_eq!(answer, api);
}

#[tokio::test]
async fn without_script_an_invalid_edit_comes_back_with_its_problems_at_their_lines_and_saves_nothing()
 {
    let app = pure_app().await;
    let (session, csrf) = signed_in(&app).await;
    let (status, _, page) = get_page(&app, &session, "/flows/pure/edit").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"name="version" value="1""#), "{page}");

    let bad = PURE_FLOW.replace("type: extract_json", "type: extract_jsn");
    let form = [
        ("csrf", csrf.as_str()),
        ("yaml", bad.as_str()),
        ("version", "1"),
    ];
    let (status, html) = post_form(&app, &session, "/flows/pure/edit", &form).await;
    assert_eq!(status, 400, "{html}");
    assert!(
        html.contains(
            r#"<div class="ln bad" data-line="7" title="unknown action type `extract_jsn`"#
        ),
        "the gutter marks line 7: {html}"
    );
    assert!(
        html.contains("line 7, column 11: unknown action type"),
        "{html}"
    );
    assert!(html.contains("extract_jsn"), "the text is kept: {html}");
    assert_eq!(versions(&app, "pure").await, vec![1]);

    // Fixed, sent as a browser sends a textarea (CRLF): version 2, stored with its own newlines.
    let fixed = PURE_FLOW.replace("$.a", "$['a']");
    let crlf = fixed.replace('\n', "\r\n");
    let form = [
        ("csrf", csrf.as_str()),
        ("yaml", crlf.as_str()),
        ("version", "1"),
    ];
    let (status, _) = post_form(&app, &session, "/flows/pure/edit", &form).await;
    assert_eq!(status, 303);
    assert_eq!(versions(&app, "pure").await, vec![2, 1]);
    let (_, stored) = app.get_json("/api/flows/pure").await;
    assert_eq!(stored["yaml"], fixed);

    // A form opened at version 1 does not silently replace version 2.
    let stale = PURE_FLOW.replace("$.a", "$..a");
    let form = [
        ("csrf", csrf.as_str()),
        ("yaml", stale.as_str()),
        ("version", "1"),
    ];
    let (status, html) = post_form(&app, &session, "/flows/pure/edit", &form).await;
    assert_eq!(status, 409, "{html}");
    assert!(
        html.contains("Version 2 was saved while you edited version 1"),
        "{html}"
    );
    assert!(html.contains(r#"name="version" value="2""#), "{html}");
    assert_eq!(versions(&app, "pure").await, vec![2, 1]);

    // A new flow is created once; its id cannot take over another flow.
    let new = PURE_FLOW.replacen("id: pure", "id: created", 1);
    let form = [("csrf", csrf.as_str()), ("yaml", new.as_str())];
    let (status, _) = post_form(&app, &session, "/flows/new", &form).await;
    assert_eq!(status, 303);
    assert_eq!(versions(&app, "created").await, vec![1]);
    let (status, html) = post_form(&app, &session, "/flows/new", &form).await;
    assert_eq!(status, 400);
    assert!(html.contains("a flow `created` exists already"), "{html}");
    assert_eq!(versions(&app, "created").await, vec![1]);

    // The versions page and the diff page.
    let (status, _, page) = get_page(&app, &session, "/flows/pure/versions").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<tr data-version="2">"#) && page.contains(r#"<tr data-version="1">"#));
    let (status, _, page) = get_page(&app, &session, "/flows/pure/diff?from=1&to=2").await;
    assert_eq!(status, 200);
    assert!(page.contains("2 lines changed"), "{page}");
    assert!(
        page.contains(r#"<tr class="added"><td class="num"></td><td class="num">8</td>"#),
        "{page}"
    );
}

//! Every API route answered by a real server with real data (runs finished and waiting, flows,
//! schedules, OAuth servers, the vault, and the errors), each body checked against the schema the
//! OpenAPI document declares for that route and status: the document cannot promise a body the
//! server does not send.

use std::collections::BTreeSet;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tokenflow_testkit::{Decision, sign_in};

use crate::support::{World, world};

/// A small JSON Schema checker over the server's OpenAPI document: `$ref`s resolved, `required`
/// members present, `type`s and `enum`s matched, array items and members checked recursively.
/// An object schema that declares `properties` is closed unless it says otherwise: the document
/// describes every member a body has, so a member it does not declare is an error (utoipa writes
/// `additionalProperties: false` only for `deny_unknown_fields` types).
struct Checker {
    doc: Value,
}

impl Checker {
    fn new() -> Checker {
        Checker {
            doc: serde_json::to_value(tokenflow_server::openapi()).unwrap(),
        }
    }

    /// The declared response of `method path` with `status`: `Some(schema)` for a JSON body,
    /// `None` for no body. Panics when the document does not declare that status.
    fn response(&self, method: &str, path: &str, status: u16) -> Option<&Value> {
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path} answered {status}, which the document does not declare"
        );
        let content = response.get("content")?;
        Some(&content["application/json"]["schema"])
    }

    /// Every way `value` differs from `schema`, as `path: problem`.
    fn problems(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        self.check(schema, value, "$", &mut problems);
        problems
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
                let target = &self.doc["components"]["schemas"][name];
                assert!(target.is_object(), "unresolved $ref {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        for key in ["oneOf", "anyOf"] {
            if let Some(choices) = schema.get(key).and_then(Value::as_array) {
                if !choices.iter().any(|choice| {
                    let mut found = Vec::new();
                    self.check(choice, value, at, &mut found);
                    found.is_empty()
                }) {
                    problems.push(format!("{at}: {value} matches none of its {key}"));
                }
                return;
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            // Each part checks its own members; together they declare the object's.
            let merged = parts.iter().fold(json!({}), |mut merged, part| {
                let part = self.resolve(part);
                for key in ["properties", "required"] {
                    if let Some(items) = part.get(key) {
                        match (&mut merged[key], items) {
                            (Value::Object(into), Value::Object(from)) => into.extend(from.clone()),
                            (Value::Array(into), Value::Array(from)) => {
                                into.extend(from.iter().cloned())
                            }
                            (slot, _) => *slot = items.clone(),
                        }
                    }
                }
                merged
            });
            return self.check(&merged, value, at, problems);
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(kind)) => vec![kind.as_str()],
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|kind| is_a(kind, value)) {
            problems.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && value.as_f64().is_some_and(|number| number < minimum)
        {
            problems.push(format!("{at}: {value} is below {minimum}"));
        }
        match value {
            Value::Object(members) => {
                for name in schema
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    if !members.contains_key(name) {
                        problems.push(format!("{at}: the required member `{name}` is missing"));
                    }
                }
                let declared = schema.get("properties").and_then(Value::as_object);
                for (name, member) in members {
                    let here = format!("{at}.{name}");
                    match (
                        declared.and_then(|d| d.get(name)),
                        schema.get("additionalProperties"),
                    ) {
                        (Some(property), _) => self.check(property, member, &here, problems),
                        (None, Some(Value::Bool(false))) => {
                            problems.push(format!("{here}: not declared by the schema"))
                        }
                        (None, Some(Value::Object(extra))) => {
                            self.check(&Value::Object(extra.clone()), member, &here, problems)
                        }
                        (None, Some(_)) => {}
                        (None, None) if declared.is_some_and(|d| !d.is_empty()) => {
                            problems.push(format!("{here}: not declared by the schema"))
                        }
                        (None, None) => {}
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item) = schema.get("items") {
                    for (index, element) in items.iter().enumerate() {
                        self.check(item, element, &format!("{at}[{index}]"), problems);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_a(kind: &str, value: &Value) -> bool {
    match kind {
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown schema type {other}"),
    }
}

/// Sends requests and checks every answer against the document, remembering what was covered.
struct Probe<'a> {
    checker: Checker,
    w: &'a World,
    /// (method, path template, status) answered so far.
    covered: BTreeSet<(String, String, u16)>,
}

impl Probe<'_> {
    /// Sends `request` (for `method template`), checks the answer and returns (status, body).
    async fn send(
        &mut self,
        method: &str,
        template: &str,
        request: RequestBuilder,
    ) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = match self.checker.response(method, template, status) {
            Some(schema) => {
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|err| panic!("{method} {template} {status}: {err}: {text}"));
                let problems = self.checker.problems(schema, &body);
                assert!(
                    problems.is_empty(),
                    "{method} {template} answered {status} with a body its schema does not \
                     describe:\n  {}\n{body:#}",
                    problems.join("\n  ")
                );
                body
            }
            None => {
                assert!(text.is_empty(), "{method} {template} {status}: {text}");
                Value::Null
            }
        };
        self.covered
            .insert((method.to_owned(), template.to_owned(), status));
        (status, body)
    }

    fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.w.app.request(method, path)
    }

    async fn expect(
        &mut self,
        status: u16,
        method: Method,
        template: &str,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Value {
        let request = build(self.api(method.clone(), path));
        let (got, body) = self
            .send(&method.as_str().to_ascii_lowercase(), template, request)
            .await;
        assert_eq!(got, status, "{method} {path}: {body}");
        body
    }
}

fn none(request: RequestBuilder) -> RequestBuilder {
    request
}

fn yaml(text: String) -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    move |request| {
        request
            .header("content-type", "application/yaml")
            .body(text)
    }
}

fn json_body(body: Value) -> impl FnOnce(RequestBuilder) -> RequestBuilder {
    move |request| request.json(&body)
}

const KEEP_FLOW: &str = "id: keep\nvariables:\n  t: {}\n  r: {}\n  e: {}\nactions:\n  login:\n    type: oauth_user_login\n    oauth_server: idp\n    input: { scope: \"openid offline_access\" }\n    output: { access_token: t, refresh_token: r, expires_in: e }\n  store:\n    type: vault_store\n    oauth_server: idp\n    input: { name: alice, access_token: { var: t }, refresh_token: { var: r }, expires_in: { var: e } }\nsteps:\n  - { from: start, to: login }\n  - { from: login, to: store }\n  - { from: store, to: stop }\n";

fn ticker(note: &str) -> String {
    format!(
        "id: ticker\ndescription: \"{note}\"\nschedule: \"0 3 * * *\"\nvariables:\n  v: {{}}\nactions:\n  one:\n    type: extract_json\n    input: {{ json: \"[1]\", path: \"$[0]\" }}\n    output: {{ value: v }}\nsteps:\n  - {{ from: start, to: one }}\n  - {{ from: one, to: stop }}\n"
    )
}

#[tokio::test]
async fn every_api_answer_matches_the_schema_the_openapi_document_declares_for_it() {
    use Method as M;
    let w = world(false).await;
    let mut p = Probe {
        checker: Checker::new(),
        w: &w,
        covered: BTreeSet::new(),
    };

    // Flows: stored, unchanged, invalid, wrong media type, listed, shown, unknown.
    p.expect(
        201,
        M::PUT,
        "/api/flows/{id}",
        "/api/flows/ticker",
        yaml(ticker("one")),
    )
    .await;
    p.expect(
        200,
        M::PUT,
        "/api/flows/{id}",
        "/api/flows/ticker",
        yaml(ticker("one")),
    )
    .await;
    let invalid = p
        .expect(
            400,
            M::PUT,
            "/api/flows/{id}",
            "/api/flows/bad",
            yaml("id: bad\nactions: 7\n".into()),
        )
        .await;
    assert!(invalid["problems"].is_array(), "{invalid}");
    p.expect(415, M::PUT, "/api/flows/{id}", "/api/flows/bad", |r| {
        r.header("content-type", "application/json").body("{}")
    })
    .await;
    p.expect(
        201,
        M::PUT,
        "/api/flows/{id}",
        "/api/flows/keep",
        yaml(KEEP_FLOW.into()),
    )
    .await;
    p.expect(200, M::GET, "/api/flows", "/api/flows", none)
        .await;
    p.expect(200, M::GET, "/api/flows/{id}", "/api/flows/pure", none)
        .await;
    p.expect(404, M::GET, "/api/flows/{id}", "/api/flows/ghost", none)
        .await;
    // Flow editing: validation without storing, versions, one version, a diff of two.
    let checked = p
        .expect(
            200,
            M::POST,
            "/api/flows/validate",
            "/api/flows/validate",
            yaml("id: bad\nactions: 7\n".into()),
        )
        .await;
    assert_eq!(checked["valid"], false, "{checked}");
    p.expect(
        200,
        M::POST,
        "/api/flows/validate",
        "/api/flows/validate?id=ticker",
        yaml(ticker("two")),
    )
    .await;
    p.expect(
        415,
        M::POST,
        "/api/flows/validate",
        "/api/flows/validate",
        |r| r.header("content-type", "application/json").body("{}"),
    )
    .await;
    let versions = "/api/flows/{id}/versions";
    p.expect(200, M::GET, versions, "/api/flows/ticker/versions", none)
        .await;
    p.expect(404, M::GET, versions, "/api/flows/ghost/versions", none)
        .await;
    let version = "/api/flows/{id}/versions/{version}";
    p.expect(200, M::GET, version, "/api/flows/ticker/versions/1", none)
        .await;
    p.expect(404, M::GET, version, "/api/flows/ticker/versions/9", none)
        .await;
    let diff = "/api/flows/{id}/diff";
    p.expect(
        200,
        M::GET,
        diff,
        "/api/flows/ticker/diff?from=1&to=1",
        none,
    )
    .await;
    p.expect(
        400,
        M::GET,
        diff,
        "/api/flows/ticker/diff?from=x&to=1",
        none,
    )
    .await;
    p.expect(
        404,
        M::GET,
        diff,
        "/api/flows/ticker/diff?from=1&to=9",
        none,
    )
    .await;
    let schedules = p
        .expect(200, M::GET, "/api/schedules", "/api/schedules", none)
        .await;
    assert_eq!(schedules["schedules"][0]["flow"], "ticker", "{schedules}");

    // Runs: finished, waiting, failed inputs, unknown flow, wrong media type, too large.
    let finished = p
        .expect(
            200,
            M::POST,
            "/api/flows/{id}/runs",
            "/api/flows/pure/runs",
            none,
        )
        .await;
    assert_eq!(finished["status"], "completed", "{finished}");
    let waiting = p
        .expect(
            201,
            M::POST,
            "/api/flows/{id}/runs",
            "/api/flows/profile/runs",
            json_body(json!({})),
        )
        .await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");
    p.expect(
        400,
        M::POST,
        "/api/flows/{id}/runs",
        "/api/flows/pure/runs",
        json_body(json!({ "nope": 1 })),
    )
    .await;
    p.expect(
        404,
        M::POST,
        "/api/flows/{id}/runs",
        "/api/flows/ghost/runs",
        json_body(json!({})),
    )
    .await;
    p.expect(
        415,
        M::POST,
        "/api/flows/{id}/runs",
        "/api/flows/pure/runs",
        |r| r.header("content-type", "text/plain").body("{}"),
    )
    .await;
    p.expect(
        413,
        M::POST,
        "/api/flows/{id}/runs",
        "/api/flows/pure/runs",
        json_body(json!({ "doc": "x".repeat(2 << 20) })),
    )
    .await;
    let finished_id = finished["id"].as_str().unwrap().to_owned();
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    p.expect(
        200,
        M::GET,
        "/api/runs/{id}",
        &format!("/api/runs/{finished_id}"),
        none,
    )
    .await;
    let shown = p
        .expect(
            200,
            M::GET,
            "/api/runs/{id}",
            &format!("/api/runs/{waiting_id}"),
            none,
        )
        .await;
    assert!(shown["authorization_url"].is_string(), "{shown}");
    p.expect(404, M::GET, "/api/runs/{id}", "/api/runs/ghost", none)
        .await;
    p.expect(200, M::GET, "/api/runs", "/api/runs?limit=5", none)
        .await;
    p.expect(400, M::GET, "/api/runs", "/api/runs?status=sleeping", none)
        .await;
    let page = p
        .expect(
            200,
            M::GET,
            "/api/runs/{id}/actions",
            &format!("/api/runs/{finished_id}/actions?limit=1"),
            none,
        )
        .await;
    assert_eq!(page["actions"].as_array().map(Vec::len), Some(1), "{page}");
    p.expect(
        400,
        M::GET,
        "/api/runs/{id}/actions",
        &format!("/api/runs/{finished_id}/actions?limit=many"),
        none,
    )
    .await;
    p.expect(
        404,
        M::GET,
        "/api/runs/{id}/actions",
        "/api/runs/ghost/actions",
        none,
    )
    .await;
    let cancelled = p
        .expect(
            200,
            M::DELETE,
            "/api/runs/{id}",
            &format!("/api/runs/{waiting_id}"),
            none,
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    p.expect(
        409,
        M::DELETE,
        "/api/runs/{id}",
        &format!("/api/runs/{finished_id}"),
        none,
    )
    .await;
    p.expect(404, M::DELETE, "/api/runs/{id}", "/api/runs/ghost", none)
        .await;

    // A vault entry from a real sign-in (its run records the token response's extra members).
    let kept = p
        .expect(
            201,
            M::POST,
            "/api/flows/{id}/runs",
            "/api/flows/keep/runs",
            none,
        )
        .await;
    let landed = sign_in(
        kept["authorization_url"].as_str().unwrap(),
        &format!("{}/oauth-callback", w.app.url),
        "alice",
        "alice-password",
        Decision::Allow,
    )
    .await;
    assert_eq!(w.app.http.get(landed).send().await.unwrap().status(), 200);
    let kept = p
        .expect(
            200,
            M::GET,
            "/api/runs/{id}",
            &format!("/api/runs/{}", kept["id"].as_str().unwrap()),
            none,
        )
        .await;
    assert_eq!(kept["status"], "completed", "{kept}");
    let vault = p
        .expect(200, M::GET, "/api/vault", "/api/vault", none)
        .await;
    assert_eq!(vault["entries"][0]["name"], "alice", "{vault}");
    p.expect(
        200,
        M::DELETE,
        "/api/vault/{name}",
        "/api/vault/alice",
        none,
    )
    .await;
    p.expect(
        404,
        M::DELETE,
        "/api/vault/{name}",
        "/api/vault/alice",
        none,
    )
    .await;

    // OAuth servers: created, replaced, refused, tested, deleted, unknown.
    let client = w
        .idp
        .client_credentials_client(&tokenflow_testkit::unique("conf-cc"), "conf-cc-secret")
        .await;
    let spec = json!({ "client_id": client.id, "client_secret": "conf-cc-secret",
        "issuer": w.idp.issuer(), "scope": "api:read" });
    let created = p
        .expect(
            201,
            M::PUT,
            "/api/oauth-servers/{id}",
            "/api/oauth-servers/svc",
            json_body(spec.clone()),
        )
        .await;
    assert!(created["warnings"].is_array(), "{created}");
    p.expect(
        200,
        M::PUT,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/svc",
        json_body(spec),
    )
    .await;
    let refused = p
        .expect(
            400,
            M::PUT,
            "/api/oauth-servers/{id}",
            "/api/oauth-servers/svc",
            json_body(
                json!({ "client_id": client.id, "token_url": "https://elsewhere.example/token" }),
            ),
        )
        .await;
    assert_eq!(refused["error"], "secret_required", "{refused}");
    let configured = p
        .expect(
            409,
            M::PUT,
            "/api/oauth-servers/{id}",
            "/api/oauth-servers/idp",
            json_body(json!({ "client_id": "x" })),
        )
        .await;
    assert_eq!(
        configured["error"], "defined_in_configuration",
        "{configured}"
    );
    p.expect(
        415,
        M::PUT,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/svc",
        |r| r.body("{}"),
    )
    .await;
    p.expect(
        200,
        M::GET,
        "/api/oauth-servers",
        "/api/oauth-servers",
        none,
    )
    .await;
    p.expect(
        200,
        M::GET,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/idp",
        none,
    )
    .await;
    p.expect(
        404,
        M::GET,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/ghost",
        none,
    )
    .await;
    let tested = p
        .expect(
            200,
            M::POST,
            "/api/oauth-servers/{id}/test",
            "/api/oauth-servers/svc/test",
            none,
        )
        .await;
    assert_eq!(tested["status_code"], 0, "{tested}");
    let unknown = p
        .expect(
            404,
            M::POST,
            "/api/oauth-servers/{id}/test",
            "/api/oauth-servers/ghost/test",
            none,
        )
        .await;
    assert_eq!(
        unknown["message"], "OAuth server `ghost` not found",
        "{unknown}"
    );
    p.expect(
        204,
        M::DELETE,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/svc",
        none,
    )
    .await;
    p.expect(
        404,
        M::DELETE,
        "/api/oauth-servers/{id}",
        "/api/oauth-servers/svc",
        none,
    )
    .await;

    // Without the API key, every operation answers the documented 401: each from an address of
    // its own, since an address that keeps failing is answered 429 (docs/security.md).
    let operations: Vec<(String, String)> = p.checker.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/api/"))
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    for (n, (method, template)) in operations.iter().enumerate() {
        let path = template
            .replace("{id}", "x")
            .replace("{name}", "x")
            .replace("{version}", "1");
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([
                127,
                0,
                1,
                u8::try_from(n).unwrap(),
            ]))
            .build()
            .unwrap();
        let request = client.request(
            Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
            format!("{}{path}", w.app.url),
        );
        let (status, _) = p.send(method, template, request).await;
        assert_eq!(status, 401, "{method} {template}");
    }

    // Every operation was answered with success and with the errors asked of it.
    for (method, template) in &operations {
        assert!(
            p.covered
                .iter()
                .any(|(m, t, s)| m == method && t == template && (200..300).contains(s)),
            "{method} {template} was never answered successfully here"
        );
    }
    let statuses: BTreeSet<u16> = p.covered.iter().map(|(_, _, s)| *s).collect();
    for status in [200, 201, 204, 400, 401, 404, 409, 413, 415] {
        assert!(statuses.contains(&status), "no answer with {status}");
    }
}

#[tokio::test]
async fn the_checker_refuses_an_undeclared_member_a_missing_required_one_and_a_wrong_type() {
    let w = world(false).await;
    let checker = Checker::new();
    let (status, run, _) = w.app.post_json("/api/flows/pure/runs", json!({})).await;
    assert_eq!(status, 200);
    let schema = checker
        .response("get", "/api/runs/{id}", 200)
        .unwrap()
        .clone();
    assert_eq!(checker.problems(&schema, &run), Vec::<String>::new());

    let mut extra = run.clone();
    extra["actions"][0]["debug"] = json!("a member no schema declares");
    assert_eq!(
        checker.problems(&schema, &extra),
        ["$.actions[0].debug: not declared by the schema"]
    );
    let mut extra = run.clone();
    extra["secret"] = json!("s");
    assert_eq!(
        checker.problems(&schema, &extra),
        ["$.secret: not declared by the schema"]
    );
    let mut missing = run.clone();
    missing.as_object_mut().unwrap().remove("flow_version");
    assert_eq!(
        checker.problems(&schema, &missing),
        ["$: the required member `flow_version` is missing"]
    );
    let mut wrong = run.clone();
    wrong["actions_total"] = json!("three");
    assert_eq!(
        checker.problems(&schema, &wrong),
        [r#"$.actions_total: "three" is not of type ["integer"]"#]
    );

    let error = checker
        .response("get", "/api/runs/{id}", 404)
        .unwrap()
        .clone();
    assert!(
        checker
            .problems(&error, &json!({ "error": "not_found", "message": "m" }))
            .is_empty()
    );
    assert_eq!(
        checker.problems(&error, &json!({ "error": "not_found" })),
        ["$: the required member `message` is missing"]
    );
}

//! The UI's handlers: read the session, call the runner/catalog/registry, render a template.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};
use tokenflow_connectors::status::meaning;
use tokenflow_core::flow::ActionKind;

use tokenflow_engine::RunStatus;
use tokenflow_runtime::RuntimeError;
use tokenflow_store::{RunFilter, StoreError, UiSessionOwner, UiSessionRow};

use super::session::{COOKIE, LIFETIME_SECS, Session, csrf_matches};
use super::{aadsts_hint, diagram};
use crate::callback::cookie;
use crate::error::ApiError;
use crate::state::AppState;

const LOGIN_CSRF_COOKIE: &str = "tokenflow_login_csrf";
const PAGE_SIZE: u32 = 50;
/// Longest value shown in a table cell.
const MAX_SHOWN: usize = 2000;

pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/style.css"),
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("assets/app.js"),
    )
}

/// The session of a request, if it has a valid one: its cookie names a session in the store that
/// was not signed out, has not expired, and whose API key still exists.
pub async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = cookie(headers, COOKIE)?;
    if !super::session::plausible_id(&id) {
        return None;
    }
    let session = state.ui.keys.session(&id);
    let row = match state
        .store
        .find_ui_session(&session.id_hash, state.clock.now())
        .await
    {
        Ok(row) => row?,
        Err(err) => {
            tracing::error!(error = %err, "a UI session could not be read");
            return None;
        }
    };
    // A session lives only as long as the API key it was opened with: a stored key's sessions
    // go with it (the store sees to that), a configured key's when it leaves the configuration.
    match row.owner {
        UiSessionOwner::StoredKey(_) => Some(session),
        UiSessionOwner::ConfiguredKey(reference) => state
            .config_key_hashes
            .iter()
            .any(|hash| state.ui.keys.configured_key_ref(hash) == reference)
            .then_some(session),
    }
}

/// A request from a signed-in browser; any other is redirected to the sign-in page (which comes
/// back here afterwards).
#[derive(Debug)]
pub struct SignedIn(pub Session);

impl axum::extract::FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session(state, &parts.headers).await {
            Some(session) => Ok(SignedIn(session)),
            None => Err(sign_in_first(&parts.uri)),
        }
    }
}

/// A redirect to the sign-in page that comes back to `uri`.
fn sign_in_first(uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/runs", |p| p.as_str());
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

pub(super) fn check_csrf(
    session: &Session,
    form: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    match form.get("csrf") {
        Some(token) if csrf_matches(session, token) => Ok(()),
        _ => Err(Box::new((StatusCode::FORBIDDEN, Html("<!doctype html><title>Forbidden</title><p id=\"message\">This form is missing its CSRF token or it is stale. Reload the page and try again.</p>")).into_response())),
    }
}

/// Renders a template with the common context, and the UI's security headers.
pub(super) fn render(
    state: &AppState,
    template: &str,
    session: Option<&Session>,
    section: &str,
    mut ctx: Value,
) -> Response {
    if let Some(object) = ctx.as_object_mut() {
        object.insert("signed_in".into(), session.is_some().into());
        let csrf = session.map(|s| s.csrf.clone()).unwrap_or_default();
        let csrf_q: String = url::form_urlencoded::byte_serialize(csrf.as_bytes()).collect();
        object.insert("csrf".into(), csrf.into());
        object.insert("csrf_q".into(), csrf_q.into());
        object.insert("section".into(), section.into());
    }
    let html = state
        .ui
        .env
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)));
    match html {
        Ok(html) => with_headers(Html(html).into_response()),
        Err(err) => {
            tracing::error!(error = %err, template, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self' https: http:",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn secure(state: &AppState) -> &'static str {
    if state.settings.secure_cookies() {
        "; Secure"
    } else {
        ""
    }
}

/// Where a sign-in goes when `next` is missing or not a path of this site.
const DEFAULT_NEXT: &str = "/runs";

/// The page to go to after sign-in: `next` when it is a path on this origin, otherwise the default
/// page (no open redirect). Browsers remove tabs and newlines from a URL and read `\` as `/`
/// (WHATWG URL Standard, basic URL parser), so `/<tab>/evil.example` would turn into the
/// scheme-relative `//evil.example`; and a control character cannot go into a `Location` header
/// at all. So `next` must be printable ASCII that starts with exactly one `/`, and neither it nor
/// its percent-decoded form may contain `\`, a control or whitespace character, or start with
/// `//`.
fn safe_next(next: Option<&String>) -> String {
    match next {
        Some(next) if is_local_path(next) => next.clone(),
        _ => DEFAULT_NEXT.to_owned(),
    }
}

fn is_local_path(next: &str) -> bool {
    fn shaped(path: &str) -> bool {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path
                .chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    }
    next.is_ascii() && shaped(next) && percent_decoded(next).is_some_and(|decoded| shaped(&decoded))
}

/// `%XX` sequences decoded (others kept as they are); `None` when the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|b| char::from(*b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high * 16 + low);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = tokenflow_connectors::oauth::random::random_token(24)
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    let mut response = render(
        &state,
        "login.html",
        None,
        "",
        json!({ "login_csrf": token, "next": safe_next(query.get("next")), "error": null }),
    );
    set_cookie(
        &mut response,
        format!(
            "{LOGIN_CSRF_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure(&state)
        ),
    );
    response
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let given = form.get("csrf").cloned().unwrap_or_default();
    if expected.is_empty() || !super::session::tokens_match(&expected, &given) {
        return (StatusCode::FORBIDDEN, Html("<!doctype html><title>Forbidden</title><p id=\"message\">The sign-in form is stale. <a href=\"/login\">Reload it</a>.</p>")).into_response();
    }
    let key = form.get("api_key").map(String::as_str).unwrap_or("");
    let owner = match owner_of_key(&state, key).await {
        Ok(owner) => owner,
        Err(err) => return err.into_response(),
    };
    let Some(owner) = owner else {
        tracing::warn!("a UI sign-in with an invalid API key was refused");
        let ctx = json!({ "login_csrf": expected, "next": safe_next(form.get("next")), "error": "That API key is not valid." });
        let mut response = render(&state, "login.html", None, "", ctx);
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    let id = match open_session(&state, owner).await {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    let mut response = Redirect::to(&safe_next(form.get("next"))).into_response();
    set_cookie(
        &mut response,
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={LIFETIME_SECS}{}",
            id.expose(),
            secure(&state)
        ),
    );
    set_cookie(
        &mut response,
        format!("{LOGIN_CSRF_COOKIE}=; Path=/login; Max-Age=0"),
    );
    response
}

/// Who a sign-in with `key` belongs to, or `None` for a key that is not valid. A configured key is
/// named by a keyed reference, a stored one by its name: never by the key's plain hash.
async fn owner_of_key(state: &AppState, key: &str) -> Result<Option<UiSessionOwner>, ApiError> {
    if key.is_empty() {
        return Ok(None);
    }
    let hash = crate::auth::hash_key(key);
    if state.config_key_hashes.contains(&hash) {
        return Ok(Some(UiSessionOwner::ConfiguredKey(
            state.ui.keys.configured_key_ref(&hash),
        )));
    }
    Ok(state
        .store
        .find_api_key(&hash)
        .await?
        .map(|row| UiSessionOwner::StoredKey(row.name)))
}

/// Stores a new session for `owner`; returns its id, the cookie's value.
async fn open_session(
    state: &AppState,
    owner: UiSessionOwner,
) -> Result<tokenflow_core::SecretString, ApiError> {
    let id = tokenflow_connectors::oauth::random::random_token(super::session::ID_BYTES)
        .map_err(ApiError::internal)?;
    let now = state.clock.now();
    let row = UiSessionRow {
        id_hash: super::session::id_hash(id.expose()),
        owner,
        created_at: now,
        expires_at: now + time::Duration::seconds(LIFETIME_SECS),
    };
    state.store.create_ui_session(&row).await?;
    Ok(id)
}

pub async fn logout(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = check_csrf(&session, &form) {
        return *denied;
    }
    // Deleted in the store, so the cookie stops working on every instance, not only here.
    if let Err(err) = state.store.delete_ui_session(&session.id_hash).await {
        return ApiError::from(err).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    set_cookie(
        &mut response,
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            secure(&state)
        ),
    );
    response
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A JSON value as table text: strings as they are, the rest as compact JSON, bounded; a value
/// the monitor kept as a summary shows its preview, size and hash.
fn shown(value: &Value) -> String {
    if tokenflow_engine::monitor::is_summary(value) {
        let sha256 = value["sha256"].as_str().unwrap_or_default();
        return format!(
            "{}… ({} bytes, sha256 {}…)",
            value["preview"].as_str().unwrap_or_default(),
            value["bytes"],
            sha256.get(..16).unwrap_or(sha256)
        );
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_SHOWN {
        format!(
            "{}… ({} chars)",
            text.chars().take(MAX_SHOWN).collect::<String>(),
            text.chars().count()
        )
    } else {
        text
    }
}

fn pairs(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), shown(v))).collect())
        .unwrap_or_default()
}

pub async fn runs(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page: u32 = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let flow = query.get("flow").filter(|f| !f.is_empty()).cloned();
    let status = query
        .get("status")
        .filter(|s| RunStatus::parse(s).is_some())
        .cloned();
    let since = query.get("since").filter(|s| !s.is_empty()).cloned();
    let started_after = since.as_deref().and_then(|s| {
        let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
        time::PrimitiveDateTime::parse(s, &format)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    });
    let filter = RunFilter {
        flow_id: flow.clone(),
        status: status.as_deref().and_then(RunStatus::parse),
        started_after,
        limit: PAGE_SIZE + 1,
        offset: page * PAGE_SIZE,
        ..RunFilter::default()
    };
    let (mut rows, flows) = match (
        state.store.list_runs(&filter).await,
        state.store.list_flows().await,
    ) {
        (Ok(rows), Ok(flows)) => (rows, flows),
        (Err(err), _) | (_, Err(err)) => return ApiError::from(err).into_response(),
    };
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let link = |page: u32| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in [("flow", &flow), ("status", &status), ("since", &since)] {
            if let Some(value) = value {
                params.append_pair(key, value);
            }
        }
        params.append_pair("page", &page.to_string());
        format!("/runs?{}", params.finish())
    };
    let ctx = json!({
        "runs": rows.iter().map(|r| json!({
            "id": r.id, "flow": r.flow_id, "version": r.flow_version, "status": r.status,
            "started_at": rfc3339(r.started_at), "ended_at": r.ended_at.map(rfc3339),
        })).collect::<Vec<_>>(),
        "flows": flows.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        "statuses": ["running", "waiting", "completed", "failed", "cancelled"],
        "filter": { "flow": flow, "status": status, "since": since },
        "prev_page": (page > 0).then(|| link(page - 1)),
        "next_page": more.then(|| link(page + 1)),
    });
    render(&state, "runs.html", Some(&session), "runs", ctx)
}

/// The template context of one run: its last monitor records, or with `before` the page of
/// (at most 100) records just before that one.
async fn run_context(
    state: &AppState,
    id: &str,
    before: Option<u64>,
) -> Result<Option<(Value, bool)>, ApiError> {
    let Some(view) = state.runner.load(id).await? else {
        return Ok(None);
    };
    let mut json = view.to_json(state.runner.engine().limits().monitor_value);
    let total = view.run.record_count();
    let shown = tokenflow_runtime::runner::SHOWN_RECORDS as u64;
    // Earlier pages are counted back from where the latest records begin, so no record shows
    // on two pages.
    let latest = view.run.first_record;
    let offset = match before {
        Some(before) if before > 0 && before <= latest => {
            let from = before.saturating_sub(shown);
            let limit = u32::try_from(before - from).unwrap_or(1);
            let page = state
                .runner
                .records_page(id, from, limit)
                .await?
                .map(|page| page.records)
                .unwrap_or_default();
            json["actions"] = Value::Array(page);
            from
        }
        _ => latest,
    };
    let end = offset + json["actions"].as_array().map_or(0, |a| a.len() as u64);
    // `earlier` and `later_before` are the `before` of the neighbouring pages; the page after
    // the last earlier one is the latest (no `before`).
    let paging = json!({
        "first": offset + 1, "last": end, "total": total,
        "earlier": (offset > 0).then_some(offset),
        "later": end < total,
        "later_before": (end < latest).then(|| (end + shown).min(latest)),
    });
    let actions: Vec<Value> =
        json["actions"]
            .as_array()
            .map(|records| {
                records
                .iter()
                .map(|record| {
                    let kind = record["type"].as_str().unwrap_or_default();
                    let code = record["status_code"].as_i64().and_then(|c| i32::try_from(c).ok());
                    let error = record["error"].as_str().map(str::to_owned);
                    json!({
                        "action": record["action"], "type": kind, "status_code": code,
                        "meaning": ActionKind::parse(kind).zip(code).and_then(|(kind, c)| meaning(kind, c)).unwrap_or(""),
                        "started_at": record["started_at"], "duration_ms": record["duration_ms"],
                        "inputs": pairs(&record["inputs"]), "outputs": pairs(&record["outputs"]),
                        "response": pairs(&record["response"]),
                        "hint": error.as_deref().and_then(aadsts_hint),
                        "error": error, "warnings": record["warnings"],
                    })
                })
                .collect()
            })
            .unwrap_or_default();
    // Live updates replace the page with the latest records, so a page of earlier ones is static.
    let live = !view.run.status.is_final() && end >= total;
    let ctx = json!({ "run": json, "actions": actions, "variables": pairs(&json["variables"]), "live": live, "paging": paging });
    Ok(Some((ctx, live)))
}

/// `?before=N` on a run page: the page of monitor records before record N.
fn before_query(query: &HashMap<String, String>) -> Option<u64> {
    query.get("before").and_then(|before| before.parse().ok())
}

pub async fn run(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match run_context(&state, &id, before_query(&query)).await {
        Ok(Some((ctx, _))) => render(&state, "run.html", Some(&session), "runs", ctx),
        Ok(None) => ApiError::NotFound(format!("run `{id}`")).into_response(),
        Err(err) => err.into_response(),
    }
}

pub async fn run_fragment(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match run_context(&state, &id, before_query(&query)).await {
        Ok(Some((ctx, _))) => render(&state, "run_detail.html", Some(&session), "runs", ctx),
        Ok(None) => ApiError::NotFound(format!("run `{id}`")).into_response(),
        Err(err) => err.into_response(),
    }
}

/// Server-sent events: `update` whenever the stored run changes, `end` once it has ended. Polls
/// the store, so it works whichever instance executed the change.
///
/// Bounded, so that no stream outlives its use: an unknown run is answered 404 (an `EventSource`
/// does not retry that), a stream ends once its run has ended or gone, and after
/// `event_stream_max` in any case — the browser's `EventSource` then reconnects by itself.
pub async fn run_events(
    State(state): State<AppState>,
    _: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let initial = match state.store.get_run(&id).await {
        Ok(Some(run)) => Some((run.updated_at, run.status)),
        Ok(None) => return (StatusCode::NOT_FOUND, "no such run").into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let until = tokio::time::Instant::now() + state.settings.event_stream_max;
    let stream = futures_util::stream::unfold(
        (state, id, initial, false),
        move |(state, id, last, done)| async move {
            if done {
                return None;
            }
            loop {
                if tokio::time::timeout_at(until, tokio::time::sleep(Duration::from_millis(300)))
                    .await
                    .is_err()
                {
                    return None;
                }
                let current = state
                    .store
                    .get_run(&id)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| (r.updated_at, r.status));
                if current != last {
                    let ended = current.as_ref().is_none_or(|(_, status)| status.is_final());
                    let event = Event::default().event("update").data(
                        current
                            .as_ref()
                            .map_or("gone".to_owned(), |(_, s)| s.as_str().to_owned()),
                    );
                    return Some((Ok::<Event, Infallible>(event), (state, id, current, ended)));
                }
                if current
                    .as_ref()
                    .is_some_and(|(_, status)| status.is_final())
                {
                    return Some((
                        Ok(Event::default().event("end").data("end")),
                        (state, id, current, true),
                    ));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub async fn cancel_run(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = check_csrf(&session, &form) {
        return *denied;
    }
    match state.runner.cancel(&id).await {
        Ok(_) | Err(RuntimeError::Conflict(_) | RuntimeError::Store(StoreError::Conflict(_))) => {
            Redirect::to(&format!("/runs/{id}")).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

fn flow_summary(flow: &tokenflow_core::flow::Flow, version: i64) -> Value {
    json!({
        "id": flow.id, "version": version, "description": flow.description, "schedule": flow.schedule,
        "system_flow": flow.is_system_flow(), "required_inputs": flow.required_inputs(), "yaml": flow.source,
    })
}

pub async fn flows(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    match state.catalog.all().await {
        Ok(flows) => {
            let flows: Vec<Value> = flows
                .iter()
                .map(|(f, row)| flow_summary(f, row.version))
                .collect();
            render(
                &state,
                "flows.html",
                Some(&session),
                "flows",
                json!({ "flows": flows, "message": null }),
            )
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

pub async fn flow(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
) -> Response {
    let (flow, version) = match state.catalog.current(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => return ApiError::NotFound(format!("flow `{id}`")).into_response(),
        Err(err) => return ApiError::from(err).into_response(),
    };
    let filter = RunFilter {
        flow_id: Some(id.clone()),
        limit: 10,
        ..RunFilter::default()
    };
    let runs = match state.store.list_runs(&filter).await {
        Ok(runs) => runs,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let ctx = json!({
        "f": flow_summary(&flow, version),
        "diagram": diagram::render_svg(&flow),
        "runs": runs.iter().map(|r| json!({ "id": r.id, "status": r.status, "started_at": rfc3339(r.started_at) })).collect::<Vec<_>>(),
    });
    render(&state, "flow.html", Some(&session), "flows", ctx)
}

pub async fn start_system_flow(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = check_csrf(&session, &form) {
        return *denied;
    }
    match state.runner.start(&id, Map::new(), None).await {
        Ok(view) => Redirect::to(&format!("/runs/{}", view.run.id)).into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Whether a browser start (`GET /flows/{id}/start`) is allowed for this signed-in browser: the
/// link carries the session's CSRF token, so another site cannot start runs with the cookie.
pub async fn browser_start_allowed(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> bool {
    let Some(session) = session(state, headers).await else {
        return false;
    };
    let token = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    token.is_some_and(|token| csrf_matches(&session, &token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_origin_are_followed_after_sign_in() {
        for (next, expected) in [
            ("/servers", "/servers"),
            (
                "/runs?flow=a&status=waiting&page=2",
                "/runs?flow=a&status=waiting&page=2",
            ),
            ("/runs?flow=caf%C3%A9", "/runs?flow=caf%C3%A9"),
            ("/flows/profile", "/flows/profile"),
            ("/", "/"),
            // Scheme-relative and absolute URLs.
            ("//evil.example", DEFAULT_NEXT),
            ("///evil.example", DEFAULT_NEXT),
            ("https://evil.example/", DEFAULT_NEXT),
            ("evil.example", DEFAULT_NEXT),
            ("", DEFAULT_NEXT),
            // Browsers drop tabs and newlines, and read `\` as `/`.
            ("/\t/evil.example", DEFAULT_NEXT),
            ("/\n/evil.example", DEFAULT_NEXT),
            ("/\r\n/evil.example", DEFAULT_NEXT),
            ("/\u{b}/evil.example", DEFAULT_NEXT),
            ("/\0/evil.example", DEFAULT_NEXT),
            ("/\u{7f}/evil.example", DEFAULT_NEXT),
            ("/ /evil.example", DEFAULT_NEXT),
            ("/\u{a0}/evil.example", DEFAULT_NEXT),
            ("/\u{3000}/evil.example", DEFAULT_NEXT),
            ("/\\evil.example", DEFAULT_NEXT),
            ("\\\\evil.example", DEFAULT_NEXT),
            ("/\\/evil.example", DEFAULT_NEXT),
            // The same, percent-encoded once more.
            ("/%09/evil.example", DEFAULT_NEXT),
            ("/%0d%0a/evil.example", DEFAULT_NEXT),
            ("/%0b/evil.example", DEFAULT_NEXT),
            ("/%2F/evil.example", DEFAULT_NEXT),
            ("/%2f%2fevil.example", DEFAULT_NEXT),
            ("%2F%2Fevil.example", DEFAULT_NEXT),
            ("/%5Cevil.example", DEFAULT_NEXT),
            ("%5C%5Cevil.example", DEFAULT_NEXT),
            ("/%20/evil.example", DEFAULT_NEXT),
            ("/%ff", DEFAULT_NEXT),
            // A `%` that starts no escape is kept as it is.
            ("/runs?x=100%", "/runs?x=100%"),
        ] {
            assert_eq!(
                safe_next(Some(&next.to_owned())),
                expected,
                "next = {next:?}"
            );
        }
        assert_eq!(safe_next(None), DEFAULT_NEXT);
    }
}

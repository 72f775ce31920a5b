//! The web UI (docs/api.md, README.md): sign-in, the process flow monitor (runs, one run as a timeline
//! that updates live), flows with their diagram, and OAuth servers with a Test button.
//!
//! Server-rendered HTML (minijinja templates with auto-escaping, compiled into the binary with
//! the CSS and the one small script), so it works without any external CDN and every page can be
//! checked as HTML. Every state-changing form carries the session's CSRF token.

mod admin;
pub mod diagram;
mod hints;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use minijinja::Environment;

use crate::state::AppState;
use session::SessionKeys;

pub use hints::aadsts_hint;

/// Templates and session keys.
#[derive(Debug)]
pub struct Ui {
    pub env: Environment<'static>,
    pub keys: SessionKeys,
}

impl Ui {
    pub fn new(keys: SessionKeys) -> Result<Arc<Ui>, minijinja::Error> {
        let mut env = Environment::new();
        env.add_filter("when", when);
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
            ("run_detail.html", include_str!("templates/run_detail.html")),
            ("flows.html", include_str!("templates/flows.html")),
            ("flow.html", include_str!("templates/flow.html")),
            (
                "start_button.html",
                include_str!("templates/start_button.html"),
            ),
            ("servers.html", include_str!("templates/servers.html")),
            (
                "server_form.html",
                include_str!("templates/server_form.html"),
            ),
            ("vault.html", include_str!("templates/vault.html")),
        ] {
            env.add_template(name, source)?;
        }
        Ok(Arc::new(Ui { env, keys }))
    }
}

/// The `when` filter: an RFC 3339 timestamp as `2026-11-28 06:16:03 UTC` (to the second, in UTC);
/// anything else unchanged, and nothing for none.
fn when(value: minijinja::Value) -> String {
    if value.is_none() || value.is_undefined() {
        return String::new();
    }
    let text = value.to_string();
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|at| at.to_offset(time::UtcOffset::UTC).format(&format).ok())
        .unwrap_or(text)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/runs") }))
        .route("/static/style.css", get(pages::style))
        .route("/static/app.js", get(pages::script))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/fragment", get(pages::run_fragment))
        .route("/runs/{id}/events", get(pages::run_events))
        .route("/runs/{id}/cancel", post(pages::cancel_run))
        .route("/flows", get(pages::flows))
        .route("/flows/{id}", get(pages::flow))
        .route("/flows/{id}/run", post(pages::start_system_flow))
        .route("/servers", get(admin::servers))
        .route("/servers/new", get(admin::new_server))
        .route("/servers/create", post(admin::create_server))
        .route("/servers/{id}/edit", get(admin::edit_server))
        .route("/servers/{id}/update", post(admin::update_server))
        .route("/servers/{id}/delete", post(admin::delete_server))
        .route("/servers/{id}/test", post(admin::test_server))
        .route("/vault", get(admin::vault))
        .route("/vault/{name}/delete", post(admin::delete_vault_entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_page_renders() {
        let ui = Ui::new(SessionKeys::new([0; 32])).unwrap();
        let entries = serde_json::json!([{ "name": "a", "oauth_server": "s", "state": "ok", "expires_at": null,
            "has_refresh_token": true, "last_refresh_at": null, "last_refresh_outcome": null }]);
        for entries in [serde_json::json!([]), entries] {
            let ctx = serde_json::json!({ "entries": entries, "signed_in": true, "csrf": "t", "csrf_q": "t", "section": "vault" });
            let html = ui
                .env
                .get_template("vault.html")
                .unwrap()
                .render(minijinja::Value::from_serialize(&ctx));
            assert!(html.is_ok(), "{html:?}");
        }
    }

    #[test]
    fn timestamps_show_to_the_second_in_utc() {
        use minijinja::Value;
        assert_eq!(
            when(Value::from("2026-11-28T06:16:03.123456789Z")),
            "2026-11-28 06:16:03 UTC"
        );
        assert_eq!(
            when(Value::from("2026-11-28T07:16:03+01:00")),
            "2026-11-28 06:16:03 UTC"
        );
        assert_eq!(when(Value::from("not a time")), "not a time");
        assert_eq!(when(Value::from(())), "");
    }
}

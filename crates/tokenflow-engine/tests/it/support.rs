use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokenflow_connectors::http::build_client;
use tokenflow_connectors::http_action::HttpConnector;
use tokenflow_connectors::oauth::OAuthConnectors;
use tokenflow_connectors::oauth::connectors::RedirectSettings;
use tokenflow_core::flow::{Flow, ParseOptions, parse_flow};
use tokenflow_core::{Clock, OAuthServer, OAuthServerSpec, SystemClock};
use tokenflow_engine::{Engine, Run, StaticServers};
use url::Url;

pub const REDIRECT_URI: &str = "http://localhost/oauth-callback";

pub fn flow(yaml: &str) -> Flow {
    parse_flow("test.yaml", yaml, &ParseOptions::default())
        .unwrap_or_else(|problems| panic!("{problems}"))
        .flow
}

pub fn server(id: &str, fields: Value) -> (String, OAuthServer) {
    let server = serde_json::from_value::<OAuthServerSpec>(fields)
        .unwrap()
        .validate(id)
        .unwrap();
    (id.to_owned(), server)
}

pub fn engine(servers: Vec<(String, OAuthServer)>) -> Engine {
    engine_with_clock(servers, Arc::new(SystemClock))
}

pub fn engine_with_clock(servers: Vec<(String, OAuthServer)>, clock: Arc<dyn Clock>) -> Engine {
    let http = build_client(Duration::from_secs(30)).unwrap();
    Engine::new(
        OAuthConnectors::new(http, clock.clone()),
        HttpConnector::build().unwrap(),
        Arc::new(StaticServers::new(
            servers.into_iter().collect::<BTreeMap<_, _>>(),
        )),
        clock,
        RedirectSettings {
            global: None,
            default: Url::parse(REDIRECT_URI).unwrap(),
            pending_ttl: Duration::from_secs(600),
        },
    )
}

pub fn inputs(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// The action ids of the run's records, in order.
pub fn trail(run: &Run) -> Vec<(String, Option<i32>)> {
    run.records
        .iter()
        .map(|r| (r.action.clone(), r.status_code))
        .collect()
}

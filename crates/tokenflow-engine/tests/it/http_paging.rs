//! `http_connector` with `paginate` (docs/connectors.md, "Pagination"): Graph's
//! `@odata.nextLink`, RFC 8288 `Link: rel="next"` and a JSONPath to the next URL, `max_pages`, the
//! items of every page in one array, the credentials on every page and never on another origin.
//! The APIs are local fakes serving fixed pages.

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::http_retry::{run_call, var};
use crate::support::engine;

/// Pages 1..=`count` at `/items?page=N`; each page lists its number twice and, except the last,
/// points to the next one as `link` makes it.
async fn pages(api: &MockServer, count: u32, link: impl Fn(&str, u32) -> ResponseTemplate) {
    for page in 1..=count {
        let next = format!("{}/items?page={}", api.uri(), page + 1);
        let template = if page < count {
            link(&next, page)
        } else {
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [page * 10 + 1, page * 10 + 2]}))
        };
        Mock::given(method("GET"))
            .and(path("/items"))
            .and(query_param("page", page.to_string()))
            .and(header("authorization", "Bearer page-token"))
            .respond_with(template)
            .mount(api)
            .await;
    }
}

fn odata(next: &str, page: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "@odata.context": "https://graph.example/$metadata#users",
        "value": [page * 10 + 1, page * 10 + 2],
        "@odata.nextLink": next,
    }))
}

fn items(run: &tokenflow_engine::Run) -> Value {
    serde_json::from_str(var(run, "content").as_str().unwrap()).unwrap()
}

const BEARER: &str = "auth: { bearer: page-token }";

#[tokio::test]
async fn graph_next_links_give_one_array_of_every_pages_items() {
    let api = MockServer::start().await;
    pages(&api, 3, odata).await;
    let run = run_call(
        &engine(Vec::new()),
        &format!("{}/items?page=1", api.uri()),
        &format!("{BEARER}, paginate: {{ next: odata }}"),
    )
    .await;
    assert_eq!(var(&run, "status"), json!(0), "{:?}", run.records);
    assert_eq!(items(&run), json!([11, 12, 21, 22, 31, 32]));
    assert_eq!(var(&run, "pages"), json!(3));
    assert_eq!(var(&run, "attempts"), json!(3));
    assert_eq!(var(&run, "code"), json!(200));
    assert_eq!(api.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn link_headers_lead_to_the_next_page() {
    let api = MockServer::start().await;
    pages(&api, 3, |next, page| {
        ResponseTemplate::new(200)
            .insert_header(
                "Link",
                format!("<{next}>; rel=\"next\", <https://elsewhere.example/>; rel=\"last\"")
                    .as_str(),
            )
            .set_body_json(json!([page * 10 + 1, page * 10 + 2]))
    })
    .await;
    let run = run_call(
        &engine(Vec::new()),
        &format!("{}/items?page=1", api.uri()),
        &format!("{BEARER}, paginate: {{ next: link, items: \"$[*]\" }}"),
    )
    .await;
    // The last page has the odata shape: `$[*]` matches its one array, whose elements are items.
    assert_eq!(items(&run), json!([11, 12, 21, 22, 31, 32]));
    assert_eq!(var(&run, "pages"), json!(3));
}

#[tokio::test]
async fn a_jsonpath_finds_a_relative_next_url_in_the_body() {
    let api = MockServer::start().await;
    pages(&api, 3, |_, page| {
        ResponseTemplate::new(200).set_body_json(json!({
            "value": [page * 10 + 1, page * 10 + 2],
            "paging": { "next": format!("items?page={}", page + 1) },
        }))
    })
    .await;
    let run = run_call(
        &engine(Vec::new()),
        &format!("{}/items?page=1", api.uri()),
        &format!("{BEARER}, paginate: {{ next: \"$.paging.next\", items: \"$.value\" }}"),
    )
    .await;
    assert_eq!(items(&run), json!([11, 12, 21, 22, 31, 32]));
    assert_eq!(var(&run, "pages"), json!(3));
}

#[tokio::test]
async fn max_pages_stops_with_a_warning() {
    let api = MockServer::start().await;
    pages(&api, 3, odata).await;
    let run = run_call(
        &engine(Vec::new()),
        &format!("{}/items?page=1", api.uri()),
        &format!("{BEARER}, paginate: {{ next: odata, max_pages: 2 }}"),
    )
    .await;
    assert_eq!(items(&run), json!([11, 12, 21, 22]));
    assert_eq!(var(&run, "pages"), json!(2));
    assert_eq!(api.received_requests().await.unwrap().len(), 2);
    assert_eq!(
        run.records[0].warnings,
        ["paginate.max_pages (2) reached; the API has more pages"]
    );
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .mount(&elsewhere)
        .await;
    let foreign = format!("{}/items?page=2", elsewhere.uri());
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(odata(&foreign, 1))
        .mount(&api)
        .await;
    let engine = engine(Vec::new());
    let url = format!("{}/items?page=1", api.uri());
    let run = run_call(
        &engine,
        &url,
        &format!("{BEARER}, paginate: {{ next: odata }}"),
    )
    .await;
    assert_eq!(var(&run, "status"), json!(-1));
    assert_eq!(var(&run, "error"), json!("cross_origin_next_link"));
    assert_eq!(var(&run, "pages"), json!(1));
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
    let description = run.records[0].error.clone().unwrap();
    assert!(!description.contains("page-token"), "{description}");

    // Named in allowed_origins, the other origin is followed.
    let run = run_call(
        &engine,
        &url,
        &format!(
            "{BEARER}, paginate: {{ next: odata, allowed_origins: [\"{}\"] }}",
            elsewhere.uri()
        ),
    )
    .await;
    assert_eq!(var(&run, "status"), json!(0), "{:?}", run.records);
    assert_eq!(items(&run), json!([11, 12]));
    assert_eq!(elsewhere.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_page_is_handed_to_the_flow_as_it_is() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(query_param("page", "1"))
        .respond_with(odata(&format!("{}/items?page=2", api.uri()), 1))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(500).set_body_string("broken"))
        .mount(&api)
        .await;
    let run = run_call(
        &engine(Vec::new()),
        &format!("{}/items?page=1", api.uri()),
        "paginate: { next: odata }",
    )
    .await;
    assert_eq!(var(&run, "status"), json!(0));
    assert_eq!(var(&run, "code"), json!(500));
    assert_eq!(var(&run, "content"), json!("broken"));
    assert_eq!(var(&run, "pages"), json!(2));
}

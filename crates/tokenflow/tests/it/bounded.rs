//! `tokenflow serve` stays bounded in memory, in its answers and on disk when a flow loops over an
//! API that answers 16 MiB bodies (docs/security.md, "Runs").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::serve::{API_KEY, Site, get_status, http, terminate};

const MIB: u64 = 1024 * 1024;

/// A local API whose `/big` answers 16 MiB of text; returns its URL and a call counter.
async fn big_api() -> (String, Arc<AtomicUsize>) {
    let body = axum::body::Bytes::from(vec![b'a'; 16 * MIB as usize]);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/big",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/big", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`: resident now; `VmHWM`: the peak).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// The database with its write-ahead log.
fn database_bytes(site: &Site) -> u64 {
    ["tokenflow.db", "tokenflow.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(site.dir.path().join("data").join(name)).ok())
        .map(|meta| meta.len())
        .sum()
}

async fn post_run(site: &Site, flow: &str) -> (Value, usize) {
    let response = http()
        .post(site.url(&format!("/api/flows/{flow}/runs")))
        .bearer_auth(API_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    (serde_json::from_str(&text).unwrap(), text.len())
}

async fn get_text(site: &Site, path: &str) -> String {
    let (status, text) = get_status(site, path).await;
    assert_eq!(status, 200, "{path}");
    text
}

#[tokio::test]
async fn a_loop_over_a_16_mib_api_stays_bounded_in_memory_answers_and_on_disk() {
    let (url, calls) = big_api().await;
    // `spin` fetches the body again and again until max_steps: each record keeps only a
    // summary of it. `hoard` keeps two bodies in variables, which passes the default
    // run_data_limit of 32 MiB.
    let spinning = format!(
        "id: spin\nmax_steps: 40\nactions:\n  fetch:\n    type: http_connector\n    input: {{ url: \"{url}\" }}\nsteps:\n  - {{ from: start, to: fetch }}\n  - {{ from: fetch, to: fetch, when: successful }}\n  - {{ from: fetch, to: stop }}\n"
    );
    let hoarding = format!(
        "id: hoard\nvariables:\n  first: {{}}\n  second: {{}}\nactions:\n  one:\n    type: http_connector\n    input: {{ url: \"{url}\" }}\n    output: {{ content: first }}\n  two:\n    type: http_connector\n    input: {{ url: \"{url}\" }}\n    output: {{ content: second }}\nsteps:\n  - {{ from: start, to: one }}\n  - {{ from: one, to: two }}\n  - {{ from: two, to: stop }}\n"
    );
    let site = Site::new("", &[("spin.yaml", spinning), ("hoard.yaml", hoarding)]);
    let server = site.start().await;
    let pid = server.id().unwrap();
    let before = memory(pid, "VmRSS:");

    let (run, answer) = post_run(&site, "spin").await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        40,
        "every iteration fetched 16 MiB"
    );
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["error"].as_str().unwrap(),
        "max_steps (40) reached before `fetch`: the flow may loop"
    );
    assert_eq!(run["actions_total"], 40);
    let content = &run["actions"][39]["outputs"]["content"];
    assert_eq!(content["truncated"], true, "{content}");
    assert_eq!(content["bytes"], 16 * MIB);
    assert!(answer < 256 * 1024, "the answer is {answer} bytes");
    // Reading the run back, whole or a page of all its records, stays as small.
    let id = run["id"].as_str().unwrap().to_owned();
    let shown = get_text(&site, &format!("/api/runs/{id}")).await;
    assert!(
        shown.len() < 256 * 1024,
        "GET answers {} bytes",
        shown.len()
    );
    let page = get_text(&site, &format!("/api/runs/{id}/actions?limit=1000")).await;
    assert!(page.len() < 256 * 1024, "a page is {} bytes", page.len());

    let (run, answer) = post_run(&site, "hoard").await;
    assert_eq!(calls.load(Ordering::SeqCst), 42);
    assert_eq!(run["status"], "failed");
    let reason = run["error"].as_str().unwrap();
    assert!(
        reason.starts_with("run_data_limit exceeded after `two`")
            && reason.ends_with("the limit is 33554432 bytes"),
        "{reason}"
    );
    // The body was kept once, in its variable; the record and the answer hold its summary.
    assert_eq!(run["actions"][0]["outputs"]["content"]["bytes"], 16 * MIB);
    assert_eq!(run["variables"]["first"]["bytes"], 16 * MIB);
    assert!(answer < 256 * 1024, "the answer is {answer} bytes");

    // The peak over everything above, and what stays.
    let peak = memory(pid, "VmHWM:");
    let after = memory(pid, "VmRSS:");
    let disk = database_bytes(&site);
    terminate(server).await;
    eprintln!(
        "server RSS before {} MiB, after {} MiB, peak {} MiB; database and WAL {} MiB",
        before / MIB,
        after / MIB,
        peak / MIB,
        disk / MIB
    );
    assert!(
        peak < 300 * MIB,
        "the server's peak RSS was {} MiB",
        peak / MIB
    );
    assert!(disk < 100 * MIB, "the database grew to {} MiB", disk / MIB);
}

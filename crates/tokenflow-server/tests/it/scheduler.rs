//! Schedules added, changed and removed through `PUT /api/flows/{id}` while the server runs, on
//! the injected clock: a schedule starts at its next due time after the change, and missed due
//! times are never replayed. The tests drive the scheduler's ticks themselves.

use std::sync::Arc;

use reqwest::Method;
use time::Duration;
use tokenflow_core::{Clock, ManualClock};
use tokenflow_runtime::scheduler::Scheduler;
use tokenflow_server::AppState;

use crate::support::{API_KEY, BuiltApp, Options, build_app};

/// The `ticker` flow with `schedule` (or none); `note` makes versions differ otherwise.
fn ticker(schedule: Option<&str>, note: &str) -> String {
    let schedule = schedule.map_or(String::new(), |s| format!("schedule: \"{s}\"\n"));
    format!(
        "id: ticker\ndescription: \"{note}\"\n{schedule}variables:\n  v: {{}}\nactions:\n  one:\n    type: extract_json\n    input: {{ json: \"[1]\", path: \"$[0]\" }}\n    output: {{ value: v }}\nsteps:\n  - {{ from: start, to: one }}\n  - {{ from: one, to: stop }}\n"
    )
}

/// An instance serving the API (no background tasks: the test ticks the scheduler).
struct Instance {
    url: String,
    state: AppState,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn instance() -> Instance {
    let BuiltApp {
        url,
        state,
        dir,
        clock,
        listener,
    } = build_app(Options {
        manual_clock: true,
        ..Options::default()
    })
    .await;
    let app = tokenflow_server::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Instance {
        url,
        state,
        clock: clock.unwrap(),
        http: reqwest::Client::builder().build().unwrap(),
        _dir: dir,
    }
}

impl Instance {
    async fn put(&self, yaml: String) {
        let response = self
            .http
            .request(Method::PUT, format!("{}/api/flows/ticker", self.url))
            .bearer_auth(API_KEY)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
    }

    async fn tick(&self, scheduler: &mut Scheduler) -> usize {
        scheduler.tick(&self.state).await.unwrap()
    }

    /// The claimed due times (unix seconds), oldest first.
    async fn firings(&self) -> Vec<i64> {
        self.state
            .store
            .firings("ticker", 1000)
            .await
            .unwrap()
            .iter()
            .map(|f| f.due)
            .collect()
    }
}

#[tokio::test]
async fn a_schedule_added_after_twenty_seconds_waits_for_its_next_due_time_then_fires_once_per_due_time()
 {
    let app = instance().await;
    let mut scheduler = Scheduler::new(app.clock.now());
    app.put(ticker(None, "plain")).await;
    assert_eq!(app.tick(&mut scheduler).await, 0);
    app.advance(20);
    assert_eq!(app.tick(&mut scheduler).await, 0);

    app.put(ticker(Some("* * * * * *"), "every second")).await;
    let added = app.clock.now().unix_timestamp();
    assert_eq!(
        app.tick(&mut scheduler).await,
        0,
        "no firing for the due times before the schedule existed"
    );
    for _ in 0..3 {
        app.advance(1);
        assert_eq!(app.tick(&mut scheduler).await, 1);
        assert_eq!(app.tick(&mut scheduler).await, 0, "once per due time");
    }
    assert_eq!(app.firings().await, [added + 1, added + 2, added + 3]);
}

#[tokio::test]
async fn a_schedule_removed_and_added_again_does_not_replay_the_due_times_in_between() {
    let app = instance().await;
    let mut scheduler = Scheduler::new(app.clock.now());
    app.put(ticker(Some("* * * * * *"), "first")).await;
    app.advance(1);
    assert_eq!(app.tick(&mut scheduler).await, 1);

    // Removed, and a tick sees it removed.
    app.put(ticker(None, "paused")).await;
    assert_eq!(app.tick(&mut scheduler).await, 0);
    app.advance(10);
    assert_eq!(app.tick(&mut scheduler).await, 0);
    app.put(ticker(Some("* * * * * *"), "again")).await;
    assert_eq!(app.tick(&mut scheduler).await, 0, "nothing replayed");
    app.advance(1);
    assert_eq!(app.tick(&mut scheduler).await, 1);

    // Removed and added again between two ticks.
    app.put(ticker(None, "paused again")).await;
    app.advance(10);
    app.put(ticker(Some("* * * * * *"), "back")).await;
    let back = app.clock.now().unix_timestamp();
    assert_eq!(app.tick(&mut scheduler).await, 0, "nothing replayed");
    app.advance(1);
    assert_eq!(app.tick(&mut scheduler).await, 1);
    assert_eq!(app.firings().await.last(), Some(&(back + 1)));
    assert_eq!(app.firings().await.len(), 3);
}

#[tokio::test]
async fn a_changed_schedule_starts_at_its_next_due_time_and_an_unchanged_one_misses_nothing() {
    let app = instance().await;
    let mut scheduler = Scheduler::new(app.clock.now());
    // Once a year: not due in the few seconds this test covers.
    app.put(ticker(Some("0 0 0 1 1 *"), "yearly")).await;
    app.advance(30);
    assert_eq!(app.tick(&mut scheduler).await, 0);
    app.put(ticker(Some("* * * * * *"), "every second")).await;
    assert_eq!(
        app.tick(&mut scheduler).await,
        0,
        "the new schedule replays nothing"
    );
    app.advance(1);
    assert_eq!(app.tick(&mut scheduler).await, 1);

    // A due time passes, then a new version keeps the schedule: that due time still fires.
    app.advance(1);
    let due = app.clock.now().unix_timestamp();
    app.put(ticker(Some("* * * * * *"), "reworded")).await;
    assert_eq!(app.tick(&mut scheduler).await, 1);
    assert_eq!(app.firings().await.last(), Some(&due));
}

#[tokio::test]
async fn two_instances_agree_on_where_an_added_schedule_starts_and_fire_each_due_time_once() {
    let app = instance().await;
    // Two instances on one store, started at different times.
    let mut first = Scheduler::new(app.clock.now());
    app.advance(5);
    let mut second = Scheduler::new(app.clock.now());
    app.advance(15);
    assert_eq!(app.tick(&mut first).await + app.tick(&mut second).await, 0);
    app.put(ticker(Some("* * * * * *"), "every second")).await;
    assert_eq!(app.tick(&mut first).await + app.tick(&mut second).await, 0);
    for _ in 0..3 {
        app.advance(1);
        assert_eq!(app.tick(&mut second).await + app.tick(&mut first).await, 1);
    }
    assert_eq!(app.firings().await.len(), 3);
}

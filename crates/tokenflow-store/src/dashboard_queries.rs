//! The dashboard's queries, written once for both backends: each backend gives its SQL text
//! ([`DashboardSql`]) and its pool; what is asked, bound and read is the same.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use time::OffsetDateTime;
use tokenflow_core::VaultEntryState;

use crate::at_rest::to_ms;
use crate::dashboard as rows;
use crate::{
    CountWindow, DashboardStats, DurationClassCount, FailureCause, FlowFailures, Result,
    ServerTokenCounts, StatusCount, StoreError, VaultExpiry,
};

/// A backend's SQL for the dashboard. The counter queries bind the window's period, start and
/// end first (and a limit fourth); `failure_causes` binds flow, since, sample and limit;
/// `vault_expiries` binds a limit.
pub(crate) struct DashboardSql {
    pub runs_ended_per_interval: &'static str,
    pub run_duration_classes: &'static str,
    pub flows_with_most_failures: &'static str,
    pub failure_causes: &'static str,
    pub token_requests_per_server: &'static str,
    pub vault_expiries: &'static str,
    pub vault_entries_by_state: &'static str,
}

/// A backend that answers the dashboard's queries with [`DashboardSql`].
pub(crate) trait DashboardBackend: Send + Sync {
    type Db: Database;
    const SQL: DashboardSql;
    fn read_pool(&self) -> &Pool<Self::Db>;
}

/// A value bound to a query: every parameter of the dashboard's queries is one of these.
enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

async fn fetch<'a, DB, T>(pool: &Pool<DB>, sql: &'a str, params: Vec<Param<'a>>) -> Result<Vec<T>>
where
    DB: Database,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    T: for<'r> FromRow<'r, <DB as Database>::Row> + Send + Unpin,
{
    let mut query = sqlx::query_as::<DB, T>(sql);
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(value),
            Param::Text(value) => query.bind(value),
        };
    }
    query.fetch_all(pool).await.map_err(StoreError::Database)
}

fn in_window(window: &CountWindow, limit: Option<u32>) -> Vec<Param<'static>> {
    let mut params = vec![
        Param::Int(window.period_ms),
        Param::Int(window.from_ms),
        Param::Int(window.to_ms),
    ];
    params.extend(limit.map(|limit| Param::Int(i64::from(limit))));
    params
}

#[async_trait]
impl<B> DashboardStats for B
where
    B: DashboardBackend,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'r> rows::StatusCountRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> rows::DurationClassRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> rows::FlowFailuresRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> rows::FailureCauseRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> rows::VaultExpiryRow: FromRow<'r, <B::Db as Database>::Row>,
{
    async fn runs_ended_per_interval(&self, window: &CountWindow) -> Result<Vec<StatusCount>> {
        let found = fetch(
            self.read_pool(),
            B::SQL.runs_ended_per_interval,
            in_window(window, None),
        )
        .await?;
        rows::status_counts(found)
    }

    async fn run_duration_classes(&self, window: &CountWindow) -> Result<Vec<DurationClassCount>> {
        let found = fetch(
            self.read_pool(),
            B::SQL.run_duration_classes,
            in_window(window, None),
        )
        .await?;
        Ok(rows::duration_classes(found))
    }

    async fn flows_with_most_failures(
        &self,
        window: &CountWindow,
        limit: u32,
    ) -> Result<Vec<FlowFailures>> {
        let found = fetch(
            self.read_pool(),
            B::SQL.flows_with_most_failures,
            in_window(window, Some(limit)),
        )
        .await?;
        Ok(rows::flow_failures(found))
    }

    async fn failure_causes(
        &self,
        flow_id: &str,
        since: OffsetDateTime,
        sample: u32,
        limit: u32,
    ) -> Result<Vec<FailureCause>> {
        let params = vec![
            Param::Text(flow_id),
            Param::Int(to_ms(since)),
            Param::Int(i64::from(sample)),
            Param::Int(i64::from(limit)),
        ];
        let found = fetch(self.read_pool(), B::SQL.failure_causes, params).await?;
        Ok(rows::failure_causes(found))
    }

    async fn token_requests_per_server(
        &self,
        window: &CountWindow,
        limit: u32,
    ) -> Result<Vec<ServerTokenCounts>> {
        let found = fetch(
            self.read_pool(),
            B::SQL.token_requests_per_server,
            in_window(window, Some(limit)),
        )
        .await?;
        Ok(rows::server_tokens(found))
    }

    async fn vault_expiries(&self, limit: u32) -> Result<Vec<VaultExpiry>> {
        let params = vec![Param::Int(i64::from(limit))];
        let found = fetch(self.read_pool(), B::SQL.vault_expiries, params).await?;
        rows::vault_expiries(found)
    }

    async fn vault_entries_by_state(&self) -> Result<Vec<(VaultEntryState, u64)>> {
        let found = fetch(self.read_pool(), B::SQL.vault_entries_by_state, vec![]).await?;
        rows::vault_states(found)
    }
}

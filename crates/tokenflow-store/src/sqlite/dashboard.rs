//! The SQLite SQL of the dashboard's queries (`crate::dashboard_queries` runs them): sums
//! over the counters of migration 9, the failure causes of a flow's newest failed runs (partial
//! index `runs_failed_by_flow`, then each run's last record by the primary key), and the vault
//! entries' expiries.

use super::SqliteStore;
use crate::dashboard_queries::{DashboardBackend, DashboardSql};

impl DashboardBackend for SqliteStore {
    type Db = sqlx::Sqlite;
    const SQL: DashboardSql = DashboardSql {
        runs_ended_per_interval: "SELECT bucket, status, SUM(runs) FROM run_counts \
            WHERE period_ms = ? AND bucket >= ? AND bucket < ? GROUP BY bucket, status ORDER BY bucket, status",
        run_duration_classes: "SELECT flow_id, duration_ms, SUM(runs) FROM run_durations \
            WHERE period_ms = ? AND bucket >= ? AND bucket < ? \
            GROUP BY flow_id, duration_ms ORDER BY flow_id, duration_ms",
        flows_with_most_failures: "SELECT flow_id, SUM(runs) AS failed FROM run_counts \
            WHERE period_ms = ? AND bucket >= ? AND bucket < ? AND status = 'failed' \
            GROUP BY flow_id ORDER BY failed DESC, flow_id LIMIT ?",
        failure_causes: "SELECT json_extract(a.json, '$.type') AS kind, json_extract(a.json, '$.status_code') AS code, json_extract(a.json, '$.outputs.error') AS error, \
            COUNT(*) AS n \
            FROM (SELECT id FROM runs \
                  WHERE flow_id = ? AND status = 'failed' AND ended_at >= ? \
                  ORDER BY ended_at DESC LIMIT ?) AS r \
            JOIN action_records a ON a.run_id = r.id \
             AND a.seq = (SELECT MAX(seq) FROM action_records WHERE run_id = r.id) \
            GROUP BY kind, code, error ORDER BY n DESC, kind, code, error LIMIT ?",
        token_requests_per_server: "SELECT server_id, SUM(requests), SUM(cache_hits) \
            FROM token_counts WHERE period_ms = ? AND bucket >= ? AND bucket < ? GROUP BY server_id \
            ORDER BY SUM(requests) + SUM(cache_hits) DESC, server_id LIMIT ?",
        vault_expiries: "SELECT name, server_id, state, expires_at FROM vault_entries \
            ORDER BY expires_at IS NULL, expires_at, name LIMIT ?",
        vault_entries_by_state: "SELECT state, COUNT(*) FROM vault_entries \
            GROUP BY state ORDER BY state",
    };

    fn read_pool(&self) -> &sqlx::Pool<Self::Db> {
        &self.pool
    }
}

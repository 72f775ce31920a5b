//! The PostgreSQL SQL of the dashboard's queries (`crate::dashboard_queries` runs them): sums
//! over the counters of migration 9, the failure causes of a flow's newest failed runs (partial
//! index `runs_failed_by_flow`, then each run's last record by the primary key), and the vault
//! entries' expiries.

use super::PostgresStore;
use crate::dashboard_queries::{DashboardBackend, DashboardSql};

impl DashboardBackend for PostgresStore {
    type Db = sqlx::Postgres;
    const SQL: DashboardSql = DashboardSql {
        runs_ended_per_interval: "SELECT bucket, status, SUM(runs)::bigint FROM run_counts \
            WHERE period_ms = $1 AND bucket >= $2 AND bucket < $3 GROUP BY bucket, status ORDER BY bucket, status",
        run_duration_classes: "SELECT flow_id, duration_ms, SUM(runs)::bigint FROM run_durations \
            WHERE period_ms = $1 AND bucket >= $2 AND bucket < $3 \
            GROUP BY flow_id, duration_ms ORDER BY flow_id, duration_ms",
        flows_with_most_failures: "SELECT flow_id, SUM(runs)::bigint AS failed FROM run_counts \
            WHERE period_ms = $1 AND bucket >= $2 AND bucket < $3 AND status = 'failed' \
            GROUP BY flow_id ORDER BY failed DESC, flow_id LIMIT $4",
        failure_causes: "SELECT a.json::jsonb->>'type' AS kind, (a.json::jsonb->>'status_code')::bigint AS code, a.json::jsonb->'outputs'->>'error' AS error, \
            COUNT(*) AS n \
            FROM (SELECT id FROM runs \
                  WHERE flow_id = $1 AND status = 'failed' AND ended_at >= $2 \
                  ORDER BY ended_at DESC LIMIT $3) AS r \
            JOIN action_records a ON a.run_id = r.id \
             AND a.seq = (SELECT MAX(seq) FROM action_records WHERE run_id = r.id) \
            GROUP BY kind, code, error ORDER BY n DESC, kind, code, error LIMIT $4",
        token_requests_per_server: "SELECT server_id, SUM(requests)::bigint, SUM(cache_hits)::bigint \
            FROM token_counts WHERE period_ms = $1 AND bucket >= $2 AND bucket < $3 GROUP BY server_id \
            ORDER BY SUM(requests) + SUM(cache_hits) DESC, server_id LIMIT $4",
        vault_expiries: "SELECT name, server_id, state, expires_at FROM vault_entries \
            ORDER BY expires_at IS NULL, expires_at, name LIMIT $1",
        vault_entries_by_state: "SELECT state, COUNT(*) FROM vault_entries \
            GROUP BY state ORDER BY state",
    };

    fn read_pool(&self) -> &sqlx::Pool<Self::Db> {
        &self.pool
    }
}

-- The dashboard's figures (docs/operations.md, "Dashboard"), kept as counters so that a window's
-- charts read a few thousand rows whatever the number of runs. Triggers maintain them in the
-- transaction of the write they count, on every write path (the runner, cancel, the sweeper),
-- each event once:
--   run_counts    a run that ended (ended_at set): by period, interval, flow and final status;
--                 read for runs per interval and failures per flow.
--   run_durations a completed or failed run: by period, interval, flow and duration class; read
--                 for the percentiles. Apart from run_counts so that counting reads few rows.
--   token_counts  a monitor record of an OAuth action that names its server: a token request,
--                 or a cache hit when the connector answered from its cache.
-- Intervals are aligned to multiples of the period since the Unix epoch (UTC); each event is
-- counted in the three periods the dashboard's windows use: 1 minute, 1 hour and 6 hours.
-- A duration class is the lower bound of its range; the bounds grow by about 20 % (at most 10 %
-- away from a range's middle), so a percentile is read to that precision.

CREATE TABLE count_periods (period_ms BIGINT PRIMARY KEY NOT NULL);
INSERT INTO count_periods (period_ms) VALUES (60000), (3600000), (21600000);

CREATE TABLE duration_classes (lower_ms BIGINT PRIMARY KEY NOT NULL);
INSERT INTO duration_classes (lower_ms) VALUES
    (0), (1), (2), (3), (4), (5), (6), (7), (8), (10), (12), (14),
    (17), (20), (24), (29), (35), (42), (50), (60), (72), (86), (103), (124),
    (149), (179), (215), (258), (310), (372), (446), (535), (642), (770), (924), (1109),
    (1331), (1597), (1916), (2299), (2759), (3311), (3973), (4768), (5722), (6866), (8239), (9887),
    (11864), (14237), (17084), (20501), (24601), (29521), (35425), (42510), (51012), (61214), (73457), (88148),
    (105778), (126934), (152321), (182785), (219342), (263210), (315852), (379022), (454826), (545791), (654949), (785939),
    (943127), (1131752), (1358102), (1629722), (1955666), (2346799), (2816159), (3379391), (4055269), (4866323), (5839588), (7007506),
    (8409007), (10090808), (12108970), (14530764), (17436917), (20924300), (25109160), (30130992), (36157190), (43388628), (52066354), (62479625),
    (74975550), (89970660), (107964792), (129557750), (155469300), (186563160), (223875792), (268650950), (322381140), (386857368), (464228842), (557074610),
    (668489532), (802187438), (962624926), (1155149911), (1386179893), (1663415872), (1996099046), (2395318855), (2874382626);

-- The shard spreads one interval's counter over a few rows on PostgreSQL, so that concurrent
-- transactions of different instances rarely wait for each other's row lock; SQLite has one
-- writer and uses shard 0. Readers sum over shards.
CREATE TABLE run_counts (
    period_ms BIGINT NOT NULL,
    bucket    BIGINT NOT NULL,   -- the interval's start, unix ms
    flow_id   TEXT NOT NULL,
    status    TEXT NOT NULL,
    shard     BIGINT NOT NULL,
    runs      BIGINT NOT NULL,
    PRIMARY KEY (period_ms, bucket, flow_id, status, shard)
);

CREATE TABLE run_durations (
    period_ms   BIGINT NOT NULL,
    bucket      BIGINT NOT NULL,
    flow_id     TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,   -- the duration class (its lower bound)
    shard       BIGINT NOT NULL,
    runs        BIGINT NOT NULL,
    PRIMARY KEY (period_ms, bucket, flow_id, duration_ms, shard)
);

CREATE TABLE token_counts (
    period_ms  BIGINT NOT NULL,
    bucket     BIGINT NOT NULL,
    server_id  TEXT NOT NULL,
    shard      BIGINT NOT NULL,
    requests   BIGINT NOT NULL,
    cache_hits BIGINT NOT NULL,
    PRIMARY KEY (period_ms, bucket, server_id, shard)
);

-- The causes of a flow's failures are read from its newest failed runs.
CREATE INDEX runs_failed_by_flow ON runs (flow_id, ended_at) WHERE status = 'failed';

CREATE FUNCTION tokenflow_count_run(r runs) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_counts (period_ms, bucket, flow_id, status, shard, runs)
    SELECT p.period_ms, r.ended_at - r.ended_at % p.period_ms, r.flow_id, r.status,
           hashtext(r.id) & 7, 1
    FROM count_periods p
    ON CONFLICT (period_ms, bucket, flow_id, status, shard)
    DO UPDATE SET runs = run_counts.runs + 1;
    IF r.status IN ('completed', 'failed') THEN
        INSERT INTO run_durations (period_ms, bucket, flow_id, duration_ms, shard, runs)
        SELECT p.period_ms, r.ended_at - r.ended_at % p.period_ms, r.flow_id,
               COALESCE((SELECT MAX(lower_ms) FROM duration_classes
                         WHERE lower_ms <= r.ended_at - r.started_at), 0),
               hashtext(r.id) & 7, 1
        FROM count_periods p
        ON CONFLICT (period_ms, bucket, flow_id, duration_ms, shard)
        DO UPDATE SET runs = run_durations.runs + 1;
    END IF;
END
$$;

CREATE FUNCTION runs_count_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ended_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.ended_at IS NULL) THEN
        PERFORM tokenflow_count_run(NEW);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_count_ended AFTER INSERT OR UPDATE OF ended_at ON runs
    FOR EACH ROW EXECUTE FUNCTION runs_count_ended();

-- The record's own start time (RFC 3339 in its JSON) places it in its interval.
CREATE FUNCTION action_records_count_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rec jsonb := NEW.json::jsonb;
    at_ms bigint;
    hit bigint;
BEGIN
    IF COALESCE(rec->>'type', '') NOT IN ('oauth_server_login', 'oauth_user_login', 'oauth_refresh_token',
            'oauth_token_exchange', 'oauth_device_login')
        OR jsonb_typeof(rec->'oauth_server') IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    at_ms := floor(extract(epoch FROM (rec->>'started_at')::timestamptz) * 1000)::bigint;
    hit := CASE WHEN rec->'response'->>'token_cache' = 'hit' THEN 1 ELSE 0 END;
    INSERT INTO token_counts (period_ms, bucket, server_id, shard, requests, cache_hits)
    SELECT p.period_ms, at_ms - at_ms % p.period_ms, rec->>'oauth_server',
           hashtext(NEW.run_id) & 7, 1 - hit, hit
    FROM count_periods p
    ON CONFLICT (period_ms, bucket, server_id, shard)
    DO UPDATE SET requests = token_counts.requests + excluded.requests,
                  cache_hits = token_counts.cache_hits + excluded.cache_hits;
    RETURN NULL;
END
$$;
-- The WHEN clause keeps the JSON of other records unparsed (serde_json writes no spaces).
CREATE TRIGGER action_records_count_tokens AFTER INSERT ON action_records
    FOR EACH ROW WHEN (NEW.json LIKE '%"type":"oauth%') EXECUTE FUNCTION action_records_count_tokens();

-- What is already stored is counted once, here.
INSERT INTO run_counts (period_ms, bucket, flow_id, status, shard, runs)
SELECT p.period_ms, r.ended_at - r.ended_at % p.period_ms, r.flow_id, r.status, 0, COUNT(*)
FROM count_periods p, runs r WHERE r.ended_at IS NOT NULL
GROUP BY 1, 2, 3, 4;
INSERT INTO run_durations (period_ms, bucket, flow_id, duration_ms, shard, runs)
SELECT p.period_ms, r.ended_at - r.ended_at % p.period_ms, r.flow_id,
       COALESCE((SELECT MAX(lower_ms) FROM duration_classes
                 WHERE lower_ms <= r.ended_at - r.started_at), 0) AS duration_ms, 0, COUNT(*)
FROM count_periods p, runs r
WHERE r.ended_at IS NOT NULL AND r.status IN ('completed', 'failed')
GROUP BY 1, 2, 3, 4;

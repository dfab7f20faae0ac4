-- Per-client-IP counters for unauthenticated requests that create state (SPEC §6): the
-- authorization endpoint, the hosted interaction pages and end-session. A fixed window per key,
-- shared by every instance; one atomic upsert per request (src/db/request-rate-limits.ts).
CREATE TABLE request_rate_limits (
  key text PRIMARY KEY,
  window_start timestamptz NOT NULL,
  hits integer NOT NULL
);

-- Pruning finds windows that have ended.
CREATE INDEX request_rate_limits_window_start_idx ON request_rate_limits (window_start);

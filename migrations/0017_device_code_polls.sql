-- RFC 8628 §3.5: how fast each pending device code is polled (SPEC §12). One row per device code
-- (keyed by a hash of it, never the code itself): when it was last polled and the interval its
-- client must keep, which grows by 5 s with every slow_down. One atomic upsert per poll, so every
-- instance sees the same pace (src/db/device-code-polls.ts).
CREATE TABLE device_code_polls (
  code_hash text PRIMARY KEY,
  polled_at timestamptz NOT NULL,
  interval_seconds integer NOT NULL,
  too_fast boolean NOT NULL DEFAULT false,
  expires_at timestamptz NOT NULL
);

-- Pruning finds codes that have expired.
CREATE INDEX device_code_polls_expires_at_idx ON device_code_polls (expires_at);

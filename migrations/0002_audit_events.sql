-- Audit trail: one row per admin change and security event, written in the same transaction as
-- the change. Append-only: Gatehouse has no UPDATE or DELETE path for it except retention pruning.
CREATE TABLE audit_events (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  type        text        NOT NULL,
  actor       text,
  target      text,
  client_ip   text,
  request_id  text,
  outcome     text        NOT NULL DEFAULT 'success' CHECK (outcome IN ('success', 'failure')),
  details     jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_type_idx ON audit_events (type, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id DESC);
CREATE INDEX audit_events_target_idx ON audit_events (target, id DESC);
CREATE INDEX audit_events_occurred_at_idx ON audit_events (occurred_at);

-- TOTP second factor (SPEC §4). The secret is sealed with MASTER_KEY like the signing keys.
-- last_time_step is the RFC 6238 time step of the last accepted code: a code is accepted only
-- by an atomic "WHERE last_time_step < step" update, so two instances cannot both accept it.
CREATE TABLE user_totp (
  user_id        uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret_sealed  text        NOT NULL,
  confirmed_at   timestamptz,
  last_time_step bigint,
  created_at     timestamptz NOT NULL DEFAULT now()
);

-- Single-use recovery codes, stored as keyed hashes, shown once at enrollment.
CREATE TABLE user_recovery_codes (
  user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  code_hash  text        NOT NULL,
  used_at    timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, code_hash)
);

-- People who sign in through the hosted pages.
CREATE TABLE users (
  id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  seq                 bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  -- Unique case-insensitively: the normalised form (NFKC, lower case) is what is compared.
  username            text        NOT NULL,
  username_normalized text        NOT NULL UNIQUE,
  email               text,
  email_verified      boolean     NOT NULL DEFAULT false,
  name                text,
  roles               text[]      NOT NULL DEFAULT '{}',
  password_hash       text        NOT NULL,
  disabled            boolean     NOT NULL DEFAULT false,
  mfa_required        boolean     NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_email_idx ON users (lower(email) text_pattern_ops);
CREATE INDEX users_username_prefix_idx ON users (username_normalized text_pattern_ops);

-- Sign-in throttling counters (SPEC §4), shared by every instance. One row per key
-- ('account:<id or normalised name>', 'ip:<address>'): failures in the current window, and until
-- when further attempts are refused.
CREATE TABLE login_throttle (
  key          text        PRIMARY KEY,
  failures     integer     NOT NULL DEFAULT 0,
  window_start timestamptz NOT NULL DEFAULT now(),
  locked_until timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_throttle_updated_at_idx ON login_throttle (updated_at);

-- First-party clients skip the consent page (their consent is the organisation's own).
ALTER TABLE clients ADD COLUMN first_party boolean NOT NULL DEFAULT false;

-- The person a session, grant, code or refresh token belongs to: disabling or deleting a user
-- removes them all at once.
ALTER TABLE oidc_models ADD COLUMN account_id text;
CREATE INDEX oidc_models_account_id_idx ON oidc_models (account_id) WHERE account_id IS NOT NULL;

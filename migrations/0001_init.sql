-- Gatehouse foundation schema. Never edit after release: add a new numbered file instead.

-- oidc-provider's models (sessions, interactions, codes, grants, refresh tokens, ...) share one
-- table keyed by (model, id); the columns beside the payload are the provider's lookup keys.
CREATE TABLE oidc_models (
  model       text        NOT NULL,
  id          text        NOT NULL,
  payload     jsonb       NOT NULL,
  grant_id    text,
  client_id   text,
  uid         text,
  user_code   text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_models_grant_id_idx ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_client_id_idx ON oidc_models (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX oidc_models_uid_idx ON oidc_models (uid) WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_user_code_idx ON oidc_models (user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_models_expires_at_idx ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;

-- Resource servers (RFC 8707 resource indicators): what a token's audience can be.
CREATE TABLE resource_servers (
  id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Creation order for keyset pagination (timestamps can tie; JavaScript dates drop microseconds).
  seq                  bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  identifier           text        NOT NULL UNIQUE,
  name                 text        NOT NULL,
  scopes               text[]      NOT NULL DEFAULT '{}',
  access_token_ttl     integer     NOT NULL DEFAULT 900 CHECK (access_token_ttl BETWEEN 1 AND 86400),
  signing_alg          text        NOT NULL DEFAULT 'ES256' CHECK (signing_alg IN ('ES256', 'EdDSA', 'PS256', 'RS256')),
  inner_encryption_jwk jsonb,
  encrypt_whole_token  boolean     NOT NULL DEFAULT false,
  built_in             boolean     NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Clients: owned by the admin API, read by oidc-provider's Client model (one source of truth).
-- metadata holds the RFC 7591 fields; the secret is only ever stored as a keyed hash.
CREATE TABLE clients (
  client_id          text        PRIMARY KEY,
  seq                bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  client_name        text        NOT NULL,
  client_secret_hash text,
  metadata           jsonb       NOT NULL,
  allowed_resources  text[]      NOT NULL DEFAULT '{}',
  require_mfa        boolean     NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_client_name_idx ON clients (client_name text_pattern_ops, seq);

-- Signing keys. Private halves are sealed with MASTER_KEY (AES-256-GCM envelope); a raw
-- SELECT shows only ciphertext. Retired keys stay published until their tokens expire.
CREATE TABLE signing_keys (
  kid              text        PRIMARY KEY,
  alg              text        NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'PS256', 'RS256')),
  status           text        NOT NULL CHECK (status IN ('active', 'retired')),
  public_jwk       jsonb       NOT NULL,
  private_jwk_sealed text      NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  retired_at       timestamptz,
  publish_until    timestamptz
);
-- At most one active key per algorithm.
CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE status = 'active';

-- Server-held secrets (cookie signing keys, the client-secret HMAC key), sealed with MASTER_KEY.
CREATE TABLE server_secrets (
  name       text        PRIMARY KEY,
  sealed     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

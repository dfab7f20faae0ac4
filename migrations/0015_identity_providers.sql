-- Issue 18 / SPEC §10: upstream OpenID Connect identity providers (corporate SSO), and the
-- people's identities at them.
CREATE TABLE identity_providers (
  id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Creation order for keyset pagination, as for resource servers.
  seq                    bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  name                   text        NOT NULL,
  -- The upstream's issuer identifier; its discovery document is read from it.
  issuer                 text        NOT NULL,
  client_id              text        NOT NULL,
  -- MASTER_KEY envelope (purpose 'identity_providers:<id>'); NULL for a public client (PKCE only).
  client_secret_sealed   text,
  scopes                 text[]      NOT NULL DEFAULT ARRAY['openid', 'email', 'profile'],
  -- Lowercase domains; a login_hint in one of them goes straight to this provider.
  email_domains          text[]      NOT NULL DEFAULT '{}',
  create_users           boolean     NOT NULL DEFAULT false,
  link_by_verified_email boolean     NOT NULL DEFAULT false,
  -- {"username": claim, "email": claim, "name": claim}: upstream claim names.
  claim_mappings         jsonb       NOT NULL DEFAULT '{}',
  -- [{"claim": name, "value": string, "role": Gatehouse role}].
  role_mappings          jsonb       NOT NULL DEFAULT '[]',
  sync                   text        NOT NULL DEFAULT 'on_create' CHECK (sync IN ('on_create', 'every_login')),
  trust_upstream_mfa     boolean     NOT NULL DEFAULT false,
  enabled                boolean     NOT NULL DEFAULT true,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now()
);

-- A person's identity at a provider: found by (provider, upstream sub), never by email alone.
CREATE TABLE user_identities (
  provider_id   uuid        NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
  subject       text        NOT NULL,
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- The upstream's email when it was last seen, for people reading the admin API.
  email         text,
  -- Roles the provider's role_mappings gave at the last sync: a role the upstream no longer
  -- grants is removed, roles given otherwise are kept.
  mapped_roles  text[]      NOT NULL DEFAULT '{}',
  linked_at     timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz,
  PRIMARY KEY (provider_id, subject),
  -- One identity per provider and person.
  UNIQUE (provider_id, user_id)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

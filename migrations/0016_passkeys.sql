-- Passkeys (WebAuthn, SPEC §4). One row per registered credential: its id (base64url, as the
-- browser reports it), the COSE public key as the authenticator sent it (any algorithm the
-- library verifies), the signature counter (an assertion whose counter does not move forward is
-- refused: a cloned authenticator), transports as hints for the browser, and the backup flags
-- (a backed-up, synced passkey is `swk`, a device-bound one `hwk`, RFC 8176).
CREATE TABLE user_passkeys (
  credential_id    text        PRIMARY KEY,
  user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  public_key       bytea       NOT NULL,
  sign_count       bigint      NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
  transports       text[]      NOT NULL DEFAULT '{}',
  backup_eligible  boolean     NOT NULL,
  backed_up        boolean     NOT NULL,
  name             text        NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_used_at     timestamptz
);
CREATE INDEX user_passkeys_user_id_idx ON user_passkeys (user_id);

-- WebAuthn challenges: one per interaction and ceremony, short-lived, single use. A challenge is
-- consumed by DELETE ... RETURNING, so of two answers sent in parallel only one finds it. A new
-- options request for the same interaction and ceremony replaces the previous challenge.
CREATE TABLE passkey_challenges (
  interaction_uid text        NOT NULL,
  ceremony        text        NOT NULL CHECK (ceremony IN ('register', 'second_factor', 'sign_in')),
  challenge       text        NOT NULL,
  -- The person the ceremony is for (registration, second factor); NULL for a sign-in without a username.
  user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (interaction_uid, ceremony)
);
CREATE INDEX passkey_challenges_expires_at_idx ON passkey_challenges (expires_at);

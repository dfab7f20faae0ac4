-- Wrong second-factor codes per sign-in attempt (SPEC §4: five end the attempt). One row per
-- attempt (a random id the interaction remembers after a correct password); every code post
-- takes one of its five tries with an atomic "codes < 5" update before the code is checked, so
-- concurrent posts, on any instance, get no more tries than sequential ones.
CREATE TABLE sign_in_code_attempts (
  attempt_id text        PRIMARY KEY,
  account_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  codes      integer     NOT NULL DEFAULT 0,
  expires_at timestamptz NOT NULL
);
CREATE INDEX sign_in_code_attempts_expires_at_idx ON sign_in_code_attempts (expires_at);

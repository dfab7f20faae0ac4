-- Issue 13: the next signing key is published before it signs (status 'next'), and a compromised
-- key can be revoked (status 'revoked': out of the JWKS at once, its tokens refused).
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_status_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_status_check CHECK (status IN ('next', 'active', 'retired', 'revoked'));
ALTER TABLE signing_keys ADD COLUMN revoked_at timestamptz;
-- At most one next key per algorithm, as for active keys.
CREATE UNIQUE INDEX signing_keys_one_next_per_alg ON signing_keys (alg) WHERE status = 'next';

-- Every instance rebuilds its provider when the key set changes; this announces each committed
-- change on the channel of migrations/0005, so a revoked key stops signing and verifying on every
-- instance at once rather than at the next poll. Payload: 'signing_key:' (one per transaction).
CREATE FUNCTION gatehouse_notify_signing_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('gatehouse_changes', 'signing_key:');
  RETURN NULL;
END;
$$;

CREATE TRIGGER signing_keys_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON signing_keys
  FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_notify_signing_keys();

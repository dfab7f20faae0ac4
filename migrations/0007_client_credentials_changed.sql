-- SPEC §5: "An admin token stops working within a few seconds of its client being deleted or its
-- secret rotated." Access tokens are stateless JWTs, so the admin API compares a token's `iat`
-- with the moment its client's credentials last changed. A trigger sets that moment, whatever
-- made the change (the admin API, the CLI, the bootstrap upsert with a new secret, an operator's
-- own SQL): a new secret hash, or a new key set for private_key_jwt. clock_timestamp(), not now():
-- the time of the change itself, not of the start of its transaction.
ALTER TABLE clients ADD COLUMN credentials_changed_at timestamptz;

CREATE FUNCTION gatehouse_client_credentials_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.client_secret_hash IS DISTINCT FROM OLD.client_secret_hash
     OR NEW.metadata -> 'jwks' IS DISTINCT FROM OLD.metadata -> 'jwks'
     OR NEW.metadata -> 'jwks_uri' IS DISTINCT FROM OLD.metadata -> 'jwks_uri' THEN
    NEW.credentials_changed_at := clock_timestamp();
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER clients_credentials_changed
  BEFORE UPDATE ON clients
  FOR EACH ROW EXECUTE FUNCTION gatehouse_client_credentials_changed();

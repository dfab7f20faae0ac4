-- Performance issue 23: the login page lists the enabled identity providers (SPEC §10) on every
-- render, and a login_hint's email domain picks one; every instance caches that list. Each
-- committed change to the table is announced on the channel of migrations/0005, and the list is
-- reloaded. Payload: 'identity_provider:' (one per statement: the whole list is reloaded).
CREATE FUNCTION gatehouse_notify_identity_providers() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('gatehouse_changes', 'identity_provider:');
  RETURN NULL;
END;
$$;

CREATE TRIGGER identity_providers_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON identity_providers
  FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_notify_identity_providers();

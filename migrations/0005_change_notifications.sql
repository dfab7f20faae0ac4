-- Every Gatehouse instance caches clients and resource servers for the token path (issue 9).
-- These triggers announce each committed change on the gatehouse_changes channel, so every
-- instance drops its copy at once, whatever made the change: the admin API, the CLI, or an
-- operator's own SQL. PostgreSQL delivers a NOTIFY only when its transaction commits.
-- Payloads: 'client:<client_id>' and 'resource_server:<identifier>'.
CREATE FUNCTION gatehouse_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  kind text := CASE TG_TABLE_NAME WHEN 'clients' THEN 'client' ELSE 'resource_server' END;
  key_column text := CASE TG_TABLE_NAME WHEN 'clients' THEN 'client_id' ELSE 'identifier' END;
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('gatehouse_changes', kind || ':' || (to_jsonb(OLD) ->> key_column));
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('gatehouse_changes', kind || ':' || (to_jsonb(NEW) ->> key_column));
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER clients_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON clients
  FOR EACH ROW EXECUTE FUNCTION gatehouse_notify_change();

CREATE TRIGGER resource_servers_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON resource_servers
  FOR EACH ROW EXECUTE FUNCTION gatehouse_notify_change();

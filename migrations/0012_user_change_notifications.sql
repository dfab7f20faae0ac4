-- Issue 15 / SPEC §7: the gateway decides on a person's roles and status from its own cache of
-- the users table. Each committed change to what a decision reads (username, email, name, roles,
-- disabled) or a person's removal is announced on the channel of migrations/0005, so every
-- instance drops its copy at once. Sign-ins (which touch other columns) are not announced.
-- Payload: 'user:<id>'.
CREATE FUNCTION gatehouse_notify_user_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('gatehouse_changes', 'user:' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END)::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER users_notify_change
  AFTER INSERT OR DELETE OR UPDATE OF username, email, name, roles, disabled ON users
  FOR EACH ROW EXECUTE FUNCTION gatehouse_notify_user_change();

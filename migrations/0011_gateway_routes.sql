-- Issue 15 / SPEC §7: the gateway's routes. A route says which requests (host, path prefix,
-- methods) need which token (resource_server audience, scopes, roles, MFA), or none (anonymous).
CREATE TABLE gateway_routes (
  id                       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  -- Creation order for keyset pagination, as for resource servers.
  seq                      bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
  -- Lowercase; an exact host (optionally with :port) or a leading '*.' wildcard.
  host                     text        NOT NULL,
  path_prefix              text        NOT NULL CHECK (path_prefix LIKE '/%'),
  -- NULL: every method. Otherwise sorted and deduplicated by the service, so the unique index
  -- below sees one spelling per set.
  methods                  text[]      CHECK (methods IS NULL OR cardinality(methods) > 0),
  -- An identifier of resource_servers; only an anonymous route may have none. Not a foreign key:
  -- the service checks it, and a resource server's identifier never changes.
  resource_server          text,
  required_scopes          text[]      NOT NULL DEFAULT '{}',
  required_roles           text[]      NOT NULL DEFAULT '{}',
  require_mfa              boolean     NOT NULL DEFAULT false,
  anonymous                boolean     NOT NULL DEFAULT false,
  browser_sign_in          boolean     NOT NULL DEFAULT false,
  upstream_token           text        NOT NULL DEFAULT 'pass' CHECK (upstream_token IN ('pass', 'exchange')),
  upstream_resource_server text,
  identity_headers         text        NOT NULL DEFAULT 'public' CHECK (identity_headers IN ('public', 'trusted', 'none')),
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CHECK (anonymous OR resource_server IS NOT NULL),
  CHECK (NOT anonymous OR (cardinality(required_scopes) = 0 AND cardinality(required_roles) = 0 AND NOT require_mfa))
);

-- One route per (host, prefix, method set); '*' stands for "all methods" (no method is spelled so).
CREATE UNIQUE INDEX gateway_routes_match_unique ON gateway_routes (host, path_prefix, (coalesce(methods, ARRAY['*'])));

-- Every instance caches the route table for the gateway's hot path; each committed change is
-- announced on the channel of migrations/0005 and the table is reloaded. Payload:
-- 'gateway_route:' (one per statement: the whole table is reloaded, not one row).
CREATE FUNCTION gatehouse_notify_gateway_routes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('gatehouse_changes', 'gateway_route:');
  RETURN NULL;
END;
$$;

CREATE TRIGGER gateway_routes_notify_change
  AFTER INSERT OR UPDATE OR DELETE ON gateway_routes
  FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_notify_gateway_routes();

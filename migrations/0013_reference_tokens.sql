-- Issue 15 / SPEC §7 "Reference tokens outside": a resource server may get opaque access tokens
-- from /token ('reference'); only introspection and the gateway accept them, and the gateway can
-- hand the upstream the double-wrapped JWT instead. 'jwt' keeps today's behaviour.
ALTER TABLE resource_servers ADD COLUMN token_format text NOT NULL DEFAULT 'jwt' CHECK (token_format IN ('jwt', 'reference'));

-- Issue 16 / SPEC §8: a resource server may take only sender-constrained tokens (DPoP- or
-- certificate-bound); /token refuses a plain request for it with invalid_request.
ALTER TABLE resource_servers ADD COLUMN require_sender_constraint boolean NOT NULL DEFAULT false;

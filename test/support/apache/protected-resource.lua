-- The protected resource behind mod_auth_openidc: answers with what it was handed for the
-- accepted token (REMOTE_USER and the OIDC_CLAIM_* variables), one "name=value" a line.
function handle(r)
  r.content_type = 'text/plain'
  local env = r.subprocess_env
  r:puts('user=', r.user or '', '\n')
  r:puts('client_id=', env['OIDC_CLAIM_client_id'] or '', '\n')
  r:puts('aud=', env['OIDC_CLAIM_aud'] or '', '\n')
  r:puts('presented_x5t#S256=', env['TB_SSL_CLIENT_CERT_FINGERPRINT'] or '', '\n')
  return apache2.OK
end

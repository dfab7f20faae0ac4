import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, type X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { access, chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { generateKeyPair, SignJWT } from 'jose';
import { decodeJwt } from '../support/admin-api.js';
import { commandAvailable } from '../support/gateway.js';
import { createPki, curl, type Issued, type Pki } from '../support/pki.js';
import { REPO_ROOT } from '../support/process.js';
import { freePort, startTestServer, waitFor, type TestServer } from '../support/server.js';

/**
 * SPEC §8 from the other side: an independent resource server, Debian's Apache with
 * mod_auth_openidc in OAuth 2.0 resource-server mode, terminating TLS with an optional client
 * certificate, verifying Gatehouse's JWT access tokens against the jwks_uri from discovery and
 * enforcing RFC 8705 §3 certificate binding (OIDCOAuthAccessTokenBindingPolicy enforced): a
 * token bound with cnf["x5t#S256"] is accepted only over a connection presenting that very
 * certificate. Virtual hosts with the `required` and `optional` policies pin what those let
 * through (a stolen bound token, used with no certificate or another one).
 *
 * mod_auth_openidc 2.4 reads the presented certificate's thumbprint from the
 * TB_SSL_CLIENT_CERT_FINGERPRINT request variable, which mod_ssl does not set; a mod_lua hook
 * (test/support/apache/certificate-thumbprint.lua) sets it from the verified certificate.
 */

const APACHE = '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';
const apacheAvailable =
  (await commandAvailable(APACHE, ['-v'])) &&
  (await access(path.join(MODULES, 'mod_auth_openidc.so')).then(() => true, () => false)) &&
  (await commandAvailable('curl', ['--version'])) &&
  (await commandAvailable('openssl', ['version']));

const API = 'https://api.apache-rs.test';
const OTHER_API = 'https://other.apache-rs.test';
const LUA = path.join(REPO_ROOT, 'test/support/apache');
const POLICIES = ['enforced', 'required', 'optional'] as const;

const run = promisify(execFile);
const thumbprint = (certificate: X509Certificate) => createHash('sha256').update(certificate.raw).digest('base64url');

describe('certificate-bound tokens at Apache mod_auth_openidc (RFC 8705 §3)', { skip: apacheAvailable ? false : 'needs apache2 and libapache2-mod-auth-openidc (.ci/run installs them)' }, () => {
  let pki: Pki;
  let server: TestServer;
  let orders: Issued;
  let other: Issued;
  let dir: string;
  let apache: ChildProcess;
  let apacheOutput = '';
  /** One virtual host per OIDCOAuthAccessTokenBindingPolicy (a server-wide directive). */
  const sites: Record<string, string> = {};
  let enforced: string;
  let bound: string;
  let plain: string;
  /** Bound to the same certificate, for another resource server. */
  let elsewhere: string;

  const gatehouse = (pathname: string, options: Omit<Parameters<typeof curl>[1], 'ca'>) => curl(`${server.url}${pathname}`, { ca: pki.ca.certFile, ...options });
  const resource = (site: string, token: string | undefined, cert?: Issued, location = '/resource') =>
    curl(`${site}${location}`, { ca: pki.ca.certFile, ...(cert === undefined ? {} : { cert }), headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  /** The RFC 6750 challenge Apache answers with (curl's %header{} write-out). */
  const challenge = async (site: string, token: string, cert?: Issued) => {
    const args = ['-sS', '--cacert', pki.ca.certFile, '-o', '/dev/null', '-w', '%{http_code} %header{www-authenticate}', '-H', `authorization: Bearer ${token}`, `${site}/resource`];
    if (cert !== undefined) args.push('--cert', cert.certFile, '--key', cert.keyFile);
    return (await run('curl', args)).stdout;
  };
  const apacheLog = () => readFile(path.join(dir, 'error.log'), 'utf8').catch(() => '');
  const fields = (body: string) => Object.fromEntries(body.split('\n').filter(Boolean).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));

  before(async () => {
    pki = await createPki();
    const serverCert = await pki.issue('server', '/CN=127.0.0.1', { san: 'IP:127.0.0.1,DNS:localhost' });
    orders = await pki.issue('orders', '/O=Example/CN=orders service');
    other = await pki.issue('other', '/O=Example/CN=other service');
    server = await startTestServer({ tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, clientCaFile: pki.ca.certFile } });

    const issued = await gatehouse('/token', { basic: [server.admin.clientId, server.admin.clientSecret], form: { grant_type: 'client_credentials', scope: 'admin:clients admin:resource-servers' } });
    assert.equal(issued.status, 200, issued.body);
    const admin = { authorization: `Bearer ${(JSON.parse(issued.body) as { access_token: string }).access_token}` };
    for (const identifier of [API, OTHER_API]) {
      const created = await gatehouse('/admin/v1/resource-servers', { method: 'POST', json: { identifier, name: identifier, scopes: ['api:read'] }, headers: admin });
      assert.equal(created.status, 201, created.body);
    }
    const client = async (body: Record<string, unknown>) => {
      const answer = await gatehouse('/admin/v1/clients', { method: 'POST', json: { grant_types: ['client_credentials'], allowed_resources: [API, OTHER_API], token_endpoint_auth_method: 'tls_client_auth', ...body }, headers: admin });
      assert.equal(answer.status, 201, answer.body);
      return (JSON.parse(answer.body) as { client_id: string }).client_id;
    };
    const token = async (clientId: string, cert: Issued, resource = API) => {
      const answer = await gatehouse('/token', { cert, form: { grant_type: 'client_credentials', client_id: clientId, resource, scope: 'api:read' } });
      assert.equal(answer.status, 200, answer.body);
      return (JSON.parse(answer.body) as { access_token: string }).access_token;
    };
    const boundClient = await client({ client_name: 'Bound', tls_client_auth_subject_dn: 'CN=orders service,O=Example', tls_client_certificate_bound_access_tokens: true });
    bound = await token(boundClient, orders);
    elsewhere = await token(boundClient, orders, OTHER_API);
    plain = await token(await client({ client_name: 'Plain', tls_client_auth_subject_dn: 'CN=other service,O=Example' }), other);
    assert.deepEqual(decodeJwt(bound).payload['cnf'], { 'x5t#S256': thumbprint(orders.certificate) });
    assert.equal(decodeJwt(plain).payload['cnf'], undefined);

    const discovery = JSON.parse((await gatehouse('/.well-known/openid-configuration', {})).body) as { jwks_uri: string };

    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-apache-'));
    // Run as root (CI), Apache serves requests as nobody, which must read the Lua scripts and the
    // CA bundle it fetches the JWKS with (the certificates and keys are read at start-up, as root).
    await chmod(dir, 0o755);
    const caBundle = path.join(dir, 'ca.pem');
    for (const [from, to] of [[pki.ca.certFile, caBundle], ...['certificate-thumbprint.lua', 'protected-resource.lua'].map((name) => [path.join(LUA, name), path.join(dir, name)])] as const) {
      await copyFile(from, to);
      await chmod(to, 0o644);
    }
    const ports: Record<string, number> = {};
    for (const policy of POLICIES) {
      ports[policy] = await freePort();
      sites[policy] = `https://127.0.0.1:${ports[policy]}`;
    }
    enforced = sites['enforced']!;
    const site = (port: number, policy: string) => [
      `<VirtualHost 127.0.0.1:${port}>`,
      '  SSLEngine on',
      `  SSLCertificateFile ${serverCert.certFile}`,
      `  SSLCertificateKeyFile ${serverCert.keyFile}`,
      `  SSLCACertificateFile ${pki.ca.certFile}`,
      '  SSLVerifyClient optional',
      '  SSLVerifyDepth 1',
      `  OIDCOAuthAccessTokenBindingPolicy ${policy}`,
      // mod_auth_openidc checks neither aud nor typ of a JWT access token by itself (RFC 9068 §4 asks
      // the resource server to check aud): /resource does it with Require claim, /any-audience shows why.
      ...['/resource', '/any-audience'].flatMap((location) => [
        `  <Location ${location}>`,
        '    AuthType oauth20',
        ...(location === '/resource' ? ['    <RequireAll>', '      Require valid-user', `      Require claim aud:${API}`, '    </RequireAll>'] : ['    Require valid-user']),
        `    LuaHookAccessChecker ${dir}/certificate-thumbprint.lua certificate_thumbprint`,
        `    LuaMapHandler ^${location}$ ${dir}/protected-resource.lua handle`,
        '  </Location>',
      ]),
      '</VirtualHost>',
    ];
    const config = [
      `ServerRoot ${dir}`,
      'ServerName 127.0.0.1',
      `PidFile ${dir}/apache.pid`,
      `DefaultRuntimeDir ${dir}`,
      `ErrorLog ${dir}/error.log`,
      'LogLevel warn auth_openidc:info',
      ...['mpm_event', 'authn_core', 'authz_core', 'authz_user', 'auth_openidc', 'ssl', 'socache_shmcb', 'lua'].map((name) => `LoadModule ${name}_module ${MODULES}/mod_${name}.so`),
      ...(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : []),
      ...POLICIES.map((policy) => `Listen 127.0.0.1:${ports[policy]}`),
      `SSLSessionCache shmcb:${dir}/ssl_scache(512000)`,
      // Gatehouse's keys, over HTTPS with the test CA (mod_auth_openidc's outgoing libcurl calls).
      `OIDCOAuthVerifyJwksUri ${discovery.jwks_uri}`,
      `OIDCCABundlePath ${caBundle}`,
      'OIDCOAuthSSLValidateServer On',
      ...POLICIES.flatMap((policy) => site(ports[policy]!, policy)),
      '',
    ];
    await writeFile(path.join(dir, 'apache2.conf'), config.join('\n'));
    apache = spawn(APACHE, ['-f', path.join(dir, 'apache2.conf'), '-X'], { stdio: ['ignore', 'pipe', 'pipe'] });
    apache.stdout?.on('data', (chunk: Buffer) => (apacheOutput += chunk.toString('utf8')));
    apache.stderr?.on('data', (chunk: Buffer) => (apacheOutput += chunk.toString('utf8')));
    const answering = async () => (await Promise.all(POLICIES.map(async (policy) => (await resource(sites[policy]!, undefined)).status))).every((status) => status === 401);
    // Stops polling as soon as Apache exits (a configuration error), not at the deadline.
    const ready = waitFor(async () => apache.exitCode !== null || (await answering()), 30_000, 100).then(() => (apache.exitCode === null ? 'ready' : 'exited'));
    if ((await ready.catch(() => 'timeout')) !== 'ready') {
      throw new Error(`Apache did not start:\n${apacheOutput}\n${await apacheLog()}`);
    }
  });
  after(async () => {
    if (apache !== undefined && apache.exitCode === null) {
      apache.kill('SIGTERM');
      await once(apache, 'exit');
    }
    await server?.close();
    await pki?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('the bound token over a connection with its own certificate: 200, and the resource sees who it is', async () => {
    const answer = await resource(enforced, bound, orders);
    assert.equal(answer.status, 200, `${answer.body}\n${await apacheLog()}`);
    const seen = fields(answer.body);
    const claims = decodeJwt(bound).payload;
    assert.equal(seen['user'], claims['sub']);
    assert.equal(seen['client_id'], claims['client_id']);
    assert.equal(seen['aud'], API);
    assert.equal(seen['presented_x5t#S256'], thumbprint(orders.certificate));
  });

  test('the bound token with another certificate from the same CA, or with none: 401 invalid_token', async () => {
    for (const cert of [other, undefined]) {
      const answer = await challenge(enforced, bound, cert);
      assert.match(answer, /^401 Bearer .*error="invalid_token"/, cert?.certificate.subject ?? 'no certificate');
    }
    // The thumbprint is a request variable from mod_ssl's verified certificate, never a header.
    const smuggled = await curl(`${enforced}/resource`, { ca: pki.ca.certFile, headers: { authorization: `Bearer ${bound}`, 'TB_SSL_CLIENT_CERT_FINGERPRINT': thumbprint(orders.certificate), 'TB-SSL-Client-Cert-Fingerprint': thumbprint(orders.certificate) } });
    assert.equal(smuggled.status, 401);
  });

  test('a token signed by another key, or one whose cnf was rewritten to the thief’s certificate: 401', async () => {
    const { header, payload } = decodeJwt(bound);
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: String(header['kid']) }).sign(privateKey);
    assert.equal((await resource(enforced, forged, orders)).status, 401);
    const [encodedHeader, , signature] = bound.split('.');
    const rebound = Buffer.from(JSON.stringify({ ...payload, cnf: { 'x5t#S256': thumbprint(other.certificate) } })).toString('base64url');
    assert.equal((await resource(enforced, `${encodedHeader}.${rebound}.${signature}`, other)).status, 401);
    // The untouched token still passes, so the refusals above are the signature's doing.
    assert.equal((await resource(enforced, bound, orders)).status, 200);
  });

  test('a bound token for another resource server, with the right certificate: refused by the aud check, accepted without it', async () => {
    assert.equal(decodeJwt(elsewhere).payload['aud'], OTHER_API);
    const refused = await resource(enforced, elsewhere, orders);
    assert.equal(refused.status, 401, refused.body);
    const accepted = await resource(enforced, elsewhere, orders, '/any-audience');
    assert.equal(accepted.status, 200, accepted.body);
    assert.equal(fields(accepted.body)['aud'], OTHER_API);
  });

  test('a plain (unbound) token is refused under enforced, with or without a certificate', async () => {
    assert.equal((await resource(enforced, plain, other)).status, 401);
    assert.equal((await resource(enforced, plain)).status, 401);
  });

  test('only enforced holds a bound token to its certificate: what each policy of mod_auth_openidc 2.4 lets through', async () => {
    // util.c oidc_util_json_validate_cnf*: on a missing or mismatching certificate, `optional`
    // accepts, `required` accepts only when no certificate was presented at all (so a thief
    // without one gets in), `enforced` refuses. A token without cnf: refused by required and enforced.
    const expected: Record<(typeof POLICIES)[number], Record<string, number>> = {
      enforced: { own: 200, other: 401, none: 401, plain: 401 },
      required: { own: 200, other: 401, none: 200, plain: 401 },
      optional: { own: 200, other: 200, none: 200, plain: 200 },
    };
    for (const policy of POLICIES) {
      const seen = {
        own: (await resource(sites[policy]!, bound, orders)).status,
        other: (await resource(sites[policy]!, bound, other)).status,
        none: (await resource(sites[policy]!, bound)).status,
        plain: (await resource(sites[policy]!, plain)).status,
      };
      assert.deepEqual(seen, expected[policy], policy);
    }
    const accepted = await resource(sites['optional']!, plain);
    assert.equal(fields(accepted.body)['client_id'], decodeJwt(plain).payload['client_id']);
  });
});

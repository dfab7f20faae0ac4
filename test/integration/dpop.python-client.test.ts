import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { adminToken, createClient, createResourceServer, introspectToken, type ClientBody } from '../support/admin-api.js';
import { commandAvailable } from '../support/gateway.js';
import { startTestServer, type TestServer } from '../support/server.js';

/**
 * SPEC §8 DPoP (RFC 9449) with a client that shares no code with Gatehouse or jose: Debian's
 * python3 with python3-jwcrypto (key, proofs, thumbprint) and python3-requests. The script
 * (test/fixtures/dpop_client.py) only reports what it saw; the assertions are here. Debian's
 * interpreter is named by path and run isolated (-I), so a pyenv python3 on PATH, PYTHONPATH or
 * user site-packages never stand in for it.
 */

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../fixtures/dpop_client.py', import.meta.url));
const ORDERS = 'https://orders.dpop-python.example';

const pythonAvailable = await commandAvailable(PYTHON, ['-I', '-c', 'import jwcrypto, requests']);

/** What one request got: status, `error` and whether a DPoP-Nonce header came back. */
interface Observed {
  readonly status: number;
  readonly error: string | null;
  readonly dpop_nonce_header: boolean;
}

/** The script's report (see dpop_client.py). */
interface Report {
  readonly token_endpoint: string;
  readonly dpop_signing_alg_values_supported: string[] | null;
  readonly thumbprint: string;
  readonly challenge: Observed;
  readonly token: Observed & {
    readonly token_type: string | null;
    readonly access_token?: string;
    readonly typ?: string;
    readonly signature_verified?: boolean;
    readonly cnf_jkt?: string | null;
    readonly jkt_matches?: boolean;
  };
  readonly replay: Observed;
  readonly wrong_htu: Observed;
  readonly wrong_htm: Observed;
}

describe('DPoP with an independent Python client (jwcrypto, requests)', { skip: pythonAvailable ? false : `needs ${PYTHON} with python3-jwcrypto and python3-requests (.ci/run installs them)` }, () => {
  let server: TestServer;
  let client: ClientBody;
  let report: Report;

  before(async () => {
    server = await startTestServer();
    const admin = await adminToken(server);
    await createResourceServer(server, { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'] }, admin);
    client = await createClient(server, { client_name: 'python dpop', grant_types: ['client_credentials'], allowed_resources: [ORDERS] }, admin);
    const { stdout } = await run(PYTHON, ['-I', '-B', SCRIPT, '--issuer', server.issuer, '--client-id', client.client_id, '--resource', ORDERS, '--scope', 'orders:read'], {
      // Only what the script needs; the secret stays off its command line.
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', GATEHOUSE_CLIENT_SECRET: client.client_secret ?? '' },
      timeout: 30_000,
    });
    report = JSON.parse(stdout) as Report;
  });
  after(async () => {
    await server?.close();
  });

  test('it finds the token endpoint and ES256 through discovery', () => {
    assert.equal(report.token_endpoint, `${server.issuer}/token`);
    assert.ok(report.dpop_signing_alg_values_supported?.includes('ES256'), JSON.stringify(report.dpop_signing_alg_values_supported));
  });

  test('a proof without a nonce is challenged: 400 use_dpop_nonce with a DPoP-Nonce header', () => {
    assert.deepEqual(report.challenge, { status: 400, error: 'use_dpop_nonce', dpop_nonce_header: true });
  });

  test('with the nonce it gets a DPoP token, signed by a JWKS key, cnf.jkt its jwcrypto thumbprint', () => {
    const { token } = report;
    assert.equal(token.status, 200, JSON.stringify(token));
    assert.equal(token.token_type, 'DPoP');
    assert.equal(token.typ, 'at+jwt');
    assert.equal(token.signature_verified, true);
    assert.equal(token.cnf_jkt, report.thumbprint);
    assert.equal(token.jkt_matches, true);
  });

  test('introspection by the client keeps the binding: token_type DPoP, cnf.jkt the Python key', async () => {
    assert.equal(typeof report.token.access_token, 'string');
    const answer = await introspectToken(server, { client_id: client.client_id, client_secret: client.client_secret ?? '' }, report.token.access_token!);
    assert.equal(answer.status, 200);
    assert.equal(answer.body['active'], true);
    assert.equal(answer.body['token_type'], 'DPoP');
    assert.deepEqual(answer.body['cnf'], { jkt: report.thumbprint });
    assert.equal(answer.body['client_id'], client.client_id);
  });

  test('the very same proof sent again is refused as invalid_dpop_proof', () => {
    assert.equal(report.replay.status, 400);
    assert.equal(report.replay.error, 'invalid_dpop_proof');
  });

  test('a proof for another endpoint (htu) or another method (htm) is refused as invalid_dpop_proof', () => {
    for (const [label, observed] of [['htu', report.wrong_htu], ['htm', report.wrong_htm]] as const) {
      assert.equal(observed.status, 400, `${label}: ${JSON.stringify(observed)}`);
      assert.equal(observed.error, 'invalid_dpop_proof', `${label}: ${JSON.stringify(observed)}`);
    }
  });
});

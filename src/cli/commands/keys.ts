import { listQuery } from '../../management/pagination.js';
import { parseOrThrow } from '../../management/errors.js';
import { rotateKeysBody } from '../../management/keys/schema.js';
import type { KeyResponse } from '../../management/keys/service.js';
import { SIGNING_ALGS } from '../../crypto/signing-keys.js';
import { EXIT, PAGE_OPTIONS, pageHint, pageQueryOf, printJson, table, type Command, type Output } from '../command.js';
import { withServices } from '../context.js';

function printKeys(output: Output, keys: readonly KeyResponse[]): void {
  output.out(table(['KID', 'ALG', 'STATUS', 'CREATED_AT', 'PUBLISHED_UNTIL'], keys.map((key) => [key.kid, key.alg, key.status, key.created_at, key.publish_until ?? ''])));
}

export const keyCommands: readonly Command[] = [
  {
    path: ['keys', 'list'],
    summary: 'list signing keys, newest first',
    description: [
      'Lists token signing keys, newest first, as GET /admin/v1/keys does: next keys are published in /jwks ahead of use and become active at the next rotation; active keys sign; retired keys are still published for the tokens they signed; expired keys are gone from /jwks; revoked keys were taken out of /jwks at once. Private key material is never shown.',
    ],
    options: { ...PAGE_OPTIONS },
    examples: ['gatehouse keys list', 'gatehouse keys list --json'],
    async run(invocation) {
      const query = parseOrThrow(listQuery, pageQueryOf(invocation), 'input');
      const page = await withServices(invocation.output, ({ services }) => services.keys.list(query));
      if (invocation.output.json) printJson(invocation.output, page);
      else {
        printKeys(invocation.output, page.items);
        pageHint(invocation.output, page.next_cursor);
      }
      return EXIT.ok;
    },
  },
  {
    path: ['keys', 'rotate'],
    args: '[ALG ...]',
    positionals: { min: 0, max: SIGNING_ALGS.length },
    fieldSources: { algs: 'ALG' },
    summary: 'new active signing keys (default: every algorithm)',
    description: [
      `For each algorithm named (${SIGNING_ALGS.join(', ')}; default: all of them), makes the next key (already published in /jwks) active and publishes a fresh next key, as POST /admin/v1/keys/rotate does. The old key stays in /jwks until every token it signed has expired (a day and five minutes). Running servers pick up the new keys at once (or within KEY_REFRESH_INTERVAL_MS), without a restart. Prints the new active keys.`,
    ],
    examples: ['gatehouse keys rotate', 'gatehouse keys rotate ES256'],
    async run(invocation) {
      const algs = [...new Set(invocation.positionals)];
      const body = parseOrThrow(rotateKeysBody, algs.length === 0 ? undefined : { algs }, 'input');
      const keys = await withServices(invocation.output, ({ services, audit }) => services.keys.rotate(body?.algs, audit));
      if (invocation.output.json) printJson(invocation.output, { items: keys });
      else printKeys(invocation.output, keys);
      return EXIT.ok;
    },
  },
  {
    path: ['keys', 'revoke'],
    args: 'KID',
    positionals: { min: 1, max: 1 },
    summary: 'emergency: take a signing key out of /jwks at once',
    description: [
      'Revokes a compromised signing key, as POST /admin/v1/keys/{kid}/revoke does: it leaves /jwks at once on every server, introspection answers active: false for the tokens it signed, and resource servers refuse them at their next JWKS refresh. Revoking the active key first makes the next key active and publishes a fresh next key, so tokens keep being issued. A key already revoked exits 4 (conflict); an unknown kid exits 3.',
    ],
    examples: ['gatehouse keys revoke 3hT1lq2o0C9rYb1x', 'gatehouse keys revoke 3hT1lq2o0C9rYb1x --json'],
    async run(invocation) {
      const kid = invocation.positionals[0] ?? '';
      const key = await withServices(invocation.output, ({ services, audit }) => services.keys.revoke(kid, audit));
      if (invocation.output.json) printJson(invocation.output, key);
      else printKeys(invocation.output, [key]);
      return EXIT.ok;
    },
  },
];

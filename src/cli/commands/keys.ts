import { listQuery } from '../../admin/pagination.js';
import { parseOrThrow } from '../../admin/problem.js';
import { rotateKeysBody } from '../../admin/keys/schema.js';
import type { KeyResponse } from '../../admin/keys/service.js';
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
      'Lists token signing keys, newest first, as GET /admin/v1/keys does: active keys sign; retired keys are still published in /jwks for the tokens they signed; expired keys are gone from /jwks. Private key material is never shown.',
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
      `Makes a new active signing key for each algorithm named (${SIGNING_ALGS.join(', ')}; default: all of them), as POST /admin/v1/keys/rotate does. The old key stays in /jwks until every token it signed has expired (a day and five minutes). Running servers pick up the new keys within KEY_REFRESH_INTERVAL_MS, without a restart. Prints the new keys.`,
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
];

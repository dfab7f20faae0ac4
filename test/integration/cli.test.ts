import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { spawnGatehouse } from '../support/process.js';

describe('operator CLI: keys', () => {
  let database: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    database = await createTestDatabase();
    env = {
      DATA_DIR: database.dataDir,
      MASTER_KEY: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
      ...(database.url === undefined ? {} : { DATABASE_URL: database.url }),
    };
  });
  after(() => database.drop());

  async function cli(...args: string[]) {
    const run = spawnGatehouse(env, 'cli', args);
    const code = await run.exited;
    return { code, ...run.output };
  }

  test('on an empty database the first command prints the generated admin client once', async () => {
    const first = await cli('keys', 'list');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /client_id: +\S+\n +client_secret: +[\w-]{43}/);
    const second = await cli('keys', 'list');
    assert.doesNotMatch(second.stdout, /client_secret/);
  });

  test('keys rotate makes a new active key and keeps the old one published', async () => {
    const before = (await cli('keys', 'list')).stdout;
    const oldKid = /^(\S+)\tES256\tactive/m.exec(before)?.[1];
    assert.ok(oldKid);
    const rotated = await cli('keys', 'rotate', 'ES256');
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKid = /^(\S+)\tES256\tactive/m.exec(rotated.stdout)?.[1];
    assert.ok(newKid && newKid !== oldKid);
    const after = (await cli('keys', 'list')).stdout;
    assert.match(after, new RegExp(`^${newKid}\\tES256\\tactive`, 'm'));
    assert.match(after, new RegExp(`^${oldKid}\\tES256\\tretired`, 'm'));
  });

  test('bad arguments exit 2 with usage, not a stack trace', async () => {
    for (const args of [['keys', 'rotate', 'HS256'], ['keys', 'explode'], ['nonsense']]) {
      const run = await cli(...args);
      assert.equal(run.code, 2, args.join(' '));
      assert.match(run.stderr, /^gatehouse: /);
      assert.doesNotMatch(run.stderr, /\n\s+at /);
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnGatehouse, waitUntilReady, type GatehouseProcess } from '../support/process.js';
import { freePort } from '../support/server.js';

describe('embedded database: one process per DATA_DIR', () => {
  let dataDir: string;
  let server: GatehouseProcess;
  let env: Record<string, string>;

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-lock-'));
    const port = await freePort();
    env = { DATA_DIR: dataDir, MASTER_KEY: randomBytes(32).toString('base64url'), LOG_LEVEL: 'warn', PORT: String(port), HOST: '127.0.0.1' };
    server = spawnGatehouse(env);
    await waitUntilReady(`http://127.0.0.1:${port}`);
  });
  after(async () => {
    server.kill('SIGTERM');
    await server.exited;
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a second process refuses to open a data dir in use, naming the holder', async () => {
    const cli = spawnGatehouse(env, 'cli', ['keys', 'list']);
    assert.equal(await cli.exited, 1);
    assert.match(cli.output.stderr, new RegExp(`in use by process ${server.child.pid}`));
  });

  test('after the holder stops, the data dir opens again', async () => {
    server.kill('SIGTERM');
    assert.equal(await server.exited, 0);
    const cli = spawnGatehouse(env, 'cli', ['keys', 'list']);
    assert.equal(await cli.exited, 0, cli.output.stderr);
  });
});

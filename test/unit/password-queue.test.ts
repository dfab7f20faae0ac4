import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fairLimiter, PasswordCheckRefused } from '../../src/accounts/passwords.js';

/** A task that runs until released, recording when it started. */
function gate(started: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return {
    task: async () => {
      started.push(name);
      await done;
      return name;
    },
    release: () => release(),
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('the password queue (src/accounts/passwords.ts fairLimiter)', () => {
  test('freed slots go round the addresses in turn: a bystander waits for one turn of the flood, not for all of it', async () => {
    const queue = fairLimiter({ concurrency: 1, perIpLimit: 4, totalLimit: 64 });
    const started: string[] = [];
    const flood = ['f1', 'f2', 'f3', 'f4'].map((name) => gate(started, name));
    const floodRuns = flood.map((g) => queue.run('203.0.113.66', g.task));
    await tick();
    // Arrives after the whole flood is queued.
    const bystander = gate(started, 'b1');
    const bystanderRun = queue.run('198.51.100.20', bystander.task);
    await tick();
    assert.deepEqual(started, ['f1']);

    // Turns go by address in the order addresses began waiting: the flood's turn, then the bystander's.
    flood[0]!.release();
    await floodRuns[0];
    await tick();
    assert.deepEqual(started, ['f1', 'f2']);
    flood[1]!.release();
    await floodRuns[1];
    await tick();
    assert.deepEqual(started, ['f1', 'f2', 'b1'], 'the bystander runs next, ahead of f3 and f4');
    bystander.release();
    assert.equal(await bystanderRun, 'b1');
    for (const g of flood.slice(2)) g.release();
    assert.deepEqual(await Promise.all(floodRuns), ['f1', 'f2', 'f3', 'f4']);
    assert.equal(queue.held(), 0, 'nothing stays held');
  });

  test('one address holds at most its share; beyond it a check is refused before any work, with Retry-After', async () => {
    const queue = fairLimiter({ concurrency: 1, perIpLimit: 2, totalLimit: 3 });
    const started: string[] = [];
    const held = [gate(started, 'a1'), gate(started, 'a2')];
    const runs = held.map((g) => queue.run('203.0.113.66', g.task));
    const refused = await queue.run('203.0.113.66', () => Promise.resolve('a3')).catch((error: unknown) => error);
    assert.ok(refused instanceof PasswordCheckRefused && refused.scope === 'ip' && refused.retryAfterSeconds >= 1);
    // Another address still gets in, until the whole queue is full.
    const other = gate(started, 'b1');
    const otherRun = queue.run('198.51.100.20', other.task);
    const full = await queue.run('192.0.2.7', () => Promise.resolve('c1')).catch((error: unknown) => error);
    assert.ok(full instanceof PasswordCheckRefused && full.scope === 'total');
    // Operators' hashing is never refused.
    const operator = queue.run('operator', () => Promise.resolve('op'), false);
    for (const g of [...held, other]) g.release();
    assert.deepEqual(await Promise.all([...runs, otherRun, operator]), ['a1', 'a2', 'b1', 'op']);
    assert.deepEqual(started, ['a1', 'a2', 'b1']);
  });
});

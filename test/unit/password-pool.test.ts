import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import argon2 from 'argon2';
import { createPasswordPool, PASSWORD_PROCESS_NICE } from '../../src/accounts/password-pool.js';
import { PASSWORD_PARAMS } from '../../src/accounts/passwords.js';

const params = PASSWORD_PARAMS;

/** Niceness of each thread of a process, from /proc/<pid>/task/<tid>/stat (field 19). */
function threadNiceness(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; count fields after its closing parenthesis.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('argon2 in a low-priority child process (src/accounts/password-pool.ts)', () => {
  test('hashes and verifies in the child, whose every thread runs at a lower priority (niceness 5) and whose environment holds no secret', async () => {
    process.env['GATEHOUSE_TEST_SECRET'] = 'must-not-reach-the-child';
    const pool = createPasswordPool({ params });
    try {
      const hash = await pool.hash('correct horse battery staple');
      assert.match(hash, /^\$argon2id\$v=19\$/);
      assert.equal(argon2.needsRehash(hash, params), false, 'made with the project\'s parameters');
      assert.equal(await argon2.verify(hash, 'correct horse battery staple'), true, 'the child made a real argon2id hash');
      assert.equal(await pool.verify(hash, 'correct horse battery staple'), true);
      assert.equal(await pool.verify(hash, 'correct horse battery stapler'), false);
      assert.equal(await pool.verify(undefined, 'anything'), false, 'an unknown account is verified against the dummy hash: false');
      await assert.rejects(pool.verify('not a hash', 'x'));
      assert.deepEqual(pool.counts(), { process: 5, inProcess: 0 });

      const child = pool.process();
      assert.ok(child !== undefined && child.pid !== process.pid);
      assert.equal(PASSWORD_PROCESS_NICE, 5);
      assert.equal(child.nice, PASSWORD_PROCESS_NICE);
      const niceness = threadNiceness(child.pid);
      // libuv's pool threads (where argon2 ran), V8's, and the main thread: all of them.
      assert.ok(niceness.length >= 4, `threads: ${niceness.length}`);
      assert.deepEqual(new Set(niceness), new Set([PASSWORD_PROCESS_NICE]), `niceness per thread: ${niceness.join(',')}`);
      assert.equal(threadNiceness(process.pid).every((n) => n === 0), true, 'this process keeps its priority');

      const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0').filter(Boolean);
      // Its pool size, Node's own IPC variables, and malloc's arena bound when this process has one: nothing else.
      assert.ok(environ.includes('UV_THREADPOOL_SIZE=2'), 'libuv pool sized to the two hashes at a time');
      assert.deepEqual(environ.filter((entry) => !/^(UV_THREADPOOL_SIZE|MALLOC_ARENA_MAX|NODE_CHANNEL_FD|NODE_CHANNEL_SERIALIZATION_MODE)=/.test(entry)), []);
    } finally {
      delete process.env['GATEHOUSE_TEST_SECRET'];
      await pool.close();
    }
  });

  test('concurrent jobs each get their own answer', async () => {
    const pool = createPasswordPool({ params });
    try {
      const passwords = Array.from({ length: 6 }, (_, index) => `password number ${index}`);
      const hashes = await Promise.all(passwords.map((password) => pool.hash(password)));
      assert.equal(new Set(hashes).size, 6, 'a fresh salt each');
      const checks = await Promise.all(
        passwords.flatMap((password, index) => [pool.verify(hashes[index], password), pool.verify(hashes[(index + 1) % 6], password)]),
      );
      assert.deepEqual(checks, passwords.flatMap(() => [true, false]));
    } finally {
      await pool.close();
    }
  });

  test('a child killed mid-verify fails no check: its jobs finish in this process, and a new child starts later', async () => {
    const errors: Error[] = [];
    const pool = createPasswordPool({ params, onProcessError: (error) => errors.push(error) });
    try {
      const hash = await pool.hash('survives a crash');
      const first = pool.process()!;
      const checks = [pool.verify(hash, 'survives a crash'), pool.verify(hash, 'wrong')];
      process.kill(first.pid, 'SIGKILL');
      assert.deepEqual(await Promise.all(checks), [true, false]);
      assert.equal(pool.counts().inProcess, 2, 'both orphaned checks ran here');
      assert.match(errors[0]?.message ?? '', /password process exited \(SIGKILL\)/);

      // After the respawn delay the next job starts a new child.
      const second = await until('a new child', async () => {
        assert.equal(await pool.verify(hash, 'survives a crash'), true);
        const current = pool.process();
        return current !== undefined && current.pid !== first.pid ? current : undefined;
      });
      assert.equal(second.nice, PASSWORD_PROCESS_NICE);
    } finally {
      await pool.close();
    }
  });

  test('an idle child does not keep the server process alive; close() ends it', async () => {
    // A process that hashes once and never closes the pool must still exit by itself.
    const script = `import { createPasswordPool } from ${JSON.stringify(new URL('../../src/accounts/password-pool.ts', import.meta.url).href)};
      const pool = createPasswordPool({ params: { type: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } });
      await pool.hash('x');
      console.log(pool.process().pid);`;
    const node = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    node.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => node.on('exit', resolve));
    assert.equal(code, 0);
    const orphan = Number(output.trim());
    assert.ok(orphan > 0);
    // Its child saw the IPC channel close and exited too (gone, or a zombie no one has reaped).
    await until('the orphaned child to exit', () => {
      try {
        const stat = readFileSync(`/proc/${orphan}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z') ? true : undefined;
      } catch {
        return true;
      }
    });

    const pool = createPasswordPool({ params });
    await pool.hash('y');
    const pid = pool.process()!.pid;
    await pool.close();
    assert.equal(pool.process(), undefined);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'ended and reaped');
    await createPasswordPool({ params }).close();
  });
});

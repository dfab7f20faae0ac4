import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { restartDelayMs } from '../../src/cluster.js';

const POSTGRES = { DATABASE_URL: 'postgres://gatehouse@db.example:5432/gatehouse' };

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  assert.fail('expected a ConfigError');
}

describe('WORKERS', () => {
  test('defaults to 1: this process serves alone, on either database', () => {
    assert.equal(loadConfig({}).workers, 1);
    assert.equal(loadConfig({ WORKERS: '' }).workers, 1);
    assert.equal(loadConfig({ WORKERS: '1' }).workers, 1);
  });

  test('takes a whole number, or auto for the cores this process may use', () => {
    assert.equal(loadConfig({ ...POSTGRES, WORKERS: '2' }).workers, 2);
    assert.equal(loadConfig({ ...POSTGRES, WORKERS: ' 8 ' }).workers, 8);
    assert.equal(loadConfig({ ...POSTGRES, WORKERS: 'auto' }).workers, Math.min(64, availableParallelism()));
  });

  test('anything else is one line naming WORKERS and the value', () => {
    for (const value of ['0', '-1', '1.5', 'two', '65', '2e1', 'AUTO ', 'auto2']) {
      const lines = problems({ ...POSTGRES, WORKERS: value });
      assert.equal(lines.length, 1, `${value}: ${lines.join(' | ')}`);
      assert.equal(lines[0], `WORKERS must be a whole number from 1 to 64, or auto (got ${JSON.stringify(value)})`);
    }
  });

  test('more than one without DATABASE_URL is refused: PGlite serves one process', () => {
    for (const value of ['2', 'auto']) {
      const lines = problems({ WORKERS: value });
      assert.equal(lines.length, 1, lines.join(' | '));
      assert.match(lines[0] ?? '', /^WORKERS must be 1 when DATABASE_URL is unset: embedded PGlite serves one process; set DATABASE_URL \(PostgreSQL\) to run several \(got "/);
    }
  });
});

describe('worker restart back-off', () => {
  test('starts at a quarter second, doubles with each failure in a row, and stops at 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(restartDelayMs), [250, 500, 1000, 2000, 4000]);
    assert.equal(restartDelayMs(8), 30_000);
    assert.equal(restartDelayMs(1_000), 30_000);
  });
});

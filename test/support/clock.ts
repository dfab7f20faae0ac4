import { mock } from 'node:test';

const STEP_MS = 30_000;

export interface FrozenClock {
  /** The frozen time, in ms since the epoch (what `Date.now()` returns in this process). */
  now(): number;
  /** Moves the clock forward by `steps` TOTP time steps (30 s each). */
  advanceSteps(steps?: number): void;
  /** Restores the real `Date`. */
  restore(): void;
}

/**
 * Freezes `Date` for this test process (servers started by tests run in it), in the middle of a
 * 30 s TOTP step, so time-dependent tests move the clock instead of sleeping or hoping that no
 * step boundary falls between generating a code and checking it. Call it before starting the
 * servers: they capture `Date.now` when they are built.
 */
export function freezeClock(): FrozenClock {
  const real = Date.now();
  const start = real - (real % STEP_MS) + STEP_MS / 2;
  mock.timers.enable({ apis: ['Date'], now: start });
  return {
    now: () => Date.now(),
    advanceSteps: (steps = 1) => mock.timers.tick(steps * STEP_MS),
    restore: () => mock.timers.reset(),
  };
}

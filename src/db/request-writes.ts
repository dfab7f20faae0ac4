import { AsyncLocalStorage } from 'node:async_hooks';
import { jsonParam, type Database, type Queryable } from './database.js';
import { createOidcModelStore, type ModelWrite } from './oidc-models.js';

/**
 * One commit for a sign-in request's writes (performance issue 23). A resumed authorization
 * (GET /auth/:uid) used to commit four times one after the other (the interaction deleted, the
 * grant, the code, the session), and the login form twice (its audit transaction, then the
 * interaction); every commit is a WAL flush and a round trip.
 *
 * Inside `run`, the provider's writes to oidc_models (through the adapter) and the sign-in's
 * transactional steps (audit events with the throttle changes they go with) are held back and
 * committed together in one transaction when `fn` is done, before the response leaves: Koa sends
 * it only once the middleware has returned, so no client (nor another instance it goes to) can
 * act on a code, session or interaction this request wrote before it is committed. A read of
 * a row this request wrote, or a write that cannot wait (consume, revoke), commits what was
 * held back first, so the request still reads its own writes in order.
 *
 * Outside `run` (tests, other routes, work started after the request) everything is written at
 * once, as before.
 */
export interface RequestWrites {
  /** Runs `fn`, then commits what it held back in one transaction; also when `fn` throws. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  /** `fn` in one transaction: in a `run`, the one that commits the request's writes; otherwise its own, now. */
  transaction(fn: (tx: Queryable) => Promise<void>): Promise<void>;
  /** The adapter's upsert: true when held back (throws InvalidTextError for a payload PostgreSQL cannot store). */
  deferUpsert(model: string, id: string, payload: Record<string, unknown>, expiresInSeconds: number | undefined): boolean;
  /** The adapter's destroy: true when held back. */
  deferDestroy(model: string, id: string): boolean;
  /** Before a read or an immediate write of `model` (the row `id`, or any when undefined): commits what this request holds back for it. */
  settle(model: string, id?: string): Promise<void>;
}

interface Batch {
  open: boolean;
  /** At most one write per (model, id): a later write replaces an earlier one. */
  readonly models: Map<string, ModelWrite>;
  readonly steps: ((tx: Queryable) => Promise<void>)[];
}

const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/**
 * Another request finished this sign-in first (a double click, two tabs): 409, and nothing this
 * request would have stored is (src/db/oidc-models.ts applyWrites), so it sends no code.
 */
export class SignInAlreadyFinished extends Error {
  readonly status = 409;
  readonly expose = true;
  constructor() {
    super('This sign-in was already completed, in another tab or by a second click. Go back to the application.');
    this.name = 'SignInAlreadyFinished';
  }
}

function refuseIfSpent(missing: readonly unknown[]): void {
  if (missing.length > 0) throw new SignInAlreadyFinished();
}

export function createRequestWrites(db: Database): RequestWrites {
  const storage = new AsyncLocalStorage<Batch>();
  const openBatch = () => {
    const batch = storage.getStore();
    return batch?.open === true ? batch : undefined;
  };

  const models = createOidcModelStore(db);

  async function commit(batch: Batch): Promise<void> {
    // In key order, so two requests writing a row in common (a browser's session) lock rows in one order.
    const writes = [...batch.models].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, write]) => write);
    const steps = batch.steps.splice(0);
    batch.models.clear();
    if (steps.length === 0) {
      if (writes.length > 0) refuseIfSpent(await models.applyWrites(writes));
      return;
    }
    await db.transaction(async (tx) => {
      for (const step of steps) await step(tx);
      if (writes.length > 0) refuseIfSpent(await createOidcModelStore(tx).applyWrites(writes));
    });
  }

  return {
    async run(fn) {
      const batch: Batch = { open: true, models: new Map(), steps: [] };
      let result: Awaited<ReturnType<typeof fn>>;
      try {
        result = await storage.run(batch, fn);
      } finally {
        // Closed first: work the request started and that finishes later writes on its own.
        batch.open = false;
        // What `fn` did before it threw was written before too (an audit event above all).
        await commit(batch);
      }
      return result;
    },
    async transaction(fn) {
      const batch = openBatch();
      if (batch === undefined) await db.transaction(fn);
      else batch.steps.push(fn);
    },
    deferUpsert(model, id, payload, expiresInSeconds) {
      const batch = openBatch();
      if (batch === undefined) return false;
      batch.models.set(keyOf(model, id), { kind: 'upsert', model, id, payload, json: jsonParam(payload), expiresInSeconds });
      return true;
    },
    deferDestroy(model, id) {
      const batch = openBatch();
      if (batch === undefined) return false;
      const key = keyOf(model, id);
      // An interaction is spent once: the resume that deletes it is the one that may answer. (One
      // this request wrote may not be stored yet, so it has nothing to find: not checked.)
      const mustExist = model === 'Interaction' && batch.models.get(key)?.kind !== 'upsert';
      batch.models.set(key, { kind: 'destroy', model, id, mustExist });
      return true;
    },
    async settle(model, id) {
      const batch = openBatch();
      if (batch === undefined || batch.models.size === 0) return;
      const pending = id === undefined ? [...batch.models.values()].some((write) => write.model === model) : batch.models.has(keyOf(model, id));
      if (pending) await commit(batch);
    },
  };
}

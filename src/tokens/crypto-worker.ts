import { parentPort } from 'node:worker_threads';
import { importRecipient, type JweRecipient } from './jwe.js';
import type { EncryptJob, EncryptResult } from './crypto-pool.js';
import { BoundedCache } from '../lib/bounded-cache.js';

// A worker thread of src/tokens/crypto-pool.ts: builds compact JWEs with the same code as the
// event loop would (src/tokens/jwe.ts), so the ECDH work runs on another core.

const MAX_KEYS = 1_000;
const recipients = new BoundedCache<string, JweRecipient>(MAX_KEYS);

function recipientFor(source: string): JweRecipient {
  let recipient = recipients.get(source);
  if (recipient === undefined) {
    recipient = importRecipient(JSON.parse(source) as Parameters<typeof importRecipient>[0]);
    recipients.set(source, recipient);
  }
  return recipient;
}

parentPort?.on('message', (jobs: EncryptJob[]) => {
  const results = jobs.map((job): EncryptResult => {
    try {
      const escrowKey = job.escrowKey === undefined ? undefined : Buffer.from(job.escrowKey);
      return { id: job.id, jwe: recipientFor(job.recipient).encrypt(job.plaintext, job.extraHeader, escrowKey) };
    } catch (error) {
      return { id: job.id, error: error instanceof Error ? error.message : String(error) };
    }
  });
  parentPort?.postMessage(results);
});

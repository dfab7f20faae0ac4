import { z } from 'zod';
import { SIGNING_ALGS } from '../../crypto/signing-keys.js';
import { keyResponse } from './service.js';

/** `POST /admin/v1/keys/rotate`: which algorithms get a new key (no body: every one). */
export const rotateKeysBody = z
  .strictObject({
    algs: z
      .array(z.enum(SIGNING_ALGS, { error: `must be one of ${SIGNING_ALGS.join(', ')}` }))
      .min(1)
      .describe('The algorithms to rotate; every algorithm when omitted.')
      .optional(),
  })
  .optional();

/** What a rotation answers: the new active keys (each published as `next` before). */
export const keyRotationResponse = z.object({ items: z.array(keyResponse) }).describe('The keys a rotation made active, one per algorithm; each was published as `next` before.');

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const DEV_MASTER_KEY_FILE = 'master.key';

/**
 * MASTER_KEY from the environment, or in development one generated into DATA_DIR (the config
 * refuses production without MASTER_KEY). `warn` is told when the development key is used.
 */
export async function resolveMasterKey(configured: Buffer | undefined, dataDir: string, warn: (message: string) => void): Promise<Buffer> {
  if (configured !== undefined) return configured;
  const file = path.join(dataDir, DEV_MASTER_KEY_FILE);
  await mkdir(dataDir, { recursive: true });
  try {
    const existing = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
    if (existing.length !== 32) throw new Error(`${file} does not hold a 32-byte base64url key`);
    warn(`MASTER_KEY is not set: using the development key in ${file}; set MASTER_KEY in production`);
    return existing;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const key = randomBytes(32);
  // 'wx' fails if another process created it first; then read theirs.
  try {
    await writeFile(file, `${key.toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return resolveMasterKey(undefined, dataDir, warn);
    throw error;
  }
  warn(`MASTER_KEY is not set: generated a development key into ${file}; set MASTER_KEY in production`);
  return key;
}

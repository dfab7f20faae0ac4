import { readFile } from 'node:fs/promises';
import { UsageError } from './command.js';

/** `--scope "a b" --scope c` → ["a", "b", "c"]: repeated flags and space-separated lists both work. */
export function splitScopes(values: readonly string[]): string[] {
  return values.flatMap((value) => value.split(/\s+/)).filter((scope) => scope !== '');
}

/** A whole number as a number; anything else as given, for the schema to explain what is wrong. */
export function integerOrText(value: string): number | string {
  return /^-?\d{1,15}$/.test(value.trim()) ? Number(value.trim()) : value;
}

/** A JSON document from a file a flag names; a file that cannot be read or parsed is a usage error. */
export async function readJsonFile(flag: string, path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${flag}: ${path} is not valid JSON`);
  }
}

/** Sets `body[field]` only when the flag was given, so the schema's defaults apply otherwise. */
export function given<T>(body: Record<string, unknown>, field: string, value: T | undefined, when: (value: T) => boolean = () => true): void {
  if (value !== undefined && when(value)) body[field] = value;
}

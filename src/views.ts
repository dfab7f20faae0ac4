import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

// src/ and dist/ are both one level below the repository root.
export const VIEWS_DIR = fileURLToPath(new URL('../views/', import.meta.url));

export interface Views {
  render(template: string, data: Record<string, unknown>): string;
  /** The one stylesheet, served at /static/gatehouse.css. */
  readonly stylesheet: string;
}

/** Eta escapes every `<%= %>` by default; templates never use the raw form for user data. */
export function createViews(): Views {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });
  return {
    render: (template, data) => eta.render(template, data),
    stylesheet: readFileSync(`${VIEWS_DIR}static/gatehouse.css`, 'utf8'),
  };
}

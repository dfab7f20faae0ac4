import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Eta } from 'eta';

// src/ and dist/ are both one level below the repository root.
export const VIEWS_DIR = fileURLToPath(new URL('../views/', import.meta.url));

// The UMD bundle defines the global SimpleWebAuthnBrowser. The package's exports map hides dist/,
// so it is found beside the CommonJS entry point (script/index.js).
const SIMPLEWEBAUTHN_BROWSER = fileURLToPath(new URL('../dist/bundle/index.umd.min.js', pathToFileURL(createRequire(import.meta.url).resolve('@simplewebauthn/browser'))));

/** A file the pages load from `/static/<name>`, with its type. */
export interface StaticAsset {
  readonly type: string;
  readonly body: string;
}

export interface Views {
  render(template: string, data: Record<string, unknown>): string;
  /** The pages' files: the one stylesheet, the console's one script (copy buttons) and the passkey pages' two. */
  readonly assets: ReadonlyMap<string, StaticAsset>;
}

/**
 * Eta escapes every `<%= %>` by default; templates never use the raw form for user data.
 * `assetBase` is ISSUER's path: the browser loads /static/ below it (a proxy in front strips it).
 */
export function createViews(options: { assetBase?: string } = {}): Views {
  const eta = new Eta({ views: VIEWS_DIR, autoEscape: true, cache: true });
  const assetBase = options.assetBase ?? '';
  return {
    render: (template, data) => eta.render(template, { assetBase, ...data }),
    assets: new Map([
      ['gatehouse.css', { type: 'text/css; charset=utf-8', body: readFileSync(`${VIEWS_DIR}static/gatehouse.css`, 'utf8') }],
      ['console.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(`${VIEWS_DIR}static/console.js`, 'utf8') }],
      // SPEC §4: the passkey pages' browser part, from the installed @simplewebauthn/browser (no CDN), and ours.
      ['simplewebauthn-browser.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(SIMPLEWEBAUTHN_BROWSER, 'utf8') }],
      ['passkeys.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(`${VIEWS_DIR}static/passkeys.js`, 'utf8') }],
    ]),
  };
}

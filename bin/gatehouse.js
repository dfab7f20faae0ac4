#!/usr/bin/env node
// The operator CLI entry point (`npx gatehouse <command>`); `npm install` builds dist/.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('gatehouse: dist/ is missing; run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);

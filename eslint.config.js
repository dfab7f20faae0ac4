// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import security from 'eslint-plugin-security';

/**
 * One `no-restricted-imports` block per rule. ESLint applies one value of a rule per file (the
 * last matching block wins), so each file group gets exactly one block listing its patterns.
 * @param {{ files: string[]; forbid: string[]; why: string }[]} rules
 */
function importBoundaries(rules) {
  return rules.map(({ files, forbid, why }) => ({
    files,
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: forbid, message: why }] }] },
  }));
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/', '.scratch/'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  // Security lint (issue: supply chain and static checks): unsafe regexes, eval, child_process
  // with non-literal commands, timing-unsafe comparisons, non-literal fs paths and requires.
  security.configs.recommended,
  {
    rules: {
      // Findings are errors, not warnings: CI fails on them.
      'security/detect-buffer-noassert': 'error',
      'security/detect-child-process': 'error',
      'security/detect-eval-with-expression': 'error',
      'security/detect-new-buffer': 'error',
      'security/detect-non-literal-regexp': 'error',
      'security/detect-non-literal-require': 'error',
      'security/detect-possible-timing-attacks': 'error',
      'security/detect-unsafe-regex': 'error',
      'security/detect-bidi-characters': 'error',
      // Off, with reasons: every `obj[key]` trips it, and typed keys make it noise in TypeScript;
      // file paths here come from configuration (DATA_DIR) or module-relative constants, never
      // from a request.
      'security/detect-object-injection': 'off',
      'security/detect-non-literal-fs-filename': 'off',
    },
  },
  // The architecture's import rules (docs/architecture.md), checked in CI with the rest of lint.
  ...importBoundaries([
    // The verifier ships alone (package export gatehouse/verifier): it imports nothing of ours.
    { files: ['src/verifier/**/*.ts'], forbid: ['../**'], why: 'src/verifier imports nothing outside itself: it ships alone as gatehouse/verifier' },
    // The data layer knows no callers.
    { files: ['src/db/**/*.ts'], forbid: ['../**'], why: 'src/db knows no callers: it imports nothing outside src/db' },
    // Crypto and token shaping are pure: no storage, no provider, no front door.
    {
      files: ['src/crypto/**/*.ts', 'src/tokens/**/*.ts'],
      forbid: ['**/db/**', '**/oidc/**', '**/admin/**', '**/management/**', '**/interactions/**', '**/cli/**', '**/http/**'],
      why: 'crypto/ and tokens/ are pure: they declare the interfaces they need instead of importing storage, the provider or a front door',
    },
    // The management services know no front door (and no HTTP).
    { files: ['src/management/**/*.ts'], forbid: ['**/admin/**', '**/interactions/**', '**/cli/**', 'koa', '@koa/*'], why: 'src/management knows no front door and no HTTP' },
    // Front doors never import each other: they share the services.
    { files: ['src/admin/**/*.ts'], forbid: ['**/interactions/**', '**/cli/**', '**/gateway/**'], why: 'front doors (admin API, hosted pages, CLI) never import each other' },
    // (The data layer's two error kinds, unavailable and invalid text, are every front door's to map.)
    {
      files: ['src/interactions/**/*.ts'],
      forbid: ['**/admin/**', '**/cli/**', '**/management/**', '**/db/**', '!**/db/database.js'],
      why: 'the hosted pages use the sign-in services: no admin API, CLI, management service or storage',
    },
    { files: ['src/cli/**/*.ts'], forbid: ['**/admin/**', '**/interactions/**', '**/gateway/**'], why: 'front doors (admin API, hosted pages, CLI, gateway) never import each other' },
    { files: ['src/gateway/**/*.ts'], forbid: ['**/admin/**', '**/interactions/**', '**/cli/**'], why: 'front doors (admin API, hosted pages, CLI, gateway) never import each other' },
    { files: ['src/console/**/*.ts'], forbid: ['**/admin/**', '**/interactions/**', '**/cli/**', '**/gateway/**'], why: 'front doors (admin API, hosted pages, CLI, gateway, console) never import each other' },
    {
      files: ['src/account/**/*.ts'],
      forbid: ['**/admin/**', '**/interactions/**', '**/cli/**', '**/gateway/**', '**/console/**', '**/management/**', '**/db/**'],
      why: 'the account pages are a front door: they use the accounts services, never another door, a management service or storage',
    },
  ]),
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js', '.ci/*.mjs', 'views/static/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', URL: 'readonly', console: 'readonly' } },
  },
  {
    // The pages' one script runs in the browser.
    files: ['views/static/*.js'],
    languageOptions: { sourceType: 'script', globals: { document: 'readonly', navigator: 'readonly', setTimeout: 'readonly', window: 'readonly', fetch: 'readonly', URLSearchParams: 'readonly', HTMLFormElement: 'readonly' } },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      // Tests build regexes from values they just produced and spawn the CLI on purpose.
      'security/detect-non-literal-regexp': 'off',
      'security/detect-child-process': 'off',
      'security/detect-unsafe-regex': 'off',
      'security/detect-possible-timing-attacks': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
    },
  },
);

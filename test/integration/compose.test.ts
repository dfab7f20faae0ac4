import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

// The deployment files (SPEC §1 `docker compose up`) checked without a Docker engine:
// `docker-compose config` only interpolates and validates, and the Dockerfile is read as text.
// What makes the compose setup safe (TLS in front, Gatehouse unpublished and trusting only that
// proxy) is also checked on the file itself, so it is checked where docker-compose is missing.

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/** A well-formed MASTER_KEY (43 base64url characters = 32 bytes); never used to encrypt anything. */
const DUMMY_MASTER_KEY = 'A'.repeat(43);

let emptyEnvFile = '';
let composeInstalled = false;

before(async () => {
  // --env-file points at an empty file so a developer's own .env cannot change the outcome.
  const dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-compose-'));
  emptyEnvFile = path.join(dir, 'empty.env');
  await writeFile(emptyEnvFile, '');
  composeInstalled = await run('docker-compose', ['version'], { timeout: 5_000 }).then(
    () => true,
    () => false,
  );
});

after(async () => {
  if (emptyEnvFile !== '') await rm(path.dirname(emptyEnvFile), { recursive: true, force: true });
});

interface ComposeResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `docker-compose config` with exactly `env` plus PATH and HOME, so the runner's MASTER_KEY or ISSUER cannot leak in. */
async function composeConfig(env: Record<string, string>): Promise<ComposeResult> {
  try {
    const { stdout, stderr } = await run('docker-compose', ['--env-file', emptyEnvFile, 'config'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? tmpdir(), ...env },
      timeout: 8_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/**
 * The lines of one service in the rendered config: `  name:` up to the next line indented two
 * spaces or less. docker-compose renders canonical YAML, so indentation is reliable.
 */
function serviceBlock(rendered: string, name: string): string {
  const lines = rendered.split('\n');
  const start = lines.indexOf(`  ${name}:`);
  assert.notEqual(start, -1, `service ${name} missing from:\n${rendered}`);
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() !== '' && !line.startsWith('   ')) break;
    block.push(line);
  }
  return block.join('\n');
}

void test('docker-compose config renders postgres and gatehouse with health checks and a named volume', async (t) => {
  if (!composeInstalled) {
    t.skip('docker-compose not installed');
    return;
  }
  const result = await composeConfig({ MASTER_KEY: DUMMY_MASTER_KEY });
  assert.equal(result.code, 0, result.stderr);
  const rendered = result.stdout;

  const postgres = serviceBlock(rendered, 'postgres');
  assert.match(postgres, /image: postgres:16\b/);
  assert.match(postgres, /healthcheck:[\s\S]*pg_isready/);
  assert.match(postgres, /- postgres-data:\/var\/lib\/postgresql\/data/);
  // Top-level named volumes (docker-compose sorts them): postgres-data among them.
  const volumes = rendered.slice(rendered.search(/^volumes:$/m));
  assert.match(volumes, /^ {2}postgres-data:/m);

  const gatehouse = serviceBlock(rendered, 'gatehouse');
  assert.match(gatehouse, /healthcheck:[\s\S]*\/healthz/);
  assert.match(gatehouse, /depends_on:\n\s+postgres:\n\s+condition: service_healthy/);
  assert.match(gatehouse, /NODE_ENV: production/);
  assert.match(gatehouse, /DATABASE_URL: postgres:\/\/[^\n]*@postgres:5432\//);
  assert.match(gatehouse, /restart: unless-stopped/);
  assert.match(gatehouse, new RegExp(`MASTER_KEY: ${DUMMY_MASTER_KEY}\\n`));
  // Least privilege: read-only root filesystem, no capabilities, no privilege escalation.
  assert.match(gatehouse, /read_only: true/);
  assert.match(gatehouse, /cap_drop:\n\s+- ALL/);
  assert.match(gatehouse, /no-new-privileges:true/);
  // Reached through Caddy only: nothing of Gatehouse is published on the host.
  assert.doesNotMatch(gatehouse, /^\s+ports:/m);
  assert.match(gatehouse, /TRUST_PROXY: ["']?true/);

  const caddy = serviceBlock(rendered, 'caddy');
  assert.match(caddy, /image: caddy:2/);
  // Compose v2 renders long syntax (target: 443), v1 the short one (8443:443/tcp).
  assert.match(caddy, /target: 443\b|:443(\/tcp)?"?\n/, 'Caddy publishes HTTPS');
  assert.doesNotMatch(caddy, /target: 80\b|:80(\/tcp)?"?\n/, 'plain HTTP is not published');
  assert.match(caddy, /Caddyfile/);
});

void test('docker-compose.yml as written: TLS in front, Gatehouse unpublished, an https ISSUER, MASTER_KEY required', async () => {
  const text = await readFile(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
  const gatehouse = serviceBlock(text, 'gatehouse');
  assert.doesNotMatch(gatehouse, /^\s+ports:/m, 'Gatehouse publishes no port of its own');
  assert.match(gatehouse, /^\s+NODE_ENV: production$/m);
  assert.match(gatehouse, /^\s+ISSUER: \$\{ISSUER:-https:\/\/[^}]+\}$/m, 'the default ISSUER is https');
  assert.match(gatehouse, /^\s+TRUST_PROXY: "true"$/m, 'Gatehouse trusts the proxy in front (and only it can reach it)');
  assert.match(gatehouse, /^\s+MASTER_KEY: \$\{MASTER_KEY:\?[^}]+\}$/m, 'MASTER_KEY is required at `docker compose up`');
  assert.match(gatehouse, /^\s+MANAGEMENT_PORT: "9000"$/m);

  const caddy = serviceBlock(text, 'caddy');
  const published = [...caddy.matchAll(/^\s+- "([^"]+)"$/gm)].map((m) => m[1]!).filter((entry) => /:\d+$/.test(entry));
  assert.deepEqual(published, ['${HTTPS_PORT:-8443}:443'], 'Caddy publishes HTTPS, and only HTTPS');
  assert.match(caddy, /- \.\/deploy\/Caddyfile:\/etc\/caddy\/Caddyfile:ro/);

  // The default ISSUER is where Caddy answers: https, localhost, the published port.
  const issuer = /ISSUER: \$\{ISSUER:-([^}]+)\}/.exec(gatehouse)?.[1];
  assert.equal(issuer, 'https://localhost:8443');

  const caddyfile = await readFile(path.join(REPO_ROOT, 'deploy', 'Caddyfile'), 'utf8');
  const directives = caddyfile
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  assert.deepEqual(directives, ['{$GATEHOUSE_HOST:localhost} {', 'tls {$CADDY_TLS:internal}', 'reverse_proxy {$GATEHOUSE_UPSTREAM:gatehouse:3000}', '}']);
  assert.doesNotMatch(caddyfile, /gatehouse:9000/, 'the management port is never proxied');

  const example = await readFile(path.join(REPO_ROOT, '.env.example'), 'utf8');
  assert.match(example, /^ISSUER=https:\/\/localhost:8443$/m);
  assert.match(example, /^MASTER_KEY=$/m);
  assert.doesNotMatch(example, /^TRUST_PROXY=/m, 'TRUST_PROXY is the compose file\'s, not a knob to turn off');
});

void test('docker-compose defaults ISSUER to https, which production requires', async (t) => {
  if (!composeInstalled) {
    t.skip('docker-compose not installed');
    return;
  }
  const result = await composeConfig({ MASTER_KEY: DUMMY_MASTER_KEY });
  assert.equal(result.code, 0, result.stderr);
  assert.match(serviceBlock(result.stdout, 'gatehouse'), /ISSUER: https:\/\//);
});

void test('docker-compose refuses to start without MASTER_KEY and says how to make one', async (t) => {
  if (!composeInstalled) {
    t.skip('docker-compose not installed');
    return;
  }
  // Unset, and set but empty (how a fresh copy of .env.example leaves it): both refused.
  const unsetOrEmpty: Record<string, string>[] = [{}, { MASTER_KEY: '' }];
  for (const env of unsetOrEmpty) {
    const result = await composeConfig(env);
    assert.notEqual(result.code, 0, `expected failure with ${JSON.stringify(env)}:\n${result.stdout}`);
    assert.match(result.stderr, /set MASTER_KEY in \.env/);
    assert.match(result.stderr, /openssl rand -base64 32/);
  }
});

/** Dockerfile instructions with `\` continuations joined and comments dropped. */
function dockerfileInstructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

void test('Dockerfile runs a Node 22 image as a non-root user with production dependencies and a health check', async () => {
  const instructions = dockerfileInstructions(await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const lastFrom = instructions.findLastIndex((line) => /^FROM\s/i.test(line));
  assert.notEqual(lastFrom, -1, 'Dockerfile has no FROM');
  const finalStage = instructions.slice(lastFrom);

  assert.match(finalStage[0]!, /^FROM\s+(--platform=\S+\s+)?node:22[\w.-]*(\s|$)/i);

  const users = finalStage.filter((line) => /^USER\s/i.test(line));
  assert.ok(users.length > 0, 'final stage sets no USER, so it runs as root');
  const user = users.at(-1)!.split(/\s+/)[1]!;
  assert.doesNotMatch(user, /^(root|0)(:|$)/, `final stage runs as ${user}`);

  assert.ok(
    instructions.some((line) => /^RUN\s.*\bnpm ci\b.*--omit=dev/i.test(line)),
    'no `npm ci --omit=dev`: dev dependencies would ship',
  );
  assert.ok(
    finalStage.some((line) => /^HEALTHCHECK\s+.*CMD\s/i.test(line)),
    'final stage has no HEALTHCHECK',
  );
  // The runtime stage must not need a compiler: native addons are built in an earlier stage.
  assert.ok(!finalStage.some((line) => /^RUN\s.*apt-get install.*\b(g\+\+|gcc|make|build-essential)\b/i.test(line)));
  // The image starts Gatehouse exactly as `npm start` does (same Node flags: the heap cap, and
  // AsyncLocalStorage without promise hooks; the same malloc arenas, an ENV there).
  const cmd = finalStage.find((line) => /^CMD\s+\[/.test(line));
  assert.ok(cmd !== undefined, 'final stage has no exec-form CMD');
  const startScript = (JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts['start'];
  const [environment, ...command] = startScript?.split(' ') ?? [];
  assert.equal(environment, 'MALLOC_ARENA_MAX=2');
  assert.ok(finalStage.includes(`ENV ${environment}`), `the final stage sets ${environment}`);
  assert.deepEqual(JSON.parse(cmd.replace(/^CMD\s+/, '')), command);
  assert.match(command.join(' '), /^node --max-old-space-size=\d+ --experimental-async-context-frame dist\/main\.js$/);
});

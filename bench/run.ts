import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { alive, ensureBuilt, fmt, log, RESULTS_DIR, ROOT, sourceVersion, spawnChild, type Child } from './support.js';

/**
 * `npm run bench`: the whole benchmark suite in one command, about five minutes on a 2-core
 * machine. Runs each bench as a child process, one after another, with shortened settings, and
 * collects what each writes to $BENCH_OUTPUT (bench/support.ts `writeBenchOutput`): a title, its
 * Markdown, its checks and its data. Every bench measures its own baselines in its own run
 * (bare oidc-provider, crypto bound, argon2 bound, small database, one worker), so each ratio
 * compares figures taken minutes apart at most.
 *
 * Writes bench/results/<YYYY-MM-DD>.json (environment, every check, every bench's data) and
 * bench/results/<YYYY-MM-DD>.md (a summary of every target, then each bench's section).
 * A bench whose script does not exist is skipped with a note; a bench that fails (non-zero exit,
 * or no output) is reported and makes this run exit 1.
 *
 * Environment (all optional):
 *   BENCH_ONLY=tokens,login      run a subset, in suite order
 *   BENCH_DATABASE_URL=...       passed to every bench (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_ENFORCE=1              passed to every bench: a target not met fails that bench
 * Other BENCH_* variables are not passed on: the suite's settings below are what a suite run
 * means; run a bench on its own (npm run bench:<name>) to vary them.
 */

interface SuiteBench {
  readonly name: string;
  readonly script: string;
  /** The suite's shortened settings for this bench. */
  readonly env: Readonly<Record<string, string>>;
  /** Kills the bench after this long (each bench also bounds itself with its own watchdog). */
  readonly timeoutSeconds: number;
}

const SUITE: readonly SuiteBench[] = [
  // 4 rows × (2 s warm-up + 5 s): ~45 s with start-up and the crypto bound.
  { name: 'tokens', script: 'bench/tokens.ts', env: { BENCH_SECONDS: '5', BENCH_WARMUP_SECONDS: '2', BENCH_CRYPTO_MS: '500' }, timeoutSeconds: 300 },
  // argon2 bound twice, probe idle and storm (2 s + 5 s each), 20 users: ~35 s.
  {
    name: 'login',
    script: 'bench/login.ts',
    env: { BENCH_SECONDS: '5', BENCH_WARMUP_SECONDS: '2', BENCH_ARGON2_SECONDS: '2', BENCH_USERS: '20' },
    timeoutSeconds: 300,
  },
  // 1,000 fresh tokens and 2 s of seen tokens per verifier: ~20 s.
  { name: 'verifier', script: 'bench/verifier.ts', env: { BENCH_VERIFIER_TOKENS: '1000', BENCH_VERIFIER_SEEN_SECONDS: '2' }, timeoutSeconds: 300 },
  { name: 'startup', script: 'bench/startup.ts', env: {}, timeoutSeconds: 300 },
  // A warm-up pass and two phases of 4 paths × (2 s + 4 s), and the million-row insert with index rebuild: ~110 s.
  { name: 'growth', script: 'bench/growth.ts', env: { BENCH_SECONDS: '4', BENCH_WARMUP_SECONDS: '2' }, timeoutSeconds: 600 },
  // 4 rows × (2 s + 5 s), two instances: ~40 s.
  { name: 'cluster', script: 'bench/cluster.ts', env: { BENCH_SECONDS: '5', BENCH_WARMUP_SECONDS: '2' }, timeoutSeconds: 300 },
];

/** What a bench writes to $BENCH_OUTPUT. JSON has no undefined and turns NaN into null. */
const outputSchema = z.object({
  title: z.string(),
  markdown: z.string(),
  checks: z.array(
    z.object({
      name: z.string(),
      value: z.number().nullable(),
      display: z.string(),
      target: z.string(),
      met: z.boolean().nullable().optional(),
    }),
  ),
  data: z.unknown(),
});
type BenchOutput = z.infer<typeof outputSchema>;

type Status = 'ok' | 'failed' | 'skipped';

interface BenchRun {
  readonly name: string;
  readonly script: string;
  readonly status: Status;
  readonly note: string;
  readonly seconds: number;
  readonly settings: Readonly<Record<string, string>>;
  readonly output: BenchOutput | undefined;
}

/** The variables a suite run passes on from its own environment: everything but other BENCH_* settings. */
function childEnvironment(bench: SuiteBench, outputFile: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (name.startsWith('BENCH_') && name !== 'BENCH_DATABASE_URL' && name !== 'BENCH_ENFORCE') continue;
    env[name] = value;
  }
  return { ...env, ...bench.env, BENCH_OUTPUT: outputFile, BENCH_SKIP_BUILD: '1' };
}

let current: Child | undefined;

async function runOne(bench: SuiteBench, scratch: string): Promise<BenchRun> {
  const base = { name: bench.name, script: bench.script, settings: bench.env };
  if (!existsSync(path.join(ROOT, bench.script))) {
    log(`${bench.name}: ${bench.script} does not exist; skipped`);
    return { ...base, status: 'skipped', note: `${bench.script} does not exist yet`, seconds: 0, output: undefined };
  }
  const outputFile = path.join(scratch, `${bench.name}.json`);
  const settings = Object.entries(bench.env).map(([name, value]) => `${name}=${value}`).join(' ');
  log(`${bench.name}: node --import tsx ${bench.script}${settings === '' ? '' : ` (${settings})`}`);
  const started = performance.now();
  const child = spawnChild(bench.name, ['--import', 'tsx', bench.script], childEnvironment(bench, outputFile));
  current = child;
  // Progress goes to this terminal as it comes; the Markdown on stdout is collected from the output file instead.
  child.process.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const timer = setTimeout(() => {
    log(`${bench.name}: still running after ${bench.timeoutSeconds} s; stopping it`);
    void child.stop();
  }, bench.timeoutSeconds * 1000);
  const code = await child.exited;
  clearTimeout(timer);
  await child.closed;
  current = undefined;
  const seconds = (performance.now() - started) / 1000;

  let output: BenchOutput | undefined;
  let problem = '';
  try {
    output = outputSchema.parse(JSON.parse(await readFile(outputFile, 'utf8')));
  } catch (error) {
    problem = existsSync(outputFile) ? `its output is not the suite's JSON: ${(error as Error).message.slice(0, 300)}` : 'it wrote no output';
  }
  if (code === 0 && output !== undefined) {
    log(`${bench.name}: done in ${seconds.toFixed(0)} s`);
    return { ...base, status: 'ok', note: '', seconds, output };
  }
  const why = code === 0 ? problem : `exit ${code}${problem === '' ? '' : `; ${problem}`}`;
  // The bench's own "FAILED: <message>" line says most; else its last lines.
  const stderr = child.output.stderr.trim().split('\n');
  const failure = stderr.findLast((line) => line.includes('FAILED'));
  const lastLines = (failure ?? stderr.slice(-3).join(' / ')).trim().slice(0, 500);
  log(`${bench.name}: FAILED (${why})`);
  return { ...base, status: 'failed', note: `${why}${lastLines === '' ? '' : `. Last output: ${lastLines}`}`, seconds, output };
}

// ---------------------------------------------------------------------------------------------
// The report.

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function metCell(check: BenchOutput['checks'][number]): string {
  if (check.met === true) return 'met';
  if (check.met === false) return '**NOT met**';
  return '—';
}

/** Each bench's Markdown one heading level down, under the suite's own title. */
function demoteHeadings(markdown: string): string {
  return markdown.replace(/^(#{1,5}) /gm, '#$1 ');
}

interface Environment {
  readonly node: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
  readonly source: string;
  readonly startedAt: string;
  readonly seconds: number;
}

function markdown(date: string, environment: Environment, runs: readonly BenchRun[]): string {
  const load = (values: readonly number[]) => values.map((value) => value.toFixed(2)).join(' / ');
  const targets = runs.flatMap((run) => (run.output?.checks ?? []).map((check) => ({ bench: run.name, check })));
  const withTarget = targets.filter(({ check }) => check.met !== undefined && check.met !== null);
  const withoutTarget = targets.filter(({ check }) => check.met === undefined || check.met === null);
  const notMet = withTarget.filter(({ check }) => check.met === false).length;
  const lines = [
    `# Gatehouse benchmark suite, ${date}`,
    '',
    `\`npm run bench\`: node ${environment.node}, ${environment.cpus} × ${environment.cpuModel}, ${fmt(environment.memoryGiB, 1)} GiB; ` +
      `source ${environment.source}; started ${environment.startedAt}, ${fmt(environment.seconds)} s in all; ` +
      `load average (1 / 5 / 15 min) ${load(environment.loadAverageAtStart)} at the start, ${load(environment.loadAverageAtEnd)} at the end.`,
    '',
    `${withTarget.length - notMet} of ${withTarget.length} targets met.` +
      (runs.some((run) => run.status !== 'ok') ? ` Benches not run or failed: ${runs.filter((run) => run.status !== 'ok').map((run) => `${run.name} (${run.status})`).join(', ')}.` : ''),
    '',
    ...(withTarget.length === 0
      ? []
      : [
          '| bench | measure | measured | target | |',
          '|---|---|---:|---:|---|',
          ...withTarget.map(({ bench, check }) => `| ${bench} | ${cell(check.name)} | ${cell(check.display)} | ${cell(check.target)} | ${metCell(check)} |`),
          '',
        ]),
    ...(withoutTarget.length === 0
      ? []
      : [
          'Ratios reported without a target:',
          '',
          '| bench | measure | measured |',
          '|---|---|---:|',
          ...withoutTarget.map(({ bench, check }) => `| ${bench} | ${cell(check.name)} | ${cell(check.display)} |`),
          '',
        ]),
    '| bench | status | seconds | suite settings | note |',
    '|---|---|---:|---|---|',
    ...runs.map((run) => {
      const settings = Object.entries(run.settings).map(([name, value]) => `${name}=${value}`).join(' ');
      return `| ${run.name} | ${run.status === 'ok' ? 'ok' : `**${run.status}**`} | ${fmt(run.seconds)} | ${settings === '' ? '(its defaults)' : `\`${settings}\``} | ${cell(run.note)} |`;
    }),
    '',
    'Every bench measures its baselines in its own run; absolute figures on a shared machine drift ±30 % between runs, ratios hold better. ' +
      'A load average well above 2 at either end means other work shared the cores: repeat before concluding.',
    '',
  ];
  for (const run of runs) {
    if (run.output === undefined) continue;
    lines.push('---', '', demoteHeadings(run.output.markdown.trim()), '');
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const startedAt = new Date();
  const started = performance.now();
  const loadAverageAtStart = loadavg();
  const only = (process.env['BENCH_ONLY'] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of only) {
    if (!SUITE.some((bench) => bench.name === name)) throw new Error(`BENCH_ONLY: unknown bench ${name} (benches: ${SUITE.map((bench) => bench.name).join(', ')})`);
  }
  const benches = only.length === 0 ? SUITE : SUITE.filter((bench) => only.includes(bench.name));
  await mkdir(RESULTS_DIR, { recursive: true });
  const scratch = await mkdtemp(path.join(tmpdir(), 'gatehouse-suite-'));
  log(`suite: ${benches.map((bench) => bench.name).join(', ')}; load average ${loadAverageAtStart.map((value) => value.toFixed(2)).join(' / ')}`);

  // Once for the whole suite: every bench runs Gatehouse's production build (bench/support.ts).
  await ensureBuilt();
  const runs: BenchRun[] = [];
  try {
    for (const bench of benches) runs.push(await runOne(bench, scratch));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const environment: Environment = {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: totalmem() / 1024 ** 3,
    loadAverageAtStart,
    loadAverageAtEnd: loadavg(),
    source: sourceVersion(),
    startedAt: startedAt.toISOString(),
    seconds: (performance.now() - started) / 1000,
  };
  const date = startedAt.toISOString().slice(0, 10);
  const checks = runs.flatMap((run) => (run.output?.checks ?? []).map((check) => ({ bench: run.name, ...check })));
  const json = {
    date: startedAt.toISOString(),
    environment,
    checks,
    benches: runs.map((run) => ({
      name: run.name,
      script: run.script,
      status: run.status,
      note: run.note,
      seconds: run.seconds,
      settings: run.settings,
      title: run.output?.title,
      data: run.output?.data,
    })),
  };
  const jsonFile = path.join(RESULTS_DIR, `${date}.json`);
  const mdFile = path.join(RESULTS_DIR, `${date}.md`);
  await writeFile(jsonFile, JSON.stringify(json, null, 2) + '\n');
  await writeFile(mdFile, markdown(date, environment, runs));

  const failed = runs.filter((run) => run.status === 'failed');
  const targets = checks.filter((check) => check.met === true || check.met === false);
  process.stdout.write(
    `\nSuite finished in ${environment.seconds.toFixed(0)} s: ${runs.filter((run) => run.status === 'ok').length} benches ok, ` +
      `${failed.length} failed, ${runs.filter((run) => run.status === 'skipped').length} skipped; ` +
      `${targets.filter((check) => check.met === true).length} of ${targets.length} targets met.\n` +
      `Written ${path.relative(ROOT, mdFile)} and ${path.relative(ROOT, jsonFile)}.\n`,
  );
  return failed.length > 0 ? 1 : 0;
}

// Ctrl-C or a kill: stop the running bench (it drops its database and stops its children), then exit.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the suite`);
    const running = current;
    const stopped = running !== undefined && alive(running.process) ? running.stop() : Promise.resolve();
    void stopped.finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
}

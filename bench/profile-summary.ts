import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) into the frames that cost the most,
 * by self time and by inclusive time, and by area (a package under node_modules, a file of
 * ours, or V8's own buckets such as "(garbage collector)").
 *
 * Standalone: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]
 */

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameCost {
  readonly frame: string;
  readonly ms: number;
  readonly percent: number;
}

export interface ProfileSummary {
  /** Sampled wall time, excluding "(idle)". */
  readonly busyMs: number;
  readonly totalMs: number;
  readonly self: readonly FrameCost[];
  readonly inclusive: readonly FrameCost[];
  readonly areas: readonly FrameCost[];
}

const ROOT_URL = pathToFileURL(path.resolve(fileURLToPath(new URL('../', import.meta.url)))).href;

function shortUrl(url: string): string {
  if (url === '') return '';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length);
  if (url.startsWith(ROOT_URL)) return url.slice(ROOT_URL.length + 1);
  return url;
}

export function frameName(frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  const where = shortUrl(frame.url);
  return where === '' ? name : `${name} ${where}:${frame.lineNumber + 1}`;
}

export function areaOf(frame: CallFrame): string {
  const where = shortUrl(frame.url);
  if (where === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native / V8 builtins)';
  if (frame.url.includes('/node_modules/')) {
    const parts = where.split('/');
    return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? where);
  }
  if (where.startsWith('node:')) return 'node: internals';
  return where;
}

function top(map: Map<string, number>, busy: number, count: number): FrameCost[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([frame, micros]) => ({ frame, ms: micros / 1000, percent: busy === 0 ? 0 : (100 * micros) / busy }));
}

/** A stretch of a profile, in the profile's own clock (microseconds; `process.hrtime` on Linux, in any process). */
export interface ProfileWindow {
  readonly startMicros: number;
  readonly endMicros: number;
}

export function summarizeProfile(profile: CpuProfile, count = 25, window?: ProfileWindow): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  let busy = 0;
  let total = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    at += profile.timeDeltas[i] ?? 0;
    if (window !== undefined && (at < window.startMicros || at > window.endMicros)) continue;
    // timeDeltas[i] is the time since the previous sample; attribute the next delta to this one.
    const micros = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (node === undefined) continue;
    total += micros;
    if (node.callFrame.functionName === '(idle)') continue;
    busy += micros;
    const name = frameName(node.callFrame);
    self.set(name, (self.get(name) ?? 0) + micros);
    const area = areaOf(node.callFrame);
    areas.set(area, (areas.get(area) ?? 0) + micros);
    // Inclusive: every distinct frame on the stack, once per sample (recursion counted once).
    const seen = new Set<string>();
    for (let node: number | undefined = id; node !== undefined; node = parent.get(node)) {
      const frame = byId.get(node)?.callFrame;
      if (frame === undefined || frame.functionName === '(root)') continue;
      const key = frameName(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
    }
  }
  return { busyMs: busy / 1000, totalMs: total / 1000, self: top(self, busy, count), inclusive: top(inclusive, busy, count), areas: top(areas, busy, count) };
}

export async function summarizeProfileFile(file: string, count = 25, window?: ProfileWindow): Promise<ProfileSummary> {
  return summarizeProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, count, window);
}

export function profileMarkdown(summary: ProfileSummary, title: string): string {
  const table = (heading: string, rows: readonly FrameCost[]) =>
    [`### ${heading}`, '', '| ms | % of busy | frame |', '|---:|---:|---|', ...rows.map((r) => `| ${r.ms.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.frame.replaceAll('|', '\\|')}\` |`), ''].join('\n');
  return [
    `## ${title}`,
    '',
    `Sampled ${(summary.totalMs / 1000).toFixed(1)} s, busy (not idle) ${(summary.busyMs / 1000).toFixed(1)} s.`,
    '',
    table('By area (self time)', summary.areas),
    table('Top frames by self time', summary.self),
    table('Top frames by inclusive time', summary.inclusive),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const summary = await summarizeProfileFile(file, Number(process.argv[3] ?? '25'));
  process.stdout.write(profileMarkdown(summary, path.basename(file)) + '\n');
}

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { areaOf, frameName, type CpuProfile, type ProfileNode } from './profile-summary.js';

/**
 * A flame graph (SVG) of a V8 `.cpuprofile`: every stack of the busy samples, merged by frame from
 * the root up, each frame as wide as the share of busy time spent in it and in what it called.
 * Colour says whose code it is (ours, oidc-provider, Koa, jose, node, V8). Hover shows the frame
 * and its time; koa-compose's frames between middleware are left out. For bench/README.md's
 * before/after pictures of each path.
 *
 * Standalone: node --import tsx bench/flamegraph.ts <file.cpuprofile> <out.svg> [title]
 */

interface Frame {
  readonly name: string;
  readonly area: string;
  micros: number;
  readonly children: Map<string, Frame>;
}

const WIDTH = 1200;
const ROW = 17;
const TOP = 40;
/** Frames narrower than this many pixels are left out: they are unreadable and only bloat the file. */
const MIN_PIXELS = 0.4;
/** Middleware plumbing, one pair of frames per middleware, left out so the stacks show the middleware themselves. */
const PLUMBING = new Set(['koa-compose']);

function colourOf(area: string): string {
  if (area.startsWith('dist/') || area.startsWith('src/')) return 'hsl(28, 90%, 62%)';
  if (area === 'oidc-provider') return 'hsl(210, 70%, 68%)';
  if (area === 'koa' || area.startsWith('koa-') || area.startsWith('@koa/')) return 'hsl(120, 45%, 62%)';
  if (area === 'jose') return 'hsl(280, 50%, 72%)';
  if (area.startsWith('pino') || area.startsWith('@pinojs/') || area === 'sonic-boom') return 'hsl(50, 80%, 60%)';
  if (area === 'node: internals') return 'hsl(0, 0%, 78%)';
  if (area.startsWith('(')) return 'hsl(0, 55%, 72%)';
  return 'hsl(170, 40%, 65%)';
}

const escape = (text: string) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

export function buildFlameTree(profile: CpuProfile): Frame {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const root: Frame = { name: 'all busy samples', area: '', micros: 0, children: new Map() };
  for (let i = 0; i < profile.samples.length; i++) {
    const leaf = byId.get(profile.samples[i]!);
    if (leaf === undefined || leaf.callFrame.functionName === '(idle)') continue;
    const micros = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const stack: ProfileNode[] = [];
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id)!;
      if (node.callFrame.functionName !== '(root)' && !PLUMBING.has(areaOf(node.callFrame))) stack.push(node);
    }
    root.micros += micros;
    let frame = root;
    for (const node of stack.reverse()) {
      const name = frameName(node.callFrame);
      let child = frame.children.get(name);
      if (child === undefined) {
        child = { name, area: areaOf(node.callFrame), micros: 0, children: new Map() };
        frame.children.set(name, child);
      }
      child.micros += micros;
      frame = child;
    }
  }
  return root;
}

export function flameGraphSvg(root: Frame, title: string): string {
  const rects: string[] = [];
  let depth = 0;
  const scale = root.micros === 0 ? 0 : WIDTH / root.micros;
  const place = (frame: Frame, x: number, level: number) => {
    const width = frame.micros * scale;
    if (width < MIN_PIXELS) return;
    depth = Math.max(depth, level);
    const label = `${frame.name} (${(frame.micros / 1000).toFixed(0)} ms, ${((100 * frame.micros) / root.micros).toFixed(1)} %)`;
    const text = width > 35 ? `<text x="${(x + 3).toFixed(1)}" y="${0}" dy="12">${escape(frame.name.slice(0, Math.floor(width / 6.5)))}</text>` : '';
    rects.push(
      `<g data-level="${level}"><title>${escape(label)}</title><rect x="${x.toFixed(1)}" y="0" width="${width.toFixed(1)}" height="${ROW - 1}" fill="${level === 0 ? 'hsl(0,0%,88%)' : colourOf(frame.area)}"/>${text}</g>`,
    );
    let childX = x;
    for (const child of [...frame.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      place(child, childX, level + 1);
      childX += child.micros * scale;
    }
  };
  place(root, 0, 0);
  const height = TOP + (depth + 1) * ROW + 10;
  // Flames grow upwards: level 0 at the bottom.
  const body = rects.map((g) => {
    const level = Number(/data-level="(\d+)"/.exec(g)![1]);
    const y = height - 10 - (level + 1) * ROW;
    return g.replace('<g ', `<g transform="translate(0 ${y})" `);
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="4" y="16" font-size="14">${escape(title)}</text>`,
    `<text x="4" y="32" fill="#555">${(root.micros / 1000).toFixed(0)} ms busy. Orange: Gatehouse; blue: oidc-provider; green: Koa; purple: jose; yellow: pino; grey: node; red: V8. Hover for times.</text>`,
    ...body,
    '</svg>',
  ].join('\n');
}

export async function writeFlameGraph(profileFile: string, svgFile: string, title: string): Promise<void> {
  const profile = JSON.parse(await readFile(profileFile, 'utf8')) as CpuProfile;
  await writeFile(svgFile, flameGraphSvg(buildFlameTree(profile), title));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const [input, output, title] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    process.stderr.write('usage: node --import tsx bench/flamegraph.ts <file.cpuprofile> <out.svg> [title]\n');
    process.exit(2);
  }
  await writeFlameGraph(input, output, title ?? path.basename(input));
}

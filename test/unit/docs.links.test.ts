import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The README, docs/ and bench/README.md link to each other by relative paths and #anchors;
 * moving a section must not leave a link behind. Every relative link must name a file that
 * exists and, when it names an anchor in a Markdown file, a heading that produces that anchor.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(ROOT, 'docs', name));
  return [join(ROOT, 'README.md'), join(ROOT, 'bench/README.md'), ...docs];
}

/** Markdown without its fenced code blocks. */
function withoutFences(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** Markdown outside fenced code blocks and inline code spans, where a `](` is not a link. */
function prose(markdown: string): string {
  return withoutFences(markdown).replace(/`[^`\n]*`/g, (span) => span.replace(/[[\]()]/g, ' '));
}

/** Link targets: inline `[text](target)` and `[text](target "title")`, and `[ref]: target`. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]!);
  const references = [...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)].map((match) => match[1]!);
  return [...inline, ...references];
}

/** The anchors GitHub derives from a document's headings (lower case, punctuation dropped, -N for repeats). */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const match of withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    // A link in a heading contributes its text; inline code its words.
    const heading = match[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/`/g, '');
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

function anchorsOfFile(path: string): Set<string> {
  return anchorsOf(readFileSync(path, 'utf8'));
}

/** Every broken relative link in `markdown`, read as the file at `from`. */
function brokenLinks(from: string, markdown: string): string[] {
  const broken: string[] = [];
  for (const target of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: and other schemes
    const hash = target.indexOf('#');
    const pathPart = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
    const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const file = pathPart === '' ? from : resolve(dirname(from), pathPart);
    if (!existsSync(file)) {
      broken.push(`${target}: no file ${relative(ROOT, file)}`);
      continue;
    }
    if (anchor !== undefined && anchor !== '' && file.endsWith('.md') && statSync(file).isFile() && !anchorsOfFile(file).has(anchor)) {
      broken.push(`${target}: no heading in ${relative(ROOT, file)} gives #${anchor}`);
    }
  }
  return broken;
}

describe('documentation links', () => {
  test('every relative link in README.md, docs/*.md and bench/README.md resolves, anchors included', () => {
    const files = documents();
    assert.ok(files.length >= 9, `expected the README, bench/README.md and the docs pages, found ${files.length}`);
    let checked = 0;
    const broken: string[] = [];
    for (const file of files) {
      const markdown = readFileSync(file, 'utf8');
      checked += linkTargets(markdown).filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target)).length;
      for (const problem of brokenLinks(file, markdown)) broken.push(`${relative(ROOT, file)}: ${problem}`);
    }
    assert.deepEqual(broken, []);
    // The README's "where to read next" alone links every docs page: a parser that finds no links fails here.
    assert.ok(checked >= 20, `only ${checked} relative links found`);
  });

  test('the README links every page in docs/', () => {
    const readme = linkTargets(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((target) => target.split('#')[0]);
    const pages = readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md'));
    assert.deepEqual(
      pages.filter((page) => !readme.includes(`docs/${page}`)),
      [],
    );
  });

  test('the checker reports a missing file, a missing anchor, and ignores links inside code', () => {
    const from = join(ROOT, 'README.md');
    const markdown = [
      '[gone](docs/no-such-page.md) [bad anchor](docs/configuration.md#no-such-heading)',
      '[fine](docs/configuration.md#configuration) [external](https://example.com/x.md) [self](#quick-start)',
      '`[in code](missing.md)`',
      '```',
      '[in a fence](missing-too.md)',
      '```',
    ].join('\n');
    assert.deepEqual(brokenLinks(from, markdown), [
      'docs/no-such-page.md: no file docs/no-such-page.md',
      'docs/configuration.md#no-such-heading: no heading in docs/configuration.md gives #no-such-heading',
    ]);
  });

  test('anchors follow GitHub: punctuation dropped, spaces to hyphens, repeats numbered', () => {
    const anchors = anchorsOf('# Runtime: Node 22, brought by npm\n## Caches, and how fresh they are\n## `npm run bench`: the whole suite\n## Settings\n### Settings\n```\n# not a heading\n```\n');
    assert.deepEqual([...anchors], ['runtime-node-22-brought-by-npm', 'caches-and-how-fresh-they-are', 'npm-run-bench-the-whole-suite', 'settings', 'settings-1']);
  });
});

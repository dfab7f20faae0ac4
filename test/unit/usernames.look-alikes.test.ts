import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { knownScriptCodes, mixesScripts, normalizeUsername, usernameSkeleton } from '../../src/accounts/usernames.js';

/**
 * SPEC §4: usernames are refused "when confusable with an existing one (Unicode TR39 skeletons) or
 * when they mix scripts". The skeleton comes from confusables.txt (unhomoglyph), the scripts from the
 * runtime's Script_Extensions data: these tests pin the outcomes we rely on.
 */

const CYRILLIC_O = '\u043e';
const CYRILLIC_A = '\u0430';

describe('username skeletons (UTS #39 §4, compared ignoring case)', () => {
  test('a Cyrillic о, a capital I for l, a digit 0 for o and "rn" for m collide with the Latin name', () => {
    const pairs: [string, string][] = [
      ['bob', `b${CYRILLIC_O}b`],
      ['bob', 'BOB'],
      ['bob', 'b0b'], // confusables.txt: 0030 → 004F (O), which is "o" ignoring case
      ['bob', 'B0B'],
      ['bob', '\u0412\u041e\u0412'], // ВОВ, all Cyrillic capitals
      ['paypal', 'paypaI'], // 0049 (I) → 006C (l)
      ['paypal', `p${CYRILLIC_A}ypal`],
      ['modern', 'rnodern'], // 006D (m) → 0072 006E (rn)
      ['alice', 'ａｌｉｃｅ'], // full width, folded by NFKC
    ];
    for (const [a, b] of pairs) assert.equal(usernameSkeleton(a), usernameSkeleton(b), `${a} and ${b} look alike`);
  });

  test('names that do not look alike keep different skeletons', () => {
    const pairs: [string, string][] = [
      ['bob', 'bab'],
      ['ivan', 'lvan'], // lower-case i is not l
      ['paypal', 'paypai'],
      ['\u0432\u043e\u0432', 'bob'], // вов: lower-case Cyrillic ve is not b
      ['борис', 'boris'],
      ['田中', '田申'],
    ];
    for (const [a, b] of pairs) assert.notEqual(usernameSkeleton(a), usernameSkeleton(b), `${a} and ${b} differ`);
  });

  test('the skeleton is stable: applying it again changes nothing', () => {
    for (const name of ['bob', 'B0B', 'paypaI', 'Ivan', 'ΑΒΓ', 'ǅemal', 'ﬁnn', '𝐛𝐨𝐛']) {
      const key = usernameSkeleton(name);
      assert.equal(usernameSkeleton(key), key, name);
    }
  });

  test('a display name shown with a capital I looks like l, while its normalised form keeps i', () => {
    assert.equal(normalizeUsername('Ivan'), normalizeUsername('ivan'));
    assert.equal(usernameSkeleton('Ivan'), usernameSkeleton('lvan'));
    assert.notEqual(usernameSkeleton('ivan'), usernameSkeleton('lvan'));
  });
});

describe('mixed scripts (UTS #39 §5.2 highly restrictive)', () => {
  test('Latin with one Cyrillic or Greek letter mixes scripts', () => {
    for (const name of [`p${CYRILLIC_A}ypal`, `b${CYRILLIC_O}b`, 'bοb' /* Greek omicron */, 'alice田中борис', '١٢٣abc' /* Arabic-Indic digits */]) {
      assert.equal(mixesScripts(name), true, name);
    }
  });

  test('one script, with digits and . _ - @ +, does not', () => {
    for (const name of ['bob', 'борис', 'ΑΒΓ', '田中', 'ゆうき', 'ラーメン', 'שלום', 'محمد', 'สมชาย', 'bob.smith_1-2@example.com+x', 'борис-42', 'Zoë']) {
      assert.equal(mixesScripts(name), false, name);
    }
  });

  test('Latin with Han and kana, with Han and Bopomofo, or with Han and Hangul is allowed; Hangul with kana is not', () => {
    for (const name of ['田中taro', 'たなかtaro', '田中たなかタナカtaro', '王ㄅㄆmei', '김철수kim', '金철수']) assert.equal(mixesScripts(name), false, name);
    for (const name of ['김たなか', 'ㄅたなか', 'борис田中']) assert.equal(mixesScripts(name), true, name);
  });

  test('every letter and digit this runtime knows belongs to a listed script (the list is names only)', () => {
    const codes = knownScriptCodes();
    assert.ok(codes.includes('Latn') && codes.includes('Cyrl') && codes.includes('Hani'));
    const anyListed = new RegExp(`^[${codes.map((code) => `\\p{sc=${code}}`).join('')}]$`, 'u');
    const common = /^[\p{sc=Zyyy}\p{sc=Zinh}]$/u;
    const uncovered: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp += 1) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const char = String.fromCodePoint(cp);
      if (!/^[\p{L}\p{N}]$/u.test(char) || common.test(char)) continue;
      if (!anyListed.test(char)) uncovered.push(cp.toString(16));
    }
    assert.deepEqual(uncovered.slice(0, 20), []);
  });
});

import unhomoglyph from 'unhomoglyph';

/**
 * Usernames are unique case-insensitively: "Alice", "alice" and "ＡＬＩＣＥ" (full-width) are one
 * account. NFKC folds compatibility forms, then lower case; what the person typed is kept for display.
 */
export function normalizeUsername(username: string): string {
  return username.normalize('NFKC').trim().toLowerCase();
}

/** Letters, digits and . _ - @ + (so an email address works), 1 to 64 characters after normalising. */
export const USERNAME_PATTERN = /^[\p{L}\p{N}._@+-]{1,64}$/u;

/** UTS #39 §4: skeleton(X) = NFD(map each character of NFD(X) through confusables.txt). */
function tr39Skeleton(value: string): string {
  return unhomoglyph(value.normalize('NFD')).normalize('NFD');
}

// Lower-casing a skeleton can expose another mapping (and a mapping can yield upper case, "0" → "O"):
// repeat until nothing changes. confusables.txt prototypes map to themselves, so two rounds settle it.
const SKELETON_ROUNDS = 4;

/**
 * SPEC §4: "refused when confusable with an existing one (Unicode TR39 skeletons)". The key two
 * usernames collide on when they look alike ignoring case, as they are compared.
 *
 * It starts from what is displayed (NFKC, case kept), not from the lower-cased form: `preferred_username`
 * carries the name as typed, and "paypaI" (capital I) is shown next to "paypal", although its lower case
 * "paypai" is not confusable. Then lower case, since "BOB", "Bob" and "bob" are one account: so
 * "b0b" (TR39: 0 → O) collides with "bob" too. Two names with the same normalizeUsername() can get
 * different keys ("Ivan" looks like "lvan", "ivan" does not); the unique normalised name still holds.
 * Not for display or sign-in: only the unique index on users.username_skeleton reads it.
 */
export function usernameSkeleton(username: string): string {
  let key = username.normalize('NFKC').trim();
  for (let round = 0; round < SKELETON_ROUNDS; round += 1) {
    const next = tr39Skeleton(key).toLowerCase();
    if (next === key) break;
    key = next;
  }
  return key;
}

/**
 * ISO 15924 codes of the Unicode scripts (PropertyValueAliases.txt, `sc`). Only names: which characters
 * belong to a script is the engine's Unicode data (`\p{Script_Extensions=…}`). Codes this runtime's
 * Unicode version does not know are skipped; test/unit/usernames.test.ts checks that every letter
 * the runtime knows falls in one of them.
 */
const SCRIPT_CODES = [
  'Adlm', 'Aghb', 'Ahom', 'Arab', 'Armi', 'Armn', 'Avst', 'Bali', 'Bamu', 'Bass', 'Batk', 'Beng', 'Berf', 'Bhks',
  'Bopo', 'Brah', 'Brai', 'Bugi', 'Buhd', 'Cakm', 'Cans', 'Cari', 'Cham', 'Cher', 'Chis', 'Chrs', 'Copt', 'Cpmn',
  'Cprt', 'Cyrl', 'Deva', 'Diak', 'Dogr', 'Dsrt', 'Dupl', 'Egyp', 'Elba', 'Elym', 'Ethi', 'Gara', 'Geor', 'Glag',
  'Gong', 'Gonm', 'Goth', 'Gran', 'Grek', 'Gujr', 'Gukh', 'Guru', 'Hang', 'Hani', 'Hano', 'Hatr', 'Hebr', 'Hira',
  'Hluw', 'Hmng', 'Hmnp', 'Hung', 'Ital', 'Java', 'Kali', 'Kana', 'Kawi', 'Khar', 'Khmr', 'Khoj', 'Kits', 'Knda',
  'Krai', 'Kthi', 'Lana', 'Laoo', 'Latn', 'Lepc', 'Limb', 'Lina', 'Linb', 'Lisu', 'Lyci', 'Lydi', 'Mahj', 'Maka',
  'Mand', 'Mani', 'Marc', 'Medf', 'Mend', 'Merc', 'Mero', 'Mlym', 'Modi', 'Mong', 'Mroo', 'Mtei', 'Mult', 'Mymr',
  'Nagm', 'Nand', 'Narb', 'Nbat', 'Newa', 'Nkoo', 'Nshu', 'Ogam', 'Olck', 'Onao', 'Orkh', 'Orya', 'Osge', 'Osma',
  'Ougr', 'Palm', 'Pauc', 'Perm', 'Phag', 'Phli', 'Phlp', 'Phnx', 'Plrd', 'Prti', 'Rjng', 'Rohg', 'Runr', 'Samr',
  'Sarb', 'Saur', 'Sgnw', 'Shaw', 'Shrd', 'Sidd', 'Sidt', 'Sind', 'Sinh', 'Sogd', 'Sogo', 'Sora', 'Soyo', 'Sund',
  'Sunu', 'Sylo', 'Syrc', 'Tagb', 'Takr', 'Tale', 'Talu', 'Taml', 'Tang', 'Tavt', 'Tayo', 'Telu', 'Tfng', 'Tglg',
  'Thaa', 'Thai', 'Tibt', 'Tirh', 'Tnsa', 'Todr', 'Tols', 'Toto', 'Tutg', 'Ugar', 'Vaii', 'Vith', 'Wara', 'Wcho',
  'Xpeo', 'Xsux', 'Yezi', 'Yiii', 'Zanb',
] as const;

/**
 * UTS #39 §5.2 "Highly Restrictive" also allows these combinations, how Japanese, Chinese (with
 * Bopomofo) and Korean are written, with Latin ("田中taro").
 */
const SCRIPT_COMBINATIONS: Readonly<Record<string, readonly string[]>> = {
  'Latn+Jpan': ['Latn', 'Hani', 'Hira', 'Kana'],
  'Latn+Hanb': ['Latn', 'Hani', 'Bopo'],
  'Latn+Kore': ['Latn', 'Hani', 'Hang'],
};

interface ScriptClass {
  readonly name: string;
  readonly pattern: RegExp;
}

/** A class per script this runtime knows, then the combinations. */
function scriptClasses(): readonly ScriptClass[] {
  const known: ScriptClass[] = [];
  for (const code of SCRIPT_CODES) {
    try {
      // Built from SCRIPT_CODES, never from input: a literal naming a script newer than the runtime's
      // ICU data would be a SyntaxError when this module loads.
      // eslint-disable-next-line security/detect-non-literal-regexp -- constant script codes only
      known.push({ name: code, pattern: new RegExp(`^\\p{scx=${code}}$`, 'u') });
    } catch {
      // A script newer than this runtime's Unicode data: it has no characters here either.
    }
  }
  const combinations = Object.entries(SCRIPT_COMBINATIONS).map(([name, codes]) => ({
    name,
    // eslint-disable-next-line security/detect-non-literal-regexp -- constant script codes only
    pattern: new RegExp(`^[${codes.map((code) => `\\p{scx=${code}}`).join('')}]$`, 'u'),
  }));
  return [...known, ...combinations];
}

const SCRIPT_CLASSES = scriptClasses();
/** Script_Extensions {Common} or {Inherited} (digits, . _ - @ +): usable with any script (UTS #39 §5.1). */
const ANY_SCRIPT = /^[\p{scx=Zyyy}\p{scx=Zinh}]$/u;

/**
 * SPEC §4: usernames are "refused ... when they mix scripts". True when no single script, nor one of
 * the CJK combinations above, covers every character of the (NFKC) name: "pаypal" with a Cyrillic а.
 * A character's scripts are its Script_Extensions, so "ー" (Hiragana and Katakana) fits either.
 */
export function mixesScripts(username: string): boolean {
  let candidates = SCRIPT_CLASSES;
  for (const char of username.normalize('NFKC')) {
    if (ANY_SCRIPT.test(char)) continue;
    candidates = candidates.filter((candidate) => candidate.pattern.test(char));
    if (candidates.length === 0) return true;
  }
  return false;
}

/** For the unit test: the script codes this runtime's regular expressions accept. */
export function knownScriptCodes(): readonly string[] {
  return SCRIPT_CLASSES.filter((candidate) => !candidate.name.includes('+')).map((candidate) => candidate.name);
}

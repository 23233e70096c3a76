/**
 * Letters of other scripts and styles that read as Latin ones, folded to the Latin letter so a
 * phrase written with them still matches. NFKC (applied before) already handles fullwidth
 * forms, mathematical alphanumerics, circled and squared letters, superscripts and ligatures;
 * this table covers what NFKC leaves alone: Cyrillic, Greek and Armenian look-alikes, small
 * capitals and other Latin letter variants, and the negative circled / squared / regional
 * indicator letters. A compact subset of Unicode TR39 `confusables.txt` chosen for lowercase
 * text (the input is lowercased first); why a table and not a package:
 * docs/decisions/0015-confusable-folding.md.
 */
const TABLE: Record<string, string> = {
  // Cyrillic
  а: 'a',
  в: 'b',
  ь: 'b',
  с: 'c',
  ԁ: 'd',
  е: 'e',
  ё: 'e',
  ѐ: 'e',
  ԍ: 'g',
  н: 'h',
  һ: 'h',
  і: 'i',
  ї: 'i',
  ӏ: 'l',
  ј: 'j',
  к: 'k',
  м: 'm',
  п: 'n',
  о: 'o',
  р: 'p',
  ԛ: 'q',
  г: 'r',
  ѕ: 's',
  т: 't',
  ѵ: 'v',
  ԝ: 'w',
  х: 'x',
  у: 'y',
  ү: 'y',
  // Greek
  α: 'a',
  ά: 'a',
  β: 'b',
  ϐ: 'b',
  ϲ: 'c',
  ε: 'e',
  έ: 'e',
  ϵ: 'e',
  η: 'n',
  ή: 'n',
  ι: 'i',
  ί: 'i',
  ϊ: 'i',
  ΐ: 'i',
  ϳ: 'j',
  κ: 'k',
  ϰ: 'k',
  ν: 'v',
  ο: 'o',
  ό: 'o',
  ρ: 'p',
  ϱ: 'p',
  τ: 't',
  υ: 'u',
  ύ: 'u',
  ϋ: 'u',
  χ: 'x',
  γ: 'y',
  ω: 'w',
  ώ: 'w',
  // Armenian
  ա: 'w',
  ց: 'g',
  հ: 'h',
  ո: 'n',
  օ: 'o',
  զ: 'q',
  ս: 'u',
  // Small capitals and other Latin letter variants
  ᴀ: 'a',
  ɑ: 'a',
  ʙ: 'b',
  ᴄ: 'c',
  ᴅ: 'd',
  ᴇ: 'e',
  ɛ: 'e',
  ꜰ: 'f',
  ɢ: 'g',
  ɡ: 'g',
  ʜ: 'h',
  ɪ: 'i',
  ı: 'i',
  ɩ: 'i',
  ᴊ: 'j',
  ȷ: 'j',
  ᴋ: 'k',
  ʟ: 'l',
  ǀ: 'l',
  ᴍ: 'm',
  ɴ: 'n',
  ᴏ: 'o',
  ᴘ: 'p',
  ǫ: 'q',
  ʀ: 'r',
  ꜱ: 's',
  ᴛ: 't',
  ᴜ: 'u',
  ᴠ: 'v',
  ʋ: 'v',
  ᴡ: 'w',
  ʏ: 'y',
  ᴢ: 'z',
}

/**
 * Capitals that look like a Latin capital whose lowercase they do not resemble (`Ν` is Greek
 * nu, lowercase `ν`, read as `v`): folded before lowercasing.
 */
const UPPER: Record<string, string> = {
  Α: 'a',
  Β: 'b',
  Ε: 'e',
  Ζ: 'z',
  Η: 'h',
  Ι: 'i',
  Κ: 'k',
  Μ: 'm',
  Ν: 'n',
  Ο: 'o',
  Ρ: 'p',
  Τ: 't',
  Υ: 'y',
  Χ: 'x',
  А: 'a',
  В: 'b',
  Е: 'e',
  Н: 'h',
  І: 'i',
  Ј: 'j',
  К: 'k',
  М: 'm',
  О: 'o',
  Р: 'p',
  С: 'c',
  Ѕ: 's',
  Т: 't',
  Х: 'x',
  Ү: 'y',
  Ԛ: 'q',
  Ԝ: 'w',
}
const UPPER_CHARS = new RegExp(`[${Object.keys(UPPER).join('')}]`, 'gu')

/** Blocks of 26 letters A–Z that NFKC does not decompose: negative circled, negative squared, regional indicators. */
const LETTER_BLOCKS = [0x1f150, 0x1f170, 0x1f1e6]

const CHARS = new RegExp(
  `[${Object.keys(TABLE).join('')}${LETTER_BLOCKS.map((b) => `\\u{${b.toString(16)}}-\\u{${(b + 25).toString(16)}}`).join('')}]`,
  'gu',
)

/**
 * `text` (NFKC, any case) lowercased, with look-alike letters replaced by the Latin letter they
 * imitate.
 */
export function foldConfusables(text: string): { text: string; changed: boolean } {
  let changed = false
  const lower = text
    .replace(UPPER_CHARS, (ch) => {
      changed = true
      return UPPER[ch] ?? ch
    })
    .toLowerCase()
  const out = lower.replace(CHARS, (ch) => {
    changed = true
    const mapped = TABLE[ch]
    if (mapped !== undefined) return mapped
    const cp = ch.codePointAt(0)!
    const block = LETTER_BLOCKS.find((b) => cp >= b && cp <= b + 25)!
    return String.fromCharCode(0x61 + cp - block)
  })
  return { text: out, changed }
}

const MARKS = /\p{Mn}+/gu
/** Latin letters without their accents (`ìgnórè` → `ignore`); other scripts' marks go too. */
export function stripMarks(text: string): string {
  const decomposed = text.normalize('NFD')
  return decomposed === text ? text : decomposed.replace(MARKS, '').normalize('NFC')
}

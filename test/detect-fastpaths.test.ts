import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as before from '../bench/detector-before/injection.js'
import * as instructionsBefore from '../bench/detector-before/instructions.js'
import * as ngramBefore from '../bench/detector-before/ngram-model.js'
import * as normalizeBefore from '../bench/detector-before/normalize.js'
import { detectInjection, needsNonAscii } from '../src/detect/injection.js'
import {
  scoreInstructions,
  sentenceFeatures,
  sentences,
  shippedInstructionModel,
} from '../src/detect/instructions.js'
import { predictFolded, shippedModel } from '../src/detect/ngram-model.js'
import { foldForMatch, normalizeForMatch, squeeze } from '../src/detect/normalize.js'
import { OVERRIDE_PHRASES } from '../src/detect/phrases.js'

/**
 * The detector's fast paths (one look per character for spacing, tokens hashed from their
 * boundaries, the n-gram model in one pass, expressions skipped where they cannot match) must
 * answer exactly as the straightforward code they replace. That code is kept, unchanged, in
 * bench/detector-before/ (the cost benchmark's reference): it is the oracle here, on generated
 * text built to reach the edges (spacing runs, apostrophes, digits, look-alikes, invisible and
 * tag characters, encodings, phrases of the patterns).
 */
const PIECES = [
  'ignore',
  'all',
  'previous',
  'instructions',
  'you',
  'must',
  'send',
  'the',
  'answer',
  'to',
  'assistant',
  "don't",
  "rock'n'roll",
  "o'",
  'http://x.io',
  'www.example.com',
  'mail ada@example.com',
  'DE89370400440532013000',
  '2,099.00',
  '42',
  'a1b2',
  ' ',
  '  ',
  '\t',
  '\n',
  '\n\n',
  '\u00a0',
  '\u3000',
  '.',
  '?',
  '!',
  '|',
  '{',
  '$',
  '@',
  '%41%42%43%44',
  'aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=',
  '69676e6f726520616c6c2070726576696f7573',
  '\u200b',
  '\u202e',
  String.fromCodePoint(0xe0069, 0xe0067),
  '\u0430',
  '\u03bf',
  'ｉｇｎｏｒｅ',
  'ᴀʙᴄ',
  'é',
  'e\u0301',
  'Ä',
  '😀',
  'игнорируй',
  '忽略',
  'I',
  'G N O R E',
  'i g n o r e   a l l',
]
const text = fc.oneof(
  fc.array(fc.constantFrom(...PIECES), { maxLength: 40 }).map((parts) => parts.join('')),
  fc
    .array(fc.oneof(fc.constantFrom(...PIECES), fc.string({ unit: 'binary', maxLength: 6 })), {
      maxLength: 30,
    })
    .map((parts) => parts.join(' ')),
  fc.string({ unit: 'grapheme-ascii', maxLength: 200 }),
)
const RUNS = { numRuns: 2000 }

describe('detector fast paths answer as the code they replace', () => {
  it('normalization: every copy, and the folded copy alone', () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(normalizeForMatch(t)).toEqual(normalizeBefore.normalizeForMatch(t))
        expect(foldForMatch(t)).toBe(normalizeBefore.normalizeForMatch(t).folded)
        expect(squeeze(t)).toBe(normalizeBefore.squeeze(t))
      }),
      RUNS,
    )
  })

  it('instructions: sentences, their features in order, and the score', () => {
    const model = shippedInstructionModel()
    fc.assert(
      fc.property(text, (t) => {
        const now = sentences(t)
        expect(now).toEqual(instructionsBefore.sentences(t))
        for (const s of now)
          expect(sentenceFeatures(s)).toEqual(instructionsBefore.sentenceFeatures(s))
        expect(scoreInstructions(model, t)).toEqual(instructionsBefore.scoreInstructions(model, t))
      }),
      RUNS,
    )
  })

  it('the n-gram model: the same probability up to the order of additions', () => {
    const model = shippedModel()
    fc.assert(
      fc.property(text, (t) => {
        const folded = normalizeForMatch(t).folded
        const now = predictFolded(model, folded)
        expect(Math.abs(now - ngramBefore.predictFolded(model, folded))).toBeLessThan(1e-9)
      }),
      RUNS,
    )
  })

  it('the whole detector: same score and categories', () => {
    fc.assert(
      fc.property(text, (t) => {
        expect(detectInjection(t)).toEqual(before.detectInjection(t))
      }),
      RUNS,
    )
  })

  it('skips a pattern on ASCII text only when every match needs another character', () => {
    const skipped = Object.entries(OVERRIDE_PHRASES)
      .filter(([, re]) => needsNonAscii(re))
      .map(([lang]) => lang)
    expect(skipped.sort()).toEqual(
      ['ar', 'el', 'fa', 'he', 'hi', 'ja', 'ko', 'ru', 'uk', 'vi', 'zh'].sort(),
    )
    // What could match ASCII is read: a class with an ASCII choice, an optional or bypassed group.
    expect(needsNonAscii(/(esque[çc]a)/)).toBe(false)
    expect(needsNonAscii(/(ты|вы)?теперь/)).toBe(false)
    expect(needsNonAscii(/(ты|вы)|now/)).toBe(false)
    expect(needsNonAscii(/(ты|ascii)теперь/)).toBe(false)
    expect(needsNonAscii(/(?:ты|вы)/)).toBe(false)
    expect(needsNonAscii(/(ты|в[ыx]y) теперь/)).toBe(true)
  })
})

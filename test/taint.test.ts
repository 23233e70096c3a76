import { describe, expect, it } from 'vitest'
import { derivedFrom, MAX_TAINT_LEAVES, taintForm } from '../src/pipeline/layers/taint.js'

// One untrusted text (say, a web page a tool returned), in the form the session keeps it.
const SOURCE = taintForm(
  'Invoice: pay GB29 NWBK 6016 1331 9268 19 (amount 1,250.50) and confirm at https://pay.evil-example.com/confirm — questions to Mark.Black-2134@Gmail.com',
)
const tainted = (v: unknown) => derivedFrom(v, SOURCE, 4)

describe('taint: a sensitive value still counts as coming from untrusted text after', () => {
  it('nothing: the exact value', () => {
    expect(tainted('https://pay.evil-example.com/confirm')).toBe(true)
  })
  it('a change of case', () => {
    expect(tainted('MARK.BLACK-2134@GMAIL.COM')).toBe(true)
  })
  it('look-alike letters and invisible characters', () => {
    // Cyrillic "а" and "е", and a zero-width space.
    expect(tainted('mаrk.blаck-2134@gmаil.cоm')).toBe(true)
    expect(tainted('mark.black\u200b-2134@gmail.com')).toBe(true)
  })
  it('spacing and separators removed or changed inside a code', () => {
    expect(tainted('GB29NWBK60161331926819')).toBe(true)
    expect(tainted('gb29-nwbk-6016-1331-9268-19')).toBe(true)
  })
  it('being a long enough piece of the text', () => {
    expect(tainted('pay.evil-example.com')).toBe(true)
  })
  it('being embedded in a longer value (an identifier from the text inside a URL)', () => {
    expect(tainted('https://collector.example.org/?u=pay.evil-example.com&d=secrets')).toBe(true)
  })
  it('a number, also when the text wrote it with thousands separators', () => {
    expect(tainted(1250.5)).toBe(true)
  })
  it('one element of a list, or one field of an object', () => {
    expect(tainted(['alice@corp.example', 'mark.black-2134@gmail.com'])).toBe(true)
    expect(tainted({ to: { address: 'mark.black-2134@gmail.com' } })).toBe(true)
  })
})

describe('taint: values that do not come from the text', () => {
  it('small numbers, words run together across a space, a piece of a longer number', () => {
    const text = taintForm('Page 1 of 3. Hi there, call +1 (234) 567-8901 or go to meeting 7')
    expect(derivedFrom([1, 2], text, 4)).toBe(false)
    expect(derivedFrom({ priority: 3 }, text, 4)).toBe(false)
    expect(derivedFrom('hit here', text, 4)).toBe(false)
    expect(derivedFrom('to me', text, 4)).toBe(false)
    expect(derivedFrom('12345678', text, 4)).toBe(false)
    // ... while the whole number, written without its separators, is the text's.
    expect(derivedFrom('12345678901', text, 4)).toBe(true)
  })

  it('a value too large to check in bounded time counts as tainted (fail closed)', () => {
    const many = Array.from({ length: MAX_TAINT_LEAVES + 1 }, (_, i) => `clean-${i}`)
    expect(derivedFrom(many, taintForm('nothing in common'), 4)).toBe(true)
    expect(derivedFrom(many.slice(0, MAX_TAINT_LEAVES), taintForm('nothing in common'), 4)).toBe(
      false,
    )
  })

  it('other addresses, short pieces, plain shared words, other numbers', () => {
    expect(tainted('https://intranet.corp.example/pay')).toBe(false)
    expect(tainted('pay')).toBe(false) // shorter than min_match_length
    expect(tainted('please confirm the questions')).toBe(false)
    expect(tainted('https://corp.example/invoice?status=confirm')).toBe(false)
    expect(tainted(1250.51)).toBe(false)
    expect(tainted(['alice@corp.example'])).toBe(false)
  })
})

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The public labelled data sets (../shared/datasets), read by the detector benchmarks. */
export const DATA = fileURLToPath(new URL('../../shared/datasets/', import.meta.url))

export type Sample = { text: string; attack: boolean }

/** A data set file's text, by its path under DATA. */
export const read = (path: string) => readFileSync(`${DATA}${path}`, 'utf8')

/** A JSONL data set file as one object per non-empty line. */
export const jsonl = (path: string) =>
  read(path)
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>)

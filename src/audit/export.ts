import type { StoredEvent } from '../domain/audit-event.js'
import { parseStored } from '../domain/audit-event.js'

export type ExportFormat = 'jsonl' | 'csv' | 'cef'
export const EXPORT_FORMATS: readonly ExportFormat[] = ['jsonl', 'csv', 'cef']

const CSV_COLUMNS = [
  'seq',
  'id',
  'timestamp',
  'type',
  'request_id',
  'agent_id',
  'principal',
  'tool',
  'session_id',
  'decision',
  'layer',
  'code',
  'reason',
  'risk_score',
  'risk_level',
  'policy_version',
  'args_hash',
  'approval_id',
  'approver',
  'outcome',
  'hash',
] as const

/** Header line for a format (CSV only). */
export function exportHeader(format: ExportFormat): string | null {
  return format === 'csv' ? CSV_COLUMNS.join(',') : null
}

/**
 * One stored event as one line of the export. A JSONL line is the stored text with
 * `,"hash":"<hex>"` added before its closing brace, so a verifier gets the exact hashed bytes
 * back by cutting that suffix off again; no re-encoding is involved.
 */
export function exportLine(stored: StoredEvent, format: ExportFormat): string {
  if (format === 'jsonl') return `${stored.body.slice(0, -1)},"hash":"${stored.hash}"}`
  const e = parseStored(stored)
  if (format === 'cef') return cefLine(e)
  const row: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    seq: e.seq,
    id: e.id,
    timestamp: e.timestamp,
    type: e.type,
    request_id: e.request_id,
    agent_id: e.agent_id,
    principal: e.principal,
    tool: e.tool,
    session_id: e.session_id,
    decision: e.decision,
    layer: e.layer,
    code: e.code,
    reason: e.reason,
    risk_score: e.risk.score,
    risk_level: e.risk.level,
    policy_version: e.policy_version,
    args_hash: e.args_hash,
    approval_id: e.approval_id,
    approver: e.approver,
    outcome: e.outcome,
    hash: e.hash,
  }
  return CSV_COLUMNS.map((c) => csvField(row[c])).join(',')
}

/**
 * Control characters (ANSI escapes, other C0/C1 codes, U+2028/U+2029 line and paragraph
 * separators) as `\uXXXX` text, so an export shown in a terminal or a log viewer cannot be made
 * to repaint the screen or break a line where the format does not.
 */
export function escapeControls(s: string): string {
  return s.replace(
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/**
 * RFC 4180 quoting, plus a leading quote mark on formula-like cells (also after leading
 * whitespace, which spreadsheets skip) so spreadsheets do not run them.
 */
function csvField(value: unknown): string {
  if (value === undefined || value === null) return ''
  let s = escapeControls(String(value))
  if (/^[\s]*[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

const CEF_SEVERITY: Record<string, number> = { low: 3, medium: 5, high: 8, critical: 10 }

/**
 * ArcSight Common Event Format, one event per line, for SIEMs: header fields are
 * `Vendor|Product|Version|Signature ID|Name|Severity` (pipes and backslashes escaped), then
 * key=value extensions (equals signs, backslashes and line breaks escaped).
 */
function cefLine(e: ReturnType<typeof parseStored>): string {
  const header = (v: string) => escapeControls(v.replace(/[\\|]/g, (c) => `\\${c}`))
  const value = (v: unknown) =>
    escapeControls(
      String(v)
        .replace(/[\\=]/g, (c) => `\\${c}`)
        .replace(/\r?\n|\r/g, '\\n'),
    )
  const ext: [string, unknown][] = [
    ['rt', Date.parse(e.timestamp)],
    ['externalId', e.id],
    // Who the credential proved, not the id the caller claimed (`anonymous` when it proved nothing).
    ['suser', e.principal],
    ['flexString1Label', 'claimed_agent_id'],
    ['flexString1', e.agent_id],
    ['act', e.decision],
    ['reason', e.reason],
    ['cs1Label', 'tool'],
    ['cs1', e.tool],
    ['cs2Label', 'request_id'],
    ['cs2', e.request_id],
    ['cs3Label', 'session_id'],
    ['cs3', e.session_id],
    ['cs4Label', 'layer'],
    ['cs4', e.layer],
    ['cs5Label', 'policy_version'],
    ['cs5', e.policy_version],
    ['cs6Label', 'hash'],
    ['cs6', e.hash],
    ['cn1Label', 'risk_score'],
    ['cn1', e.risk.score],
    ['cn2Label', 'seq'],
    ['cn2', e.seq],
  ]
  const extension = ext
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ')
  const severity = CEF_SEVERITY[e.risk.level] ?? 0
  return `CEF:0|Warden|Warden|1|${header(e.type)}|${header(`${e.type}: ${e.tool ?? '-'}`)}|${severity}|${extension}`
}

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

/** RFC 4180 quoting, plus a leading quote mark on formula-like cells so spreadsheets do not run them. */
function csvField(value: unknown): string {
  if (value === undefined || value === null) return ''
  let s = String(value)
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

const CEF_SEVERITY: Record<string, number> = { low: 3, medium: 5, high: 8, critical: 10 }

/**
 * ArcSight Common Event Format, one event per line, for SIEMs: header fields are
 * `Vendor|Product|Version|Signature ID|Name|Severity` (pipes and backslashes escaped), then
 * key=value extensions (equals signs, backslashes and line breaks escaped).
 */
function cefLine(e: ReturnType<typeof parseStored>): string {
  const header = (v: string) => v.replace(/[\\|]/g, (c) => `\\${c}`)
  const value = (v: unknown) =>
    String(v)
      .replace(/[\\=]/g, (c) => `\\${c}`)
      .replace(/\r?\n|\r/g, '\\n')
  const ext: [string, unknown][] = [
    ['rt', Date.parse(e.timestamp)],
    ['externalId', e.id],
    ['suser', e.agent_id],
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

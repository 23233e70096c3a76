import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { LoadedConfig } from '../config/loader.js'
import {
  Replayer,
  sumTallies,
  type ReplayOptions,
  type ReplaySummary,
  type Tally,
  type TraceReport,
} from '../replay/replay.js'
import { parseTrace } from '../replay/traces.js'
import type { Io } from './commands.js'

/**
 * `warden replay FILE`: run recorded sessions (one trace per line, AgentDojo's format) through
 * the pipeline without executing tools, and report what was allowed, held and denied. A line that
 * is not a valid trace is reported on stderr and counted; the exit code is then 1.
 */
export async function replayCommand(
  file: string,
  loaded: LoadedConfig,
  options: ReplayOptions,
  json: boolean,
  io: Io,
): Promise<number> {
  const replayer = new Replayer(loaded, options, (err) =>
    io.err(`taint could not be recorded: ${(err as Error).message}`),
  )
  const lines = createInterface({
    input: file === '-' ? process.stdin : createReadStream(file),
    crlfDelay: Infinity,
  })
  let n = 0
  for await (const line of lines) {
    n++
    if (line.trim() === '') continue
    const parsed = parseTrace(line)
    if ('error' in parsed) {
      replayer.invalid()
      io.err(`${file}:${n}: ${parsed.error}`)
      continue
    }
    await replayer.replay(parsed.trace)
  }
  const summary = replayer.result()
  if (json) io.out(JSON.stringify(summary))
  else for (const l of summaryLines(summary)) io.out(l)
  return summary.invalid_traces > 0 ? 1 : 0
}

const pct = (part: number, whole: number) =>
  whole === 0 ? '—' : `${((100 * part) / whole).toFixed(1)}%`

function row(name: string, t: Tally, allowedWord = 'allowed'): string {
  return `${name.padEnd(28)} ${String(t.calls).padStart(6)}  ${allowedWord} ${String(t.allowed).padStart(5)} (${pct(t.allowed, t.calls)})  held ${String(t.held).padStart(5)} (${pct(t.held, t.calls)})  denied ${String(t.denied).padStart(5)} (${pct(t.denied, t.calls)})`
}

/**
 * One trace, call by call: who made the call, the decision and its layer, and where each
 * sensitive value came from (`param←source`, `injected` for a flagged passage, `?` for a text kept
 * only in part, `nowhere` when found in no session text).
 */
function traceLines(t: TraceReport): string[] {
  const lines = [`${t.id} (${t.label}):`]
  for (const c of t.calls ?? []) {
    const why = c.decision === 'allow' ? '' : ` [${c.layer}${c.code ? ` ${c.code}` : ''}]`
    const origins = Object.entries(c.provenance ?? {}).map(
      ([param, os]) =>
        `${param}←${
          os.length === 0
            ? 'nowhere'
            : os
                .map(
                  (o) =>
                    `${o.from}${o.injected ? ' injected' : ''}${o.flagged ? ' flagged' : ''}${o.late ? ' late' : ''}${o.maybe ? ' ?' : ''}`,
                )
                .join(', ')
        }`,
    )
    const after = c.after_injection ? ' (after injection)' : ''
    lines.push(
      `  ${c.role.padEnd(8)} ${c.tool} → ${c.decision}${why}${after}${origins.length ? `  ${origins.join('; ')}` : ''}`,
    )
  }
  return lines
}

function summaryLines(s: ReplaySummary): string[] {
  const lines = [
    `${s.traces} traces replayed${s.invalid_traces ? `, ${s.invalid_traces} invalid` : ''}`,
  ]
  const suites = Object.values(s.by_suite)
  for (const trace of s.trace_detail ?? []) lines.push(...traceLines(trace))
  for (const [suite, t] of Object.entries(s.by_suite)) {
    lines.push(`${suite || '(no suite)'}:`)
    lines.push(row('  benign traces, user calls', t.benign))
    lines.push(row('  injected traces, user calls', t.under_attack))
    lines.push(row('  attacker calls', t.attacker, 'executed'))
  }
  const total = (g: keyof ReplaySummary['by_suite'][string]) => sumTallies(suites.map((t) => t[g]))
  lines.push(
    'total:',
    row('  benign traces, user calls', total('benign')),
    row('  injected traces, user calls', total('under_attack')),
    row('    after the injection', total('after_injection')),
    row('  attacker calls', total('attacker'), 'executed'),
  )
  return lines
}

/**
 * Every shell example of README.md and docs/*.md runs as written (issue 15, item 6).
 *
 * The fenced blocks marked `sh`, `bash` or `shell` are extracted in document order and run with
 * bash (`set -e -o pipefail`: a failing command fails its block) from the repository root. Each
 * document gets a gateway of its own, started the way `npm start` starts it (`node bin/warden.js
 * start`: gateway, agent API and dashboard, demo configuration, embedded SQLite store in a temp
 * folder), and its blocks run twice in a row on it, as a person doing the walkthrough twice
 * would; after each pass no tool run recorded in the audit log may have failed (a refund refused
 * for lack of balance is one).
 *
 * The only changes made to a block before it runs: the ports 8004, 8005 and 8006 become free ports
 * (so a Warden already running on this machine is not disturbed), and the environment says where
 * the temp store is (`WARDEN_SQLITE_PATH`, `AGENT_RUNS_PATH`) and where the gateway listens
 * (`GATEWAY_URL`, and `WARDEN_URL` for the TypeScript client's examples). Blocks that cannot run in a test are in SKIP, each with its reason; every entry
 * must match exactly one block, so the list cannot go stale. Needs `dist/` and `dashboard/dist/`
 * (`npm run build`) and `jq`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Blocks that are not run, by file and the start of their first line, with the reason. */
const SKIP: { file: string; starts: string; reason: string }[] = [
  {
    file: 'README.md',
    starts: 'npm ci',
    reason: 'installing and starting are what the test itself does (a second start would clash)',
  },
  {
    file: 'README.md',
    starts: 'npx --no-install warden demo reset',
    reason: 'needs the gateway stopped, then starts it again (test/demo-reset.test.ts does both)',
  },
  {
    file: 'docs/integrate.md',
    starts: 'npm ci',
    reason: 'installing and starting are what the test itself does (a second start would clash)',
  },
  { file: 'README.md', starts: 'npm test', reason: 'the whole suite, of which this test is part' },
  {
    file: 'README.md',
    starts: 'docker build',
    reason: 'needs a Docker daemon (npm run test:docker)',
  },
  {
    file: 'README.md',
    starts: 'apt-get install -y docker.io',
    reason: 'installs system packages as root and builds a Docker base image',
  },
  { file: 'README.md', starts: 'docker run -d', reason: 'needs a Docker daemon' },
  { file: 'README.md', starts: 'cp .env.example', reason: 'docker compose: needs a Docker daemon' },
  {
    file: 'docs/operations.md',
    starts: '# stop the gateway',
    reason: 'restores over the live store: needs the gateway stopped (test/backup.test.ts)',
  },
  {
    file: 'docs/operations.md',
    starts: 'pg_dump',
    reason: 'needs a PostgreSQL database with a warden schema (test/backup.test.ts)',
  },
  {
    file: 'docs/operations.md',
    starts: 'createdb',
    reason: 'creates and restores a PostgreSQL database (test/backup.test.ts)',
  },
]

interface Block {
  file: string
  line: number
  text: string
}

/** The fenced sh/bash/shell blocks of a Markdown file, in order, with their indentation removed. */
export function shellBlocks(file: string, markdown: string): Block[] {
  const blocks: Block[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)\s*$/.exec(lines[i]!)
    if (!open) continue
    const [, indent, fence, lang] = open as unknown as [string, string, string, string]
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`)
      if (close.test(lines[j]!)) break
      body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!)
    }
    if (['sh', 'bash', 'shell'].includes(lang.toLowerCase()))
      blocks.push({ file, line: i + 1, text: body.join('\n') })
    i = j
  }
  return blocks
}

function documentBlocks(): Block[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .sort()
      .map((f) => `docs/${f}`),
  ]
  return files.flatMap((f) => shellBlocks(f, readFileSync(join(ROOT, f), 'utf8')))
}

function skipOf(block: Block) {
  const first = block.text.trimStart()
  return SKIP.find((s) => s.file === block.file && first.startsWith(s.starts))
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('the extractor', () => {
  it('takes only sh, bash and shell fences, indented ones too, and keeps their order', () => {
    const md = [
      '```bash',
      'echo one',
      '```',
      '```ts',
      'const x = 1',
      '```',
      '- a list item:',
      '  ```sh',
      '  echo two',
      '  ```',
      '```',
      'plain fence',
      '```',
      '~~~shell',
      'echo three',
      '~~~',
    ].join('\n')
    expect(shellBlocks('x.md', md).map((b) => [b.line, b.text])).toEqual([
      [1, 'echo one'],
      [8, 'echo two'],
      [14, 'echo three'],
    ])
  })
})

describe('README and docs shell examples', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-docs-'))
  const untrackedBefore = new Set<string>()
  const files = [...new Set(documentBlocks().map((b) => b.file))]

  beforeAll(() => {
    for (const f of ['dist/main.js', 'dashboard/dist/index.html'])
      if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\``)
    if (spawnSync('jq', ['--version']).status !== 0) throw new Error('jq is not installed')
    for (const f of untracked()) untrackedBefore.add(f)
  })

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
    // What the examples wrote in the repository (an export, a backup) goes again.
    for (const f of untracked())
      if (!untrackedBefore.has(f)) rmSync(join(ROOT, f), { recursive: true, force: true })
  })

  it('every entry of the skip list names exactly one block', () => {
    const blocks = documentBlocks()
    for (const s of SKIP)
      expect(
        blocks.filter((b) => skipOf(b) === s).length,
        `${s.file}: ${s.starts} (${s.reason})`,
      ).toBe(1)
    expect(files).toContain('README.md')
    expect(files).toContain('docs/policy-guide.md')
  })

  // Each document starts from a fresh demo (its own gateway and store), as a reader who opens it
  // after `npm start` would, and is then followed a second time on the same gateway.
  for (const file of files) {
    describe(file, () => {
      const env: NodeJS.ProcessEnv = {}
      const ports: Record<number, number> = {}
      let gateway: ChildProcess | undefined
      let log = ''

      beforeAll(async () => {
        for (const p of [8004, 8005, 8006]) ports[p] = await freePort()
        const data = mkdtempSync(join(dir, 'data-'))
        Object.assign(env, {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          LOG_LEVEL: 'warn',
          PORT: String(ports[8004]),
          AGENTS_PORT: String(ports[8005]),
          DASHBOARD_PORT: String(ports[8006]),
          GATEWAY_URL: `http://127.0.0.1:${ports[8004]}`,
          // The TypeScript client's examples (docs/integrate.md) read the gateway's address here.
          WARDEN_URL: `http://127.0.0.1:${ports[8004]}`,
          WARDEN_SQLITE_PATH: join(data, 'warden.db'),
          AGENT_RUNS_PATH: join(data, 'agent-runs.db'),
        })
        gateway = spawn(process.execPath, ['bin/warden.js', 'start'], { cwd: ROOT, env })
        gateway.stdout!.on('data', (d: Buffer) => (log += d.toString()))
        gateway.stderr!.on('data', (d: Buffer) => (log += d.toString()))
        const deadline = Date.now() + 60_000
        for (;;) {
          const ready = await fetch(`http://127.0.0.1:${ports[8004]}/health/ready`).then(
            (r) => r.ok,
            () => false,
          )
          const agents = await fetch(`http://127.0.0.1:${ports[8005]}/health`).then(
            (r) => r.ok,
            () => false,
          )
          if (ready && agents) break
          if (gateway.exitCode !== null || Date.now() > deadline)
            throw new Error(`the gateway did not start:\n${log}`)
          await new Promise((r) => setTimeout(r, 250))
        }
      }, 90_000)

      afterAll(async () => {
        if (gateway && gateway.exitCode === null) {
          gateway.kill('SIGTERM')
          await new Promise((r) => gateway!.once('exit', r))
        }
      })

      for (const pass of [1, 2]) {
        it(`pass ${pass}: every block runs as written and no tool run fails`, () => {
          const blocks = documentBlocks().filter((b) => b.file === file && !skipOf(b))
          for (const block of blocks) {
            const script = block.text.replace(/\b(800[456])\b/g, (p) => String(ports[Number(p)]))
            const run = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', script], {
              cwd: ROOT,
              env,
              encoding: 'utf8',
              timeout: 120_000,
            })
            expect(
              run.status,
              `${block.file}:${block.line} exited ${run.status}\n--- block\n${block.text}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`,
            ).toBe(0)
          }
          // Every tool run recorded so far succeeded (a refund the demo backend refused is
          // `error`). curl, not fetch: a kept-alive connection idle through the blocks may have
          // been closed.
          const exported = spawnSync(
            'curl',
            [
              '-sSf',
              '-H',
              'authorization: Bearer demo-approver-token',
              `http://127.0.0.1:${ports[8004]}/audit/export?format=jsonl`,
            ],
            { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
          )
          expect(exported.status, `${exported.stderr}\n${log}`).toBe(0)
          const events = exported.stdout
            .split('\n')
            .filter(Boolean)
            .map(
              (l) =>
                JSON.parse(l) as { type: string; tool: string; outcome?: string; result?: unknown },
            )
          const runs = events.filter((e) => e.type === 'tool_call_executed')
          const failed = runs.filter((e) => e.outcome !== 'ok')
          expect(failed.map((e) => `${e.tool}: ${JSON.stringify(e.result)}`)).toEqual([])
          // The walkthrough's approved refunds ran: two per pass (the curl steps and the agent
          // API).
          if (file === 'README.md')
            expect(runs.filter((e) => e.tool === 'issue_refund').length).toBe(2 * pass)
        }, 600_000)
      }
    })
  }
})

function untracked(): string[] {
  const out = spawnSync('git', ['ls-files', '--others', '--exclude-standard', '--directory'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
  return out.stdout.split('\n').filter(Boolean)
}

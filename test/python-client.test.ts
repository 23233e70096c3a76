import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { APPROVER, startWarden } from './helpers.js'

const CLIENT_DIR = fileURLToPath(new URL('../clients/python', import.meta.url))
/** How many tests clients/python/test_warden_client.py has: a lost test must not go unnoticed. */
const EXPECTED_TESTS = 26

/** Run a command to the end without blocking this process's event loop (the gateway is in it). */
function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: CLIENT_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    // No python3 is an error here, not a skip: CI must have it.
    child.on('error', (e) =>
      reject(new Error(`cannot run ${cmd} (the Python client needs python3 >= 3.9): ${e.message}`)),
    )
    child.on('close', (code) => resolve({ code, out, err }))
  })
}

/**
 * The Python client (clients/python/warden_client.py), run by its own unittest suite against a
 * real gateway on the demo configuration: allowed, denied, held then approved or denied, bad
 * key, timeouts and retries with the same Idempotency-Key.
 */
describe('Python client against a real gateway', () => {
  let w: Awaited<ReturnType<typeof startWarden>>
  let url: string

  beforeAll(async () => {
    w = await startWarden()
    url = await w.app.listen({ port: 0, host: '127.0.0.1' })
  })
  afterAll(async () => {
    await w.close()
  })

  it('passes its unittest suite with python3', async () => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: 'C.UTF-8',
      PYTHONDONTWRITEBYTECODE: '1',
      WARDEN_URL: url,
      WARDEN_APPROVER_TOKEN: APPROVER,
    }
    const { code, err } = await run('python3', ['-m', 'unittest', '-v', 'test_warden_client'], env)
    // unittest writes its report to stderr; shown in full when something fails.
    const ran = /^Ran (\d+) tests? in /m.exec(err)
    expect({ code, ran: Number(ran?.[1]), ok: /^OK$/m.test(err) }, err).toEqual({
      code: 0,
      ran: EXPECTED_TESTS,
      ok: true,
    })
  }, 120_000)

  it('counts every test of the suite', () => {
    const source = readFileSync(`${CLIENT_DIR}/test_warden_client.py`, 'utf8')
    expect(source.match(/^ {4}def test_\w+\(/gm)?.length).toBe(EXPECTED_TESTS)
  })

  it('the client module loads no module outside the standard library', async () => {
    // -I -S: isolated, no site-packages at all; then list what importing the client added.
    const script = [
      'import sys',
      `sys.path.insert(0, ${JSON.stringify(CLIENT_DIR)})`,
      'before = set(sys.modules)',
      'import warden_client',
      'added = set(sys.modules) - before',
      "extra = sorted(m for m in added if m.split('.')[0] not in sys.stdlib_module_names)",
      'print(warden_client.__version__, extra)',
    ].join('\n')
    const { code, out, err } = await run('python3', ['-I', '-S', '-B', '-c', script], {
      PATH: process.env.PATH,
    })
    expect({ code, err, out: out.trim() }).toEqual({
      code: 0,
      err: '',
      out: expect.stringMatching(/^\d+\.\d+\.\d+ \['warden_client'\]$/) as unknown,
    })
  })
})

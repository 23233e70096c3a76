import { mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config/loader.js'
import { DEMO_CONFIG } from './helpers.js'

const CONFIG_ROOT = fileURLToPath(new URL('../config/', import.meta.url))
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))
const examples = [CONFIG_ROOT, FIXTURES].flatMap((root) =>
  readdirSync(root)
    .map((d) => join(root, d, 'warden.yaml'))
    .filter((f) => existsSync(f)),
)

describe('example configurations', () => {
  it('include the demo', () => expect(examples).toContain(DEMO_CONFIG))

  it.each(examples)('%s loads and validates', (file) => {
    const loaded = loadConfig(file)
    expect(loaded.policyVersion).toMatch(/^[\w.-]+\+[0-9a-f]{12}$/)
    expect(Object.isFrozen(loaded.config.agents[0])).toBe(true)
  })
})

/** Copy the demo configuration into a temp dir, apply `edit` to one file, and load it. */
function loadEdited(file: string, edit: (text: string) => string): () => unknown {
  return loadEditedFiles({ [file]: edit })
}

/** Copy the demo configuration into a temp dir, apply an edit per file, and load it. */
function loadEditedFiles(edits: Record<string, (text: string) => string>): () => unknown {
  const dir = mkdtempSync(join(tmpdir(), 'warden-config-'))
  for (const f of ['warden.yaml', 'agents.yaml', 'tools.yaml', 'policy.yaml', 'mcp.yaml']) {
    const text = readFileSync(join(CONFIG_ROOT, 'demo', f), 'utf8')
    writeFileSync(join(dir, f), edits[f]?.(text) ?? text)
  }
  return () => loadConfig(join(dir, 'warden.yaml'))
}

describe('a bad configuration is refused, naming the file and the field', () => {
  const cases: [string, string, (t: string) => string, RegExp][] = [
    [
      'a trusted proxy that is neither an address, a range nor a preset',
      'warden.yaml',
      (t) => t.replace('  read_access: open', '  read_access: open\n  trust_proxy: [my-balancer]'),
      /warden\.yaml: server\.trust_proxy\[0\]/,
    ],
    [
      'unknown tool on an allowlist',
      'agents.yaml',
      (t) => t.replace('- search_knowledge_base\n', '- search_kb\n'),
      /agents\.yaml: agents\[0\]\.tools\[0\]: unknown tool `search_kb`/,
    ],
    [
      'bad clearance value',
      'agents.yaml',
      (t) => t.replace('clearance: confidential', 'clearance: secret'),
      /agents\.yaml: agents\[0\]\.clearance/,
    ],
    [
      'a key that is not a SHA-256',
      'agents.yaml',
      (t) => t.replace(/key_sha256: 8240[0-9a-f]+/, 'key_sha256: demo-support-agent-key'),
      /agents\.yaml: agents\[0\]\.key_sha256: must be 64 lowercase hex/,
    ],
    [
      'two agents with the same key',
      'agents.yaml',
      (t) =>
        t.replace(
          '705725e3efd6ed3e666df36abc04a492bb47e9cd1544a85d16354c03cd462c0b',
          '8240852ef9f9784a977bc68474412720807b768f5b3d281c49015808e224796b',
        ),
      /duplicate credential hash/,
    ],
    [
      'a sum rule without its limit',
      'policy.yaml',
      (t) => t.replace('sum_param: amount, sum_over: 600,', 'sum_param: amount,'),
      /policy\.yaml: sequence\.rules\[2\]\.after: needs `at_least`, or `sum_param` with `sum_over`/,
    ],
    [
      'a sum rule on an unknown parameter',
      'policy.yaml',
      (t) => t.replace('sum_param: amount,', 'sum_param: total,'),
      /policy\.yaml: sequence\.rules\[2\]\.after\.sum_param: tool `issue_refund` has no parameter `total`/,
    ],
    [
      'a sequence rule with both a count and a precondition',
      'policy.yaml',
      (t) =>
        t.replace(
          '      tool: issue_refund\n      after: { tool: issue_refund, at_least: 3',
          '      tool: issue_refund\n      requires: { tool: lookup_order, same_param: order_id, within_seconds: 60 }\n      after: { tool: issue_refund, at_least: 3',
        ),
      /policy\.yaml: sequence\.rules\[1\]: a sequence rule has exactly one of `after`, `requires` and `follows`/,
    ],
    [
      'unknown field',
      'tools.yaml',
      (t) => t.replace('risk: low', 'risk: low\n    riks: high'),
      /tools\.yaml: tools\[0\]: .*riks/,
    ],
    [
      'an open parameter schema',
      'tools.yaml',
      (t) => t.replace('additionalProperties: false\n      required: [query]', 'required: [query]'),
      /tools\.yaml: tools\[0\]\.params: params must set `additionalProperties: false`/,
    ],
    [
      'invalid CEL',
      'policy.yaml',
      (t) => t.replace('when: \'agent.role != "billing"\'', "when: 'agent.role != '"),
      /policy\.yaml: policy\.rules\[3\]\.when: invalid CEL/,
    ],
    [
      'a CEL field typo',
      'policy.yaml',
      (t) => t.replace('when: \'agent.role != "billing"\'', 'when: \'agent.rol != "billing"\''),
      /policy\.yaml: policy\.rules\[3\]\.when: invalid CEL: No such key: rol/,
    ],
    [
      'a rule reading an unknown parameter',
      'policy.yaml',
      (t) => t.replace('size(params.reason)', 'size(params.note)'),
      /policy\.yaml: policy\.rules\[4\]\.when: tool `issue_refund` has no parameter `note`/,
    ],
    [
      'a guard on an unknown parameter',
      'policy.yaml',
      (t) => t.replace('param: amount', 'param: amout'),
      /policy\.yaml: guards\[0\]\.param: tool `issue_refund` has no parameter `amout`/,
    ],
    [
      'a repeated YAML key',
      'policy.yaml',
      (t) => t.replace('  hold_at: 0.5', '  hold_at: 0.5\n  hold_at: 0.6'),
      /policy\.yaml: invalid YAML/,
    ],
    [
      'a missing include',
      'warden.yaml',
      (t) => t.replace('- policy.yaml', '- nowhere.yaml'),
      /nowhere\.yaml: cannot read/,
    ],
    [
      'messaging edges outside the demo without a signing secret',
      'warden.yaml',
      (t) => t.replace('demo: true', 'demo: false'),
      /policy\.yaml: messaging\.signing_secret: required when `messaging\.edges` is set outside the demo/,
    ],
    [
      'a short previous messaging secret',
      'policy.yaml',
      (t) => t.replace('  max_chain: 3', '  max_chain: 3\n  previous_signing_secrets: [short]'),
      /policy\.yaml: messaging\.previous_signing_secrets\[0\]: must be at least 32 characters/,
    ],
  ]
  it.each(cases)('%s', (_name, file, edit, message) => {
    const load = loadEdited(file, edit)
    expect(load).toThrow(ConfigError)
    expect(load).toThrow(message)
  })
})

describe('the loaded configuration', () => {
  it('is frozen', () => {
    const { config } = loadConfig(DEMO_CONFIG)
    expect(() => {
      ;(config.agents[0]!.tools as string[]).push('issue_refund')
    }).toThrow(TypeError)
  })

  it('outside the demo, messaging edges load once a signing secret is given', () => {
    const secret = 'messaging-secret-0123456789abcdef0123'
    const load = loadEditedFiles({
      'warden.yaml': (t) => t.replace('demo: true', 'demo: false'),
      'policy.yaml': (t) =>
        t.replace('  max_chain: 3', `  max_chain: 3\n  signing_secret: ${secret}`),
    })
    const { config } = load() as ReturnType<typeof loadConfig>
    expect(config.demo).toBe(false)
    expect(config.messaging.signing_secret).toBe(secret)
  })

  it('changes its policy version when the policy changes', () => {
    const a = loadConfig(DEMO_CONFIG).policyVersion
    const b = (
      loadEdited('policy.yaml', (t) =>
        t.replace('allow_up_to: 100', 'allow_up_to: 50'),
      )() as ReturnType<typeof loadConfig>
    ).policyVersion
    expect(b).not.toBe(a)
  })
})

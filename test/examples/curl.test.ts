/**
 * examples/curl.md: every command shown with its output is run (curl against a real server)
 * and must answer what the page shows. Conventions of the page: numbers to the four or so
 * digits shown (1e-3 relative, 1e-4 absolute), objects may show only some fields, a string or list ending in "..." is a
 * prefix; typed base64 tensors are compared by value. Skipped, saying why, without curl.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startServer, waitReady } from '../helpers/server'
import { fromForm, mismatch } from '../helpers/tensors'

const page = path.join(__dirname, '..', '..', 'examples', 'curl.md')

interface Step { command: string, lang: string, expected: string, line: number }

/** Each ```sh block followed directly by a ```json or ```text block; a curl block must have one. */
export function steps (markdown: string): Step[] {
  const blocks = [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(m => ({
    lang: m[1], body: m[2].trim(), line: markdown.slice(0, m.index).split('\n').length
  }))
  const out: Step[] = []
  blocks.forEach((b, i) => {
    if (b.lang !== 'sh') return
    const next = blocks[i + 1]
    if (next !== undefined && (next.lang === 'json' || next.lang === 'text')) out.push({ command: b.body, lang: next.lang, expected: next.body, line: b.line })
    else if (/^curl\b/.test(b.body)) throw new Error(`curl.md line ${b.line}: a curl command without its output block`)
  })
  return out
}

const isTyped = (v: unknown): v is { dtype: string, shape: number[], data: string } =>
  typeof v === 'object' && v !== null && typeof (v as { dtype?: unknown }).dtype === 'string' && typeof (v as { data?: unknown }).data === 'string'

/** Where `actual` differs from what the page shows (`expected`), by the page's conventions. */
export function differences (actual: unknown, expected: unknown, at = '$'): string[] {
  if (typeof expected === 'number') {
    return typeof actual === 'number' && mismatch([actual], [expected], 1e-3, 1e-4) === undefined ? [] : [`${at}: ${JSON.stringify(actual)}, page shows ${expected}`]
  }
  if (typeof expected === 'string') {
    const ok = typeof actual === 'string' && (expected.endsWith('...') ? actual.startsWith(expected.slice(0, -3)) : actual === expected)
    return ok ? [] : [`${at}: ${JSON.stringify(actual)}, page shows ${JSON.stringify(expected)}`]
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${at}: ${JSON.stringify(actual)} is not a list`]
    const prefix = expected[expected.length - 1] === '...'
    const shown = prefix ? expected.slice(0, -1) : expected
    if (prefix ? actual.length < shown.length : actual.length !== shown.length) return [`${at}: ${actual.length} items, page shows ${shown.length}${prefix ? ' or more' : ''}`]
    return shown.flatMap((e, i) => differences(actual[i], e, `${at}[${i}]`))
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) return [`${at}: ${JSON.stringify(actual)} is not an object`]
    if (isTyped(expected) && isTyped(actual)) {
      // base64 bytes may differ in the last bit of a float; the values must agree
      const [a, e] = [fromForm(actual), fromForm(expected)]
      const d = mismatch(a.data, e.data, 1e-4, 1e-5)
      return a.dtype === e.dtype && JSON.stringify(a.shape) === JSON.stringify(e.shape) && d === undefined ? [] : [`${at}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}${d === undefined ? '' : ` (${d})`}`]
    }
    return Object.entries(expected).flatMap(([k, e]) => k in actual ? differences((actual as Record<string, unknown>)[k], e, `${at}.${k}`) : [`${at}.${k}: missing`])
  }
  return actual === expected ? [] : [`${at}: ${JSON.stringify(actual)}, page shows ${JSON.stringify(expected)}`]
}

t.test('the page conventions catch what they should', async t => {
  t.same(differences({ loss: 0.52237, grad: { input: [1, 2] } }, { loss: 0.5224 }), [], 'rounded numbers, some fields')
  t.not(differences({ loss: 0.53 }, { loss: 0.5224 }).length, 0, 'a wrong number')
  t.not(differences({ a: [1, 2, 3] }, { a: [1, 2] }).length, 0, 'a list of another length')
  t.same(differences({ a: [1, 2, 3] }, { a: [1, '...'] }), [], 'a list prefix')
  t.not(differences({ m: 'shape: bad' }, { m: 'target: ...' }).length, 0, 'a string prefix')
  t.not(differences({}, { code: 'X' }).length, 0, 'a missing field')
  t.throws(() => steps('```sh\ncurl -s x\n```\n\nno output\n'), /without its output block/)
})

function missing (): string | false {
  return spawnSync('curl', ['--version']).status === 0 ? false : 'curl is not installed'
}

t.test('every command of examples/curl.md answers what the page shows', { skip: missing() }, async t => {
  const all = steps(fs.readFileSync(page, 'utf8'))
  t.ok(all.filter(s => s.command.startsWith('curl')).length >= 10, `${all.length} steps found`)
  // one process, and no load shedding while tap keeps the machine busy: these test the examples
  const server = await startServer(t, { WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
  await waitReady(server.url)
  const host = new URL(server.url).host
  for (const step of all) {
    const curl = step.command.startsWith('curl')
    t.notMatch(step.command, /\|/, `line ${step.line}: no pipes (the status is read from curl itself)`)
    const command = step.command.replaceAll('localhost:8080', host) + (curl ? " -w '\\n%{http_code}'" : '')
    const r = spawnSync('sh', ['-c', command], { encoding: 'utf8', timeout: 30_000 })
    t.equal(r.status, 0, `line ${step.line}: exits 0 ${r.stderr}`)
    let body = r.stdout.trim()
    let status = 200
    if (curl) {
      const nl = body.lastIndexOf('\n')
      status = Number(body.slice(nl + 1))
      body = body.slice(0, nl)
    }
    if (step.lang === 'text') {
      t.same(differences(body, step.expected), [], `line ${step.line}: ${step.command.split('\n')[0]}`)
      continue
    }
    const expected = JSON.parse(step.expected)
    t.equal(status, expected.statusCode ?? 200, `line ${step.line}: HTTP status`)
    t.same(differences(JSON.parse(body), expected), [], `line ${step.line}: ${step.command.split('\n')[0]}`)
  }
})

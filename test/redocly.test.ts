/**
 * redocly.yaml: openapi.yaml lints clean (`npm test` also runs the lint), and the rules chosen
 * there catch what they are for, on broken copies of the document.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import YAML from 'yaml'

const root = path.join(__dirname, '..')
const bin = path.join(root, 'node_modules', '.bin', 'redocly')

interface Lint { status: number | null, errors: number, rules: string[] }

/** `redocly lint` offline on `spec` (a document object), with the repo's config and ignore file beside it. */
function lint (spec: unknown): Lint {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'losshub-redocly-'))
  try {
    for (const f of ['redocly.yaml', '.redocly.lint-ignore.yaml']) fs.copyFileSync(path.join(root, f), path.join(dir, f))
    fs.writeFileSync(path.join(dir, 'openapi.yaml'), YAML.stringify(spec))
    const r = spawnSync(bin, ['lint', 'openapi.yaml', '--format=json'], {
      cwd: dir, encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }
    })
    const out = JSON.parse(r.stdout)
    return { status: r.status, errors: out.totals.errors, rules: out.problems.map((p: { ruleId: string }) => p.ruleId) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const spec = YAML.parse(fs.readFileSync(path.join(root, 'openapi.yaml'), 'utf8'))

t.test('openapi.yaml lints clean', async t => {
  const r = lint(spec)
  t.same(r.rules, [])
  t.equal(r.status, 0)
})

t.test('the chosen rules catch what they are for', async t => {
  const broken = structuredClone(spec)
  const op = broken.paths['/loss/mse'].post
  op.responses['400'].content['application/json'].schema = { type: 'object', properties: { detail: { type: 'string' } } }
  op.responses['413'].description = 'Default Response'
  delete op.description
  delete broken.paths['/loss/l1'].post.operationId
  broken.paths['/loss/huber'].post.operationId = op.operationId
  const r = lint(broken)
  t.not(r.status, 0, 'the lint fails')
  for (const rule of ['rule/error-response-schema', 'rule/response-description', 'operation-description', 'operation-operationId', 'operation-operationId-unique']) {
    t.ok(r.rules.includes(rule), `${rule} is reported`)
  }
})

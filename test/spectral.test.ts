/**
 * .spectral.yaml: openapi.yaml passes Spectral's spectral:oas rules with nothing left at any
 * severity (`npm test` also runs `npm run lint:spectral`), and the rules are live: a broken copy
 * of the document is reported.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import YAML from 'yaml'

const root = path.join(__dirname, '..')
const bin = path.join(root, 'node_modules', '.bin', 'spectral')

/** The codes of what `spectral lint` finds in `spec` (a document object), with the repo's ruleset. */
function lint (spec: unknown): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'losshub-spectral-'))
  try {
    fs.copyFileSync(path.join(root, '.spectral.yaml'), path.join(dir, '.spectral.yaml'))
    fs.writeFileSync(path.join(dir, 'openapi.yaml'), YAML.stringify(spec))
    const r = spawnSync(bin, ['lint', 'openapi.yaml', '--ruleset', '.spectral.yaml', '--format=json', '--quiet', '--fail-severity=hint'], { cwd: dir, encoding: 'utf8' })
    const out = r.stdout.trim()
    return out === '' ? [] : JSON.parse(out).map((p: { code: string }) => p.code)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const spec = YAML.parse(fs.readFileSync(path.join(root, 'openapi.yaml'), 'utf8'))

t.test('openapi.yaml passes spectral:oas with nothing found, hints included', async t => {
  t.same(lint(spec), [])
})

t.test('the rules catch what they are for', async t => {
  const broken = structuredClone(spec)
  delete broken.servers
  broken.paths['/loss/l1'].post.operationId = broken.paths['/loss/mse'].post.operationId
  delete broken.paths['/loss/huber'].post.description
  broken.paths['/loss/mse'].post.tags = ['undeclared']
  const found = lint(broken)
  for (const rule of ['oas3-api-servers', 'operation-operationId-unique', 'operation-description', 'operation-tag-defined']) {
    t.ok(found.includes(rule), `${rule} is reported`)
  }
})

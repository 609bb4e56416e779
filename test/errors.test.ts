import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ERRORS } from '../src/errors'

// docs/errors.md documents the code table of src/errors.ts: both directions must agree.
const doc = fs.readFileSync(path.join(__dirname, '..', 'docs', 'errors.md'), 'utf8')
const rows = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \| (.+) \|$/gm)].map(m => [m[1], { status: Number(m[2]), meaning: m[3] }]))

t.test('every code in src/errors.ts is documented with its status and meaning', async t => {
  for (const [code, e] of Object.entries(ERRORS)) t.same(rows.get(code), { status: e.status, meaning: e.meaning }, code)
})

t.test('every documented code exists', async t => {
  for (const code of rows.keys()) t.ok(code in ERRORS, code)
  t.equal(rows.size, Object.keys(ERRORS).length)
})

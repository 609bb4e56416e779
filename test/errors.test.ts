import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ERRORS, MAX_MESSAGE, shortened } from '../src/errors'

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

t.test('shortened: text past the bound is cut to it, a note of what was left out among its characters', async t => {
  t.equal(MAX_MESSAGE, 2000)
  t.equal(shortened('a'.repeat(2000)), 'a'.repeat(2000), 'at the bound: whole')
  const cut = shortened('a'.repeat(2001))
  // 2001 has 4 digits: the note "... (N more characters)" takes 26, which leaves 1974 characters
  t.equal(cut, 'a'.repeat(1974) + '... (27 more characters)')
  t.equal(cut.length, 1998)
  const huge = shortened('b'.repeat(5_000_000))
  t.equal(huge, 'b'.repeat(1971) + '... (4998029 more characters)')
  t.ok(huge.length <= 2000)
  t.equal(shortened('x'.repeat(50), 30), 'x'.repeat(6) + '... (44 more characters)', 'another bound')
  // a character past U+FFFF is not split: its high half would end the kept part
  const emoji = shortened('a'.repeat(1973) + '😀'.repeat(100))
  t.equal(emoji, 'a'.repeat(1973) + '... (200 more characters)')
})

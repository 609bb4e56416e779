import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { DEFAULTS, KEYS, VARS } from '../src/config'
import { LOSSES } from '../src/losses'
import { CONFIG_MARKERS, FILES, lossesDoc, withConfigTable } from '../scripts/docs'
import { build, postLoss } from './helpers/app'

// The README's configuration table and docs/losses.md are generated from the declarations
// (scripts/docs.ts): these tests fail when either is stale, and check what the generated text
// promises (a row per variable, a section per loss, examples that work, links that resolve).
const root = path.join(__dirname, '..')
const read = (file: string): string => fs.readFileSync(path.join(root, file), 'utf8')

t.test('the README\'s configuration table is what `npm run docs` makes of src/config.ts', async t => {
  const readme = read(FILES.readme)
  t.ok(readme.includes(CONFIG_MARKERS.begin) && readme.includes(CONFIG_MARKERS.end), 'the table is between its markers')
  t.ok(withConfigTable(readme) === readme, 'the committed table equals the generated one (run `npm run docs`)')
})

t.test('the README documents every variable once, with its default', async t => {
  const readme = read(FILES.readme)
  const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| `([^`]*)` \|/gm)].map(m => [m[1], m[2]])
  t.same(rows, KEYS.map(key => [VARS[key], String(DEFAULTS[key])]))
})

t.test('docs/losses.md is what `npm run docs` makes of the loss declarations', async t => {
  t.ok(lossesDoc() === read(FILES.losses), 'the committed page equals the generated one (run `npm run docs`)')
})

/** The sections of docs/losses.md by loss name: the text from its heading to the next one. */
function sections (doc: string): Map<string, string> {
  const parts = doc.split(/^### /m).slice(1)
  return new Map(parts.map(p => [p.slice(1, p.indexOf('`', 1)), p.split(/^## /m)[0]]))
}

t.test('docs/losses.md: one section per served loss, in catalog order, with its reference and reductions', async t => {
  const byName = sections(read(FILES.losses))
  t.same([...byName.keys()], LOSSES.map(d => d.name))
  for (const def of LOSSES) {
    const text = byName.get(def.name) ?? ''
    t.ok(text.includes(`Reference: \`${def.reference}\`.`), `${def.name}: reference`)
    for (const a of def.args) t.ok(text.includes(`| \`${a.name}\``), `${def.name}: argument ${a.name}`)
    for (const option of Object.keys(def.options)) t.ok(text.includes(`| \`${option}\` |`), `${def.name}: option ${option}`)
    for (const note of def.notes ?? []) t.ok(text.includes(`- ${note}`), `${def.name}: note`)
  }
  // where losshub reads a reference one way of two, the page says so
  t.match(byName.get('dice'), /v0\.5.*soft_tversky_score/)
  t.match(byName.get('smooth_l1'), /`beta: 0`.*-1/)
  t.match(byName.get('hinge'), /\{0, 1\}.*2t - 1/)
  t.match(byName.get('ctc'), /blank.*INDEX_OUT_OF_RANGE/)
})

t.test('every example of docs/losses.md, sent as written, is answered 200', async t => {
  const app = await build(t)
  for (const [name, text] of sections(read(FILES.losses))) {
    const call = /curl -s localhost:8080\/loss\/(\w+) -H 'content-type: application\/json' \\\n {2}-d '(.*)'\n/.exec(text)
    t.ok(call, `${name}: a curl call`)
    if (call === null) continue
    t.equal(call[1], name, `${name}: the call names its loss`)
    const r = await postLoss(app, name, JSON.parse(call[2]))
    t.equal(r.status, 200, `${name}: ${JSON.stringify(r.body).slice(0, 200)}`)
    t.ok('loss' in r.body, `${name}: a loss`)
  }
})

t.test('every relative link of the README and docs/ points at a file of the repository', async t => {
  const pages = [FILES.readme, 'examples/curl.md', 'bench/README.md', ...fs.readdirSync(path.join(root, 'docs')).map(f => `docs/${f}`)]
  for (const page of pages.filter(p => p.endsWith('.md'))) {
    const text = read(page)
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue // a URL
      const [file, anchor] = target.split('#')
      if (file !== '') t.ok(fs.existsSync(path.join(root, path.dirname(page), file)), `${page}: ${target}`)
      // anchors within docs/losses.md name a loss's heading
      else if (page === FILES.losses) t.ok(text.includes(`### \`${anchor}\``), `${page}: #${anchor}`)
    }
  }
})

t.test('nothing refers to a contract document outside the repository (API.md)', async t => {
  const places = ['src', 'schemas', 'scripts', 'docs', 'examples', 'proto', 'test', 'bench', FILES.readme, 'openapi.yaml']
  const files = places.flatMap(p => {
    const full = path.join(root, p)
    return fs.statSync(full).isDirectory() ? (fs.readdirSync(full, { recursive: true }) as string[]).map(f => path.join(p, f)) : [p]
  }).filter(f => fs.statSync(path.join(root, f)).isFile() && !f.includes('node_modules') && !f.includes('__pycache__'))
  const mentions = files.filter(f => f !== path.join('test', 'docs.test.ts') && read(f).includes('API.md'))
  t.same(mentions, [], 'files naming API.md')
})

/**
 * Writes the documents generated from declarations (npm run docs): the README's configuration
 * table from src/config.ts, and docs/losses.md from the losses of src/losses/.
 * test/docs.test.ts fails when either is stale.
 */
import fs from 'node:fs'
import path from 'node:path'
import { OptionalKind } from '@sinclair/typebox'
import { allowed, CONFIG, DEFAULTS, KEYS, VARS } from '../src/config'
import { LOSSES } from '../src/losses'
import { type ArgDecl, type LossDef } from '../src/losses/loss'
import { TAGS } from '../schemas/document'

const ROOT = path.join(__dirname, '..')

/** Where each generated document lives, relative to the repository. */
export const FILES = { readme: 'README.md', losses: 'docs/losses.md' }

/** The comments around the README's generated configuration table. */
export const CONFIG_MARKERS = {
  begin: '<!-- configuration table: generated from src/config.ts by `npm run docs`; edit the schema there -->',
  end: '<!-- end of configuration table -->'
}

/** Text safe inside a Markdown table cell. */
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')

/** The README's configuration table: one row per environment variable, from CONFIG. */
export function configTable (): string {
  const rows = KEYS.map(key => {
    const { description } = CONFIG.properties[key] as { description: string }
    return `| \`${VARS[key]}\` | \`${String(DEFAULTS[key])}\` | ${cell(allowed(key))} | ${cell(description)} |`
  })
  return ['| variable | default | allowed | meaning |', '|---|---|---|---|', ...rows].join('\n')
}

/** `readme` with the text between the configuration markers replaced by the current table. */
export function withConfigTable (readme: string): string {
  const begin = readme.indexOf(CONFIG_MARKERS.begin)
  const end = readme.indexOf(CONFIG_MARKERS.end)
  if (begin < 0 || end < begin) throw new Error(`${FILES.readme}: the configuration table's markers are missing`)
  return `${readme.slice(0, begin + CONFIG_MARKERS.begin.length)}\n${configTable()}\n${readme.slice(end)}`
}

/** Section titles of the loss categories (their descriptions are the OpenAPI tags'). */
const CATEGORY_TITLES: Record<LossDef['category'], string> = {
  regression: 'Regression',
  classification: 'Classification',
  ranking: 'Embeddings and ranking',
  sequence: 'Sequences',
  segmentation: 'Segmentation'
}

const KIND_WORDS: Record<ArgDecl['kind'], string> = {
  float: 'floats',
  index: 'integers',
  'float-or-index': 'floats or integers'
}

/** An option's JSON Schema, as the loss declarations write them with TypeBox. */
interface OptionSchema {
  type?: string
  enum?: unknown[]
  anyOf?: OptionSchema[]
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  default?: unknown
  description?: string
  [OptionalKind]?: string
}

/** What an option's schema allows, in words: "a number from 0 to 1", "`"binary"` or `"multiclass"`". */
export function allowedValues (s: OptionSchema): string {
  if (s.anyOf !== undefined) return s.anyOf.map(allowedValues).join(', or ')
  if (s.enum !== undefined) {
    const values = s.enum.map(v => `\`${JSON.stringify(v)}\``)
    return values.length === 1 ? values[0] : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`
  }
  if (s.type === 'boolean') return '`true` or `false`'
  const noun = s.type === 'integer' ? 'an integer' : 'a number'
  const low = s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : undefined
  const high = s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : undefined
  if (s.minimum !== undefined && s.maximum !== undefined) return `${noun} from ${s.minimum} to ${s.maximum}`
  return [noun, low, high].filter(p => p !== undefined).join(' ')
}

/** An option's default as the docs show it: the value, "required", or "none" (left out, off). */
function defaultOf (s: OptionSchema): string {
  if ('default' in s) return `\`${JSON.stringify(s.default)}\``
  return s[OptionalKind] === 'Optional' ? 'none' : 'required'
}

/** The `curl` call of a loss's catalog example: a body that works. */
function exampleCall (def: LossDef): string {
  const body = JSON.stringify(def.example).replace(/'/g, "'\\''")
  return ['```sh', `curl -s localhost:8080/loss/${def.name} -H 'content-type: application/json' \\`, `  -d '${body}'`, '```'].join('\n')
}

/** One loss's section of docs/losses.md. */
function lossSection (def: LossDef): string {
  const lines = [`### \`${def.name}\``, '', def.summary, '', `Reference: \`${def.reference}\`.`, '']
  lines.push('| argument | elements | gradient | shape and meaning |', '|---|---|---|---|')
  for (const a of def.args) {
    const elements = a.integers === true ? `${KIND_WORDS[a.kind]} (integer dtypes taken as floats, as PyTorch does)` : KIND_WORDS[a.kind]
    lines.push(`| \`${a.name}\`${a.optional === true ? ' (optional)' : ''} | ${elements} | ${a.grad === true ? 'yes' : 'no'} | ${cell(a.doc)} |`)
  }
  lines.push('')
  const options = Object.entries(def.options) as Array<[string, OptionSchema]>
  if (options.length > 0) {
    lines.push('| option | default | allowed | meaning |', '|---|---|---|---|')
    for (const [name, s] of options) lines.push(`| \`${name}\` | ${defaultOf(s)} | ${cell(allowedValues(s))} | ${cell(s.description ?? '')} |`)
  } else lines.push('No options beyond the common ones.')
  lines.push('', `Reductions: ${def.reductions.map(r => `\`${r}\`${r === 'mean' ? ' (default)' : ''}`).join(', ')}.`, '')
  if (def.notes !== undefined && def.notes.length > 0) {
    lines.push('Notes:', '', ...def.notes.map(n => `- ${n}`), '')
  }
  lines.push('Example:', '', exampleCall(def))
  return lines.join('\n')
}

/** docs/losses.md: the catalog, every loss with its arguments, options, reductions, reference, notes and example. */
export function lossesDoc (losses: readonly LossDef[] = LOSSES): string {
  const categories = [...new Set(losses.map(d => d.category))]
  const index = categories.map(c => `- ${CATEGORY_TITLES[c]}: ${losses.filter(d => d.category === c).map(d => `[\`${d.name}\`](#${d.name})`).join(', ')}`)
  const sections = categories.flatMap(c => [
    `## ${CATEGORY_TITLES[c]}`,
    TAGS.find(t => t.name === c)?.description ?? '',
    ...losses.filter(d => d.category === c).map(lossSection)
  ])
  return [
    '# Losses',
    '',
    '<!-- generated from the loss declarations in src/losses/ by `npm run docs` (scripts/docs.ts); test/docs.test.ts fails when it is stale -->',
    '',
    'Every loss losshub serves, in the order of `GET /loss` (which answers the same, as JSON). Each',
    'is `POST /loss/{name}` with its tensor arguments and options in a JSON body, and is a model of',
    'the same name over the Open Inference Protocol (the README says how). The reference is the ground',
    'truth for values and gradients: losshub matches it within 1e-4 relative / 1e-5 absolute in float32',
    'and 1e-9 relative in float64. Default options are the reference\'s, except that every loss\'s',
    'default `reduction` is `"mean"`. The notes say where losshub follows one reading of its reference',
    'over another, or refuses what the reference would accept; the errors are in [errors.md](errors.md).',
    '',
    'Every body may also hold:',
    '',
    '| field | default | meaning |',
    '|---|---|---|',
    '| `reduction` | `"mean"` | how the loss is reduced, as in PyTorch; each loss lists the ones it takes |',
    '| `grad` | `false` | also return the gradient w.r.t. every argument whose gradient column says yes |',
    '| `grad_output` | ones | the upstream gradient, shaped like the returned loss (a vector-Jacobian product, as `loss.backward(grad_output)`) |',
    '',
    'Tensors are nested arrays, typed flat or typed base64 (the README\'s "Call it"). Arguments of',
    '"floats" are float32 or float64 (a float64 one makes the whole call float64; nested arrays are',
    'float32, and in a float64 call their float32 values are promoted, as PyTorch promotes them);',
    'arguments of "integers" (class indices, lengths) are int32 or int64 (nested: int64).',
    'An argument of "floats or integers" holds class indices when typed int32/int64 and floats when',
    'typed float32/float64; in nested form, floats when it has the first argument\'s shape, else indices.',
    '',
    ...index,
    '',
    sections.join('\n\n'),
    ''
  ].join('\n')
}

function main (): void {
  const readme = path.join(ROOT, FILES.readme)
  fs.writeFileSync(readme, withConfigTable(fs.readFileSync(readme, 'utf8')))
  fs.writeFileSync(path.join(ROOT, FILES.losses), lossesDoc())
  console.log(`wrote ${FILES.readme} (configuration table) and ${FILES.losses}`)
}

if (require.main === module) main()

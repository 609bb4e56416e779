import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import ts from 'typescript'

/**
 * The layers of the code, top first: a module may import from its own layer and the layers
 * below it, never from one above. Files are placed by their path; the first entry that
 * matches wins, so a file named alone comes before its folder.
 */
const LAYERS: ReadonlyArray<{ name: string, paths: readonly string[] }> = [
  { name: 'server', paths: ['src/server.ts'] },
  { name: 'app', paths: ['src/app.ts', 'src/cluster.ts', 'src/allocator.ts', 'src/heap.ts', 'src/shutdown.ts'] },
  { name: 'front doors', paths: ['src/routes/', 'src/protocols/'] },
  { name: 'http plumbing and metrics', paths: ['src/plugins/', 'src/http/', 'src/metrics.ts'] },
  { name: 'batching', paths: ['src/batching/'] },
  { name: 'kernels', paths: ['src/kernels/'] },
  { name: 'request schemas', paths: ['schemas/loss-request.ts', 'schemas/composite.ts', 'schemas/v2-composite.ts'] },
  { name: 'losses', paths: ['src/losses/'] },
  { name: 'onnx', paths: ['src/onnx/'] },
  { name: 'base', paths: ['src/tensor/', 'src/errors.ts', 'src/config.ts', 'schemas/'] }
]

const ROOT = path.resolve(__dirname, '..')
const SCANNED = ['src', 'schemas']

/** The layer of a repository path (index into LAYERS, 0 the top), or undefined when none holds it. */
function layerOf (file: string): number | undefined {
  const i = LAYERS.findIndex(l => l.paths.some(p => p.endsWith('/') ? file.startsWith(p) : file === p))
  return i < 0 ? undefined : i
}

function sourceFiles (dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap(e => {
    const rel = `${dir}/${e.name}`
    return e.isDirectory() ? sourceFiles(rel) : e.name.endsWith('.ts') ? [rel] : []
  })
}

/** What a relative import of `from` names, as a repository path (a .ts file, a folder's index.ts, or as written). */
function resolve (from: string, specifier: string): string {
  const base = path.posix.join(path.posix.dirname(from), specifier)
  for (const candidate of [`${base}.ts`, `${base}/index.ts`]) if (fs.existsSync(path.join(ROOT, candidate))) return candidate
  return base
}

/** Every module `file` imports (static, type-only, re-exports, dynamic import and require), as repository paths. */
function importsOf (file: string, text = fs.readFileSync(path.join(ROOT, file), 'utf8')): string[] {
  return ts.preProcessFile(text, true, true).importedFiles
    .map(f => f.fileName)
    .filter(s => s.startsWith('.'))
    .map(s => resolve(file, s))
}

interface Upward { file: string, imported: string, from: string, to: string }

/** The imports of `modules` that point to a layer above their own. */
function upward (modules: ReadonlyArray<{ file: string, imports: readonly string[] }>): Upward[] {
  const found: Upward[] = []
  for (const { file, imports } of modules) {
    const own = layerOf(file)
    if (own === undefined) continue
    for (const imported of imports) {
      const theirs = layerOf(imported)
      if (theirs !== undefined && theirs < own) found.push({ file, imported, from: LAYERS[own].name, to: LAYERS[theirs].name })
    }
  }
  return found
}

const files = SCANNED.flatMap(sourceFiles)

t.test('every module of src/ and schemas/ has a layer', async t => {
  t.same(files.filter(f => layerOf(f) === undefined), [], 'place new folders in LAYERS')
})

t.test('no module imports from a layer above its own', async t => {
  const found = upward(files.map(file => ({ file, imports: importsOf(file) })))
  t.same(found.map(u => `${u.file} (${u.from}) imports ${u.imported} (${u.to})`), [])
})

t.test('the check sees every form of import, and flags one that points up', async t => {
  const text = [
    "import { a } from '../kernels/prepare'",
    "import {\n  b,\n  c\n} from './loss'",
    "import type { D } from '../onnx/graph'",
    "export { e } from '../batching/batcher'",
    "const f = require('../../schemas/enum')",
    "const g = import('../routes/loss')"
  ].join('\n')
  const imports = importsOf('src/losses/example.ts', text)
  t.same(imports, ['src/kernels/prepare.ts', 'src/losses/loss.ts', 'src/onnx/graph.ts', 'src/batching/batcher.ts', 'schemas/enum.ts', 'src/routes/loss.ts'])
  t.same(upward([{ file: 'src/losses/example.ts', imports }]).map(u => u.imported), ['src/kernels/prepare.ts', 'src/batching/batcher.ts', 'src/routes/loss.ts'])
})

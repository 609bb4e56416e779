/**
 * The V2 examples against a real server (the built dist/src/server.js): the README's `curl` of
 * the JSON form and its standard-library Python of the binary form, and
 * examples/python/v2_binary.py. Skipped, saying why, without /usr/bin/python3 (or curl).
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { startServer, waitReady } from '../../helpers/server'
import { mismatch } from '../../helpers/tensors'

const PYTHON = '/usr/bin/python3'
const root = path.join(__dirname, '..', '..', '..')

// F.cross_entropy(tensor([[1.,2],[1,3],[1,3]], requires_grad=True), tensor([0,1,1])) and its .grad
const CE_LOSS = 0.5223726
const CE_GRAD = [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343]

/** The README's V2 section: its fenced blocks by language, in order. */
function readmeBlocks (): Array<{ lang: string, body: string }> {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const start = readme.indexOf('### Open Inference Protocol (KServe V2)')
  if (start < 0) throw new Error('README.md has no Open Inference Protocol section')
  const rest = readme.slice(readme.indexOf('\n', start) + 1)
  const section = rest.slice(0, rest.search(/^##/m))
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(m => ({ lang: m[1], body: m[2] }))
}

/** Where `actual` differs from what the README shows: numbers to 1e-4, everything else exactly. */
function differences (actual: unknown, expected: unknown, at = '$'): string[] {
  if (typeof expected === 'number') return typeof actual === 'number' && mismatch([actual], [expected], 1e-4, 1e-5) === undefined ? [] : [`${at}: ${JSON.stringify(actual)} vs ${expected}`]
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${at}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`]
    return expected.flatMap((e, i) => differences(actual[i], e, `${at}[${i}]`))
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null) return [`${at}: ${JSON.stringify(actual)} is not an object`]
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])]
    return keys.flatMap(k => differences((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], `${at}.${k}`))
  }
  return actual === expected ? [] : [`${at}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`]
}

function missing (): string | false {
  return fs.existsSync(PYTHON) ? false : `${PYTHON} is not installed`
}

t.test('the V2 examples against a real server', { skip: missing() }, async t => {
  // one process, and no load shedding while tap keeps the machine busy: these test the examples
  const server = await startServer(t, { WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
  await waitReady(server.url)
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }

  t.test('examples/python/v2_binary.py: binary in, binary out, errors', async t => {
    const r = spawnSync(PYTHON, [path.join(root, 'examples', 'python', 'v2_binary.py'), server.url, '--json'], { encoding: 'utf8', env, timeout: 60_000 })
    t.equal(r.status, 0, `the script exits 0${r.status === 0 ? '' : `: ${r.stderr}`}`)
    const out = JSON.parse(r.stdout)
    t.notOk(mismatch([out.loss], [CE_LOSS], 1e-4, 1e-5), `loss ${out.loss}`)
    t.same(out.grad_input.shape, [3, 2])
    t.notOk(mismatch(out.grad_input.data, CE_GRAD, 1e-4, 1e-5), `grad ${out.grad_input.data}`)
    t.same([out.error?.status, out.error?.code], [400, 'SHAPE_MISMATCH'])
    t.match(out.error?.error, /^SHAPE_MISMATCH: target: /, 'the message names the input at fault')
  })

  const blocks = readmeBlocks()

  t.test('README: the Python of the binary form', async t => {
    const code = blocks.find(b => b.lang === 'python')?.body ?? ''
    t.match(code, /http:\/\/localhost:8080/)
    const r = spawnSync(PYTHON, ['-c', code.replaceAll('http://localhost:8080', server.url)], { encoding: 'utf8', env, timeout: 60_000 })
    t.equal(r.status, 0, `it exits 0${r.status === 0 ? '' : `: ${r.stderr}`}`)
    const [outputs, values] = r.stdout.trim().split('\n')
    t.match(outputs, /'name': 'loss', 'datatype': 'FP32', 'shape': \[\], 'parameters': \{'binary_data_size': 4\}/)
    t.match(outputs, /'name': 'grad_input', 'datatype': 'FP32', 'shape': \[3, 2\], 'parameters': \{'binary_data_size': 24\}/)
    const numbers = (values.match(/-?\d+(\.\d+)?(e-?\d+)?/g) ?? []).map(Number)
    t.notOk(mismatch(numbers, [CE_LOSS, ...CE_GRAD], 1e-4, 1e-5), values)
  })

  const curl = spawnSync('curl', ['--version']).status === 0
  t.test('README: the curl of the JSON form answers what the README shows', { skip: curl ? false : 'curl is not installed' }, async t => {
    const i = blocks.findIndex(b => b.lang === 'sh')
    const [command, shown] = [blocks[i]?.body ?? '', blocks[i + 1]]
    t.equal(shown?.lang, 'json', 'the command is followed by its answer')
    t.match(command, /^curl -s localhost:8080\/v2\/models\//)
    const r = spawnSync('sh', ['-c', command.replaceAll('localhost:8080', server.url.replace(/^http:\/\//, ''))], { encoding: 'utf8', timeout: 60_000 })
    t.equal(r.status, 0, r.stderr)
    t.same(differences(JSON.parse(r.stdout), JSON.parse(shown.body)), [])
  })
})

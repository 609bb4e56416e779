/**
 * JSON in and out of a request (npm run bench:json): MB/s of the tensor-aware reader
 * (src/tensor/json-reader.ts) against JSON.parse + decodeTensor, and of the writer
 * (src/tensor/json-writer.ts) against encodeTensor + JSON.stringify, on the bodies a large
 * request carries: nested float text of [256,1000] and base64 of [4096,1000]. Both sides start
 * and end with bytes (the body as Fastify receives it, the reply as it is sent). Each case runs
 * for BENCH_SECONDS (default 1.5) and reports its median run; the whole takes under a minute.
 */
import os from 'node:os'
import { decodeTensor } from '../src/tensor/decode'
import { encodeTensor } from '../src/tensor/encode'
import { readBody, DecodedTensor } from '../src/tensor/json-reader'
import { TensorOut, writeJson } from '../src/tensor/json-writer'
import { type TensorForm, type WireDType } from '../src/tensor/tensor'

const seconds = Number(process.env.BENCH_SECONDS ?? 1.5)

/** Median milliseconds of one call of f, run for `seconds` after a warm-up. */
function time (f: () => unknown): number {
  for (let i = 0; i < 3; i++) f()
  const runs: number[] = []
  const end = performance.now() + seconds * 1000
  while (performance.now() < end || runs.length < 5) {
    const t0 = performance.now()
    f()
    runs.push(performance.now() - t0)
  }
  return runs.sort((a, b) => a - b)[runs.length >> 1]
}

/** Deterministic values like a model's: a few units wide, all float32. */
function floats (n: number): Float32Array {
  let s = 12345
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return Math.fround(Math.tan((s / 2 ** 32 - 0.5) * 2.5))
  })
}

function nested (data: ArrayLike<number>, rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => data[i * cols + j]))
}

const small = floats(256 * 1000)
const large = floats(4096 * 1000)
const keys = new Set(['input', 'target'])
// nested text as this service writes float32 (shortest form), and as Python writes
// `tensor.tolist()` (the double nearest each float32, up to 17 digits)
const shortest = encodeTensor('float32', [256, 1000], small, 'nested') as number[][]
const bodies: Array<[string, Buffer]> = [
  ['nested [256,1000], float32 shortest', Buffer.from(JSON.stringify({ input: shortest, reduction: 'mean' }))],
  ['nested [256,1000], torch tolist()', Buffer.from(JSON.stringify({ input: nested(small, 256, 1000), reduction: 'mean' }))],
  ['nested [256,1000], json.dumps ", "', Buffer.from(JSON.stringify({ input: shortest, reduction: 'mean' }).replace(/,/g, ', '))],
  ['base64 [4096,1000] float32', Buffer.from(JSON.stringify({ input: { dtype: 'float32', shape: [4096, 1000], data: Buffer.from(large.buffer).toString('base64') }, reduction: 'mean' }))]
]

const outputs: Array<[string, WireDType, number[], Float32Array | Float64Array, TensorForm]> = [
  ['nested [256,1000] float32', 'float32', [256, 1000], small, 'nested'],
  ['nested [256,1000] float64', 'float64', [256, 1000], Float64Array.from(small, (v, i) => v * (1 + i * 1e-9)), 'nested'],
  ['flat [256,1000] float32', 'float32', [256, 1000], small, 'flat'],
  ['base64 [4096,1000] float32', 'float32', [4096, 1000], large, 'base64']
]

const mbps = (bytes: number, ms: number): string => (bytes / 1e6 / (ms / 1000)).toFixed(0)

function main (): void {
  const load = os.loadavg().map(l => l.toFixed(1)).join(' ')
  console.log(`machine: ${os.type()} ${os.release()} ${os.arch()}, ${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}, node ${process.version}, load ${load}`)
  console.log('')
  console.log('| read | MB | toString + JSON.parse + decodeTensor MB/s | readBody MB/s | speed-up |')
  console.log('|---|---:|---:|---:|---:|')
  for (const [name, body] of bodies) {
    const mine = readBody(body, keys).input as DecodedTensor
    const theirs = decodeTensor('input', (JSON.parse(body.toString()) as Record<string, unknown>).input)
    if (!Buffer.from(mine.data.buffer).equals(Buffer.from(theirs.data.buffer))) throw new Error(`${name}: the two readers disagree`)
    const base = time(() => decodeTensor('input', (JSON.parse(body.toString()) as Record<string, unknown>).input))
    const fast = time(() => readBody(body, keys))
    console.log(`| ${name} | ${(body.length / 1e6).toFixed(1)} | ${mbps(body.length, base)} | ${mbps(body.length, fast)} | ${(base / fast).toFixed(1)}x |`)
  }
  console.log('')
  console.log('| write `{loss, grad: {input}}` | MB | encodeTensor + JSON.stringify + Buffer.from MB/s | writeJson MB/s | speed-up |')
  console.log('|---|---:|---:|---:|---:|')
  for (const [name, dtype, shape, data, form] of outputs) {
    const result = (): unknown => ({ loss: 0.5223726, grad: { input: new TensorOut(dtype, shape, data, form) } })
    const reference = (): Buffer => Buffer.from(JSON.stringify({ loss: 0.5223726, grad: { input: encodeTensor(dtype, shape, data, form) } }))
    const bytes = writeJson(result())
    if (!bytes.equals(reference())) throw new Error(`${name}: the two writers disagree`)
    const base = time(reference)
    const fast = time(() => writeJson(result()))
    console.log(`| ${name} | ${(bytes.length / 1e6).toFixed(1)} | ${mbps(bytes.length, base)} | ${mbps(bytes.length, fast)} | ${(base / fast).toFixed(1)}x |`)
  }
}

main()

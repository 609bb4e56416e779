/**
 * The kernel hop (npm run bench:kernels), in three parts, each under about 15 s:
 * 1. moving inputs to a worker thread: a structured-clone copy (what the pool did) against a
 *    transfer (what it does), by size: the event loop's time to post, and the round trip;
 * 2. tiny kernels on the event loop against a hop to a kernel worker, by size, to choose
 *    INLINE_KERNEL_ELEMENTS: the latency of one call, and how long the event loop is held;
 * 3. a lone large kernel (cross_entropy [4096,1000] with gradients) on one intra-op thread
 *    against a wide session of two (WIDE_KERNEL_THREADS), under the service's C allocator
 *    settings and others (each in a child process: glibc reads them at start);
 * 4. a 16 MiB body landing in shared memory in 64 KiB socket chunks: `TypedArray.set` against
 *    `copyBytes` (src/tensor/copy-bytes.ts), the chunks as aligned as the target and not
 *    (`BENCH_PARTS=copy` runs it alone);
 * 5. a tiny kernel on the event loop back to back against the same one after the thread slept
 *    a millisecond (what a lone client's next request finds), or spun 0.2 ms
 *    (`BENCH_PARTS=wake` runs it alone).
 * Medians of interleaved runs. The machine is shared: compare within a row.
 */
import { spawnSync } from 'node:child_process'
import os from 'node:os'
import { Worker } from 'node:worker_threads'
import { type RunCost, runCost } from '../src/kernels/executor'
import { IdleCores } from '../src/kernels/idle-cores'
import { buildFeeds, buildModel, kernelKey } from '../src/kernels/kernel'
import { prepare, type PreparedCall } from '../src/kernels/prepare'
import { type KernelTensors } from '../src/kernels/tensors'
import { WorkerPool } from '../src/kernels/worker-pool'
import { copyBytes } from '../src/tensor/copy-bytes'
import { REGISTRY } from '../src/losses'

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`)

/** Deterministic pseudo-random floats. */
function lcg (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

function call (name: string, body: Record<string, unknown>): PreparedCall {
  const def = REGISTRY.get(name)
  if (def === undefined) throw new Error(name)
  const defaults: Record<string, unknown> = { reduction: 'mean', grad: false }
  for (const [k, s] of Object.entries(def.options)) if ('default' in s) defaults[k] = (s as { default: unknown }).default
  return prepare(def, { ...defaults, ...body })
}

/** An [n, d] nested array of numbers from `rand`. */
function matrixOf (rand: () => number, n: number, d: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rand()))
}

const b64 = (a: Float32Array | BigInt64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')

/** cross_entropy over [n, c] float32 logits (base64) and int64 targets, with gradients. */
function crossEntropy (n: number, c: number): PreparedCall {
  const rand = lcg(n * 31 + c)
  return call('cross_entropy', {
    input: { dtype: 'float32', shape: [n, c], data: b64(Float32Array.from({ length: n * c }, () => rand() * 4 - 2)) },
    target: { dtype: 'int64', shape: [n], data: b64(BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * c)))) },
    grad: true
  })
}

/** Part 1: a plain worker that answers at once, fed by copy or by transfer. */
async function hop (): Promise<void> {
  console.log('\n### Moving inputs to a worker: structured clone vs transfer (float32, median of interleaved posts)\n')
  console.log('| elements | clone: event loop | clone: round trip | transfer: event loop | transfer: round trip |')
  console.log('|---:|---:|---:|---:|---:|')
  const echo = new Worker(`const { parentPort } = require('node:worker_threads')
parentPort.on('message', ({ x, back }) => back ? parentPort.postMessage({ x }, [x.buffer]) : parentPort.postMessage({}))`, { eval: true })
  const answer = async (): Promise<{ x?: Float32Array }> => await new Promise(resolve => echo.once('message', resolve))
  for (const n of [2 ** 10, 2 ** 16, 2 ** 20, 2 ** 22]) {
    let x: Float32Array = new Float32Array(n).fill(1)
    const reps = n >= 2 ** 20 ? 30 : 300
    const clone = { post: [] as number[], trip: [] as number[] }
    const transfer = { post: [] as number[], trip: [] as number[] }
    for (let i = 0; i < reps + 5; i++) {
      let t0 = performance.now()
      echo.postMessage({ x })
      let t1 = performance.now()
      await answer()
      if (i >= 5) { clone.post.push(t1 - t0); clone.trip.push(performance.now() - t0) }
      // the worker hands the buffer back, as the pool's worker does
      t0 = performance.now()
      echo.postMessage({ x, back: true }, [x.buffer as ArrayBuffer])
      t1 = performance.now()
      x = (await answer()).x as Float32Array
      if (i >= 5) { transfer.post.push(t1 - t0); transfer.trip.push(performance.now() - t0) }
    }
    console.log(`| ${n} | ${fmt(median(clone.post))} | ${fmt(median(clone.trip))} | ${fmt(median(transfer.post))} | ${fmt(median(transfer.trip))} |`)
  }
  await echo.terminate()
}

/** A V2 body's 16 MiB arriving in 64 KiB chunks, copied into shared memory at each skew modulo 8. */
function copy (): void {
  console.log('\n### 16 MiB into shared memory in 64 KiB chunks (median of 15 interleaved passes)\n')
  console.log('| chunks\' offset modulo 8 against the target | TypedArray.set | copyBytes |')
  console.log('|---:|---:|---:|')
  const size = 16 * 2 ** 20
  const chunk = 64 * 2 ** 10
  const target = new Uint8Array(new SharedArrayBuffer(size + 8))
  const source = new Uint8Array(chunk + 8).fill(7)
  for (const skew of [0, 1, 4]) {
    const piece = source.subarray(skew, skew + chunk)
    const set: number[] = []
    const copied: number[] = []
    for (let i = 0; i < 16; i++) {
      let t0 = performance.now()
      for (let at = 0; at < size; at += chunk) target.set(piece, at)
      if (i > 0) set.push(performance.now() - t0)
      t0 = performance.now()
      for (let at = 0; at < size; at += chunk) copyBytes(piece, target, at)
      if (i > 0) copied.push(performance.now() - t0)
    }
    console.log(`| ${skew} | ${fmt(median(set))} | ${fmt(median(copied))} |`)
  }
}

/** Runs `c` on `pool` `reps` times; the median latency of one call. */
async function timeCalls (pool: WorkerPool, c: PreparedCall, reps: number, cost: RunCost | undefined = runCost([c])): Promise<number> {
  const key = kernelKey(c)
  const model = (): Uint8Array => buildModel(c)
  // fresh arrays each call: a worker keeps the arrays moved to it, which would leave the call's own empty
  const feeds = (): KernelTensors => {
    const out: KernelTensors = {}
    for (const [name, t] of Object.entries(buildFeeds(c))) out[name] = { type: t.type, dims: t.dims, data: t.data.slice() }
    return out
  }
  const times: number[] = []
  for (let i = 0; i < reps; i++) {
    const sent = feeds()
    const t0 = performance.now()
    await pool.run(key, model, sent, { cost, rebuild: feeds })
    times.push(performance.now() - t0)
  }
  return median(times)
}

const settings = { intraOpNumThreads: 1, interOpNumThreads: 1 }

async function ready (pool: WorkerPool): Promise<void> {
  while (pool.available('short') === 0) await new Promise(resolve => setTimeout(resolve, 5))
}

/** Part 2: the same tiny calls inline and through a worker. */
async function inline (): Promise<void> {
  console.log('\n### Tiny kernels: on the event loop vs a hop to a worker (median latency of one call; inline, the event loop is held that long)\n')
  console.log('| call | cost (elements) | worker | inline |')
  console.log('|---|---:|---:|---:|')
  const hopped = new WorkerPool({ short: 1, long: 0 }, settings, 64)
  const inlined = new WorkerPool({ short: 1, long: 0 }, settings, 64, { inlineElements: 2 ** 31 - 1 })
  await Promise.all([ready(hopped), ready(inlined)])
  const rand = lcg(3)
  const matrix = (n: number, d: number): number[][] => matrixOf(rand, n, d)
  const cases: Array<[string, PreparedCall]> = []
  for (const n of [1, 16, 64, 256, 1024, 4096]) cases.push([`mse [${n},16]`, call('mse', { input: matrix(n, 16), target: matrix(n, 16) })])
  for (const n of [4, 64, 256, 1024]) cases.push([`cross_entropy [${n},16] grad`, crossEntropy(n, 16)])
  // among the slowest per element: a sort per class and image (Lovasz extension), with gradients
  for (const side of [16, 32, 64]) {
    const n = 4 * side * side
    cases.push([`lovasz_softmax [1,4,${side},${side}] grad`, call('lovasz_softmax', {
      input: { dtype: 'float32', shape: [1, 4, side, side], data: b64(Float32Array.from({ length: n }, () => rand())) },
      target: { dtype: 'int64', shape: [1, side, side], data: b64(BigInt64Array.from({ length: n / 4 }, () => BigInt(Math.floor(rand() * 4)))) },
      grad: true
    })])
  }
  for (const [name, c] of cases) {
    // warm both (session built), then interleave
    await timeCalls(hopped, c, 3)
    await timeCalls(inlined, c, 3)
    const w: number[] = []
    const i: number[] = []
    for (let r = 0; r < 5; r++) {
      w.push(await timeCalls(hopped, c, 40))
      i.push(await timeCalls(inlined, c, 40))
    }
    console.log(`| ${name} | ${c.cost.elements} | ${fmt(median(w))} | ${fmt(median(i))} |`)
  }
  await Promise.all([hopped.close(), inlined.close()])
}

/** The C allocator settings part 3 runs under: the service's (Dockerfile, npm start), with huge pages, and glibc's defaults. */
const ALLOCATORS: Array<[string, Record<string, string>]> = [
  ['128 KiB mmap threshold (MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2)', { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' }],
  ['service (GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2)', { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=4194304:glibc.malloc.hugetlb=1:glibc.malloc.arena_max=2' }],
  ['glibc defaults', {}]
]

/** Part 3: the same measurement in a child process per allocator setting (glibc reads them at start). */
async function threads (): Promise<void> {
  console.log('\n### A lone large kernel: cross_entropy [4096,1000] with gradients, 1 vs 2 intra-op threads (interleaved runs)\n')
  console.log('| allocator | 1 thread: median | p25 | 2 threads: median | p25 | speed-up of the median | free cores (IdleCores) |')
  console.log('|---|---:|---:|---:|---:|---:|---:|')
  for (const [name, env] of ALLOCATORS) {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_') && k !== 'GLIBC_TUNABLES'))
    const child = spawnSync(process.execPath, [__filename], { env: { ...clean, ...env, BENCH_PARTS: 'threads-child' }, encoding: 'utf8' })
    if (child.status !== 0) throw new Error(child.stderr)
    console.log(`| ${name} | ${child.stdout.trim()} |`)
  }
}

/** Part 3 in this process: one row of its table. */
async function threadsChild (): Promise<void> {
  const c = crossEntropy(4096, 1000)
  const narrow = new WorkerPool({ short: 1, long: 0 }, settings, 8)
  // wide whatever the machine's load (the pool would go wide only with the cores free)
  const wide = new WorkerPool({ short: 1, long: 0 }, settings, 8, { wide: { threads: 2, elements: 1, freeCores: () => 2 } })
  const idle = new IdleCores(500)
  await Promise.all([ready(narrow), ready(wide)])
  await timeCalls(narrow, c, 2)
  await timeCalls(wide, c, 2)
  const one: number[] = []
  const two: number[] = []
  for (let r = 0; r < 20; r++) {
    one.push(await timeCalls(narrow, c, 1))
    two.push(await timeCalls(wide, c, 1))
  }
  const p25 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 4)]
  console.log([fmt(median(one)), fmt(p25(one)), fmt(median(two)), fmt(p25(two)), `${(median(one) / median(two)).toFixed(2)}x`, `${idle.cores.toFixed(1)} of ${os.cpus().length}`].join(' | '))
  idle.close()
  await Promise.all([narrow.close(), wide.close()])
}

/** Part 5: one inline call, timed back to back and after the thread slept or spun between calls. */
async function wake (): Promise<void> {
  console.log('\n### A tiny kernel on the event loop: back to back vs after the thread slept (median of one call)\n')
  console.log('| call | back to back | after a 1 ms sleep | after a 0.2 ms spin |')
  console.log('|---|---:|---:|---:|')
  const pool = new WorkerPool({ short: 1, long: 0 }, settings, 8, { inlineElements: 2 ** 31 - 1 })
  await ready(pool)
  const rand = lcg(5)
  const matrix = (n: number, d: number): number[][] => matrixOf(rand, n, d)
  const cases: Array<[string, PreparedCall]> = [
    ['l1 [3] none (3 nodes)', call('l1', { input: [1, 2, 3], target: [1, 1, 1], reduction: 'none' })],
    ['mse [64,16]', call('mse', { input: matrix(64, 16), target: matrix(64, 16) })],
    ['cross_entropy [32,10]', call('cross_entropy', { input: matrix(32, 10), target: Array.from({ length: 32 }, () => Math.floor(rand() * 10)) })]
  ]
  const between: Record<string, () => Promise<void>> = {
    tight: async () => {},
    sleep: async () => { await new Promise(resolve => setTimeout(resolve, 1)) },
    spin: async () => { const until = process.hrtime.bigint() + 200_000n; while (process.hrtime.bigint() < until); }
  }
  for (const [name, c] of cases) {
    await timeCalls(pool, c, 20)
    const times: Record<string, number[]> = { tight: [], sleep: [], spin: [] }
    for (let r = 0; r < 300; r++) {
      for (const [mode, pause] of Object.entries(between)) {
        await pause()
        times[mode].push(await timeCalls(pool, c, 1))
      }
    }
    console.log(`| ${name} | ${fmt(median(times.tight))} | ${fmt(median(times.sleep))} | ${fmt(median(times.spin))} |`)
  }
  await pool.close()
}

async function main (): Promise<void> {
  const parts = (process.env.BENCH_PARTS ?? 'hop,inline,threads,copy,wake').split(',')
  if (parts.includes('hop')) await hop()
  if (parts.includes('inline')) await inline()
  if (parts.includes('threads')) await threads()
  if (parts.includes('threads-child')) await threadsChild()
  if (parts.includes('copy')) copy()
  if (parts.includes('wake')) await wake()
}

main().catch(err => { console.error(err); process.exit(1) })

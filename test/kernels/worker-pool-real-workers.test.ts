import t, { type Test } from 'tap'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { type KernelTensors } from '../../src/kernels/tensors'
import { WorkerPool } from '../../src/kernels/worker-pool'
import { DecodedTensor, readBody } from '../../src/tensor/json-reader'
import { type ReadAside, RowsAside } from '../../src/tensor/rows-ahead'
import { scaleFeeds, scaleModel } from '../helpers/scale-model'

/*
 * The worker pool over real kernel workers (src/kernels/worker.ts, started through ts-node as
 * the pool starts them) running a real ONNX kernel, `y = x * factor`. test/kernels/worker-pool.test.ts
 * covers the pool's protocol against a stand-in worker; here the worker's own sessions decide
 * what it holds. To kill a worker in the middle of a kernel, a listener put in front of
 * worker.ts ends the thread (exit code 7) on a kernel named `die` (every worker) or
 * `die-first` (the pool's first worker only).
 */

const WORKER = path.join(__dirname, '..', '..', 'src', 'kernels', 'worker.ts')
const BOOT = `
const { parentPort, workerData } = require('node:worker_threads')
parentPort.on('message', msg => {
  if (msg?.key === 'die' || (msg?.key === 'die-first' && workerData.index === 0)) process.exit(7)
})
require('ts-node').register({ transpileOnly: true })
require(${JSON.stringify(WORKER)})
`

interface Harness {
  pool: WorkerPool
  workers: Worker[]
  lost: string[]
  /** Models built for the pool to send, by key. */
  sent: Record<string, number>
  /** Runs kernel `key` (y = x * factor) on `x`, as the batcher does (feeds it can make again); returns y. */
  run: (key: string, factor: number, ...x: number[]) => Promise<number[]>
  ready: () => Promise<void>
}

async function harness (t: Test, capacity = 8): Promise<Harness> {
  const workers: Worker[] = []
  const lost: string[] = []
  const sent: Record<string, number> = {}
  const pool = new WorkerPool({ short: 1, long: 0 }, { intraOpNumThreads: 1, interOpNumThreads: 1 }, capacity, {
    startWorker: data => {
      const w = new Worker(BOOT, { eval: true, workerData: { ...(data as object), index: workers.length }, execArgv: [] })
      workers.push(w)
      return w
    },
    onWorkerLost: (lane, reason) => lost.push(`${lane}: ${reason}`)
  })
  t.teardown(async () => { await pool.close() })
  const ready = async (): Promise<void> => { while (pool.available() === 0) await new Promise(resolve => setTimeout(resolve, 10)) }
  const run = async (key: string, factor: number, ...x: number[]): Promise<number[]> => {
    const model = (): Uint8Array => { sent[key] = (sent[key] ?? 0) + 1; return scaleModel(factor) }
    const out = await pool.run(key, model, scaleFeeds(...x), { rebuild: () => scaleFeeds(...x) })
    return Array.from(out.y.data as Float32Array)
  }
  await ready()
  return { pool, workers, lost, sent, run, ready }
}

const exited = async (w: Worker): Promise<number> => await new Promise(resolve => w.once('exit', resolve))

t.test('a worker whose session cache evicted a kernel says so, and the pool sends the model again', async t => {
  const h = await harness(t, 1) // each worker keeps one session
  t.same(await h.run('double', 2, 1, 2), [2, 4])
  t.same(await h.run('triple', 3, 1, 2), [3, 6], 'evicts double in the worker')
  t.same(await h.run('double', 2, 5), [10], 'answered once the model was sent again')
  t.same(h.sent, { double: 2, triple: 1 })
  t.same(await h.run('double', 2, 6), [12])
  t.same(h.sent, { double: 2, triple: 1 }, 'held again from then on')
  t.equal(h.pool.stats().workers[0].sessions, 1, 'the worker holds one session')
  t.same([h.workers.length, h.lost], [1, []], 'no worker was replaced for it')
})

t.test('a worker that dies in a kernel is replaced; the kernel is retried on the fresh worker, which is sent the model', async t => {
  const h = await harness(t)
  const first = exited(h.workers[0])
  t.same(await h.run('die-first', 2, 1, 2, 3), [2, 4, 6], 'answered by the fresh worker')
  t.equal(await first, 7, 'the first worker\'s thread ended')
  t.equal(h.workers.length, 2)
  t.same(h.lost, ['short: kernel worker thread exited with code 7'])
  t.same(h.sent, { 'die-first': 2 }, 'one model for each worker')
  t.same(await h.run('die-first', 2, 4), [8], 'the fresh worker serves on, with the session it built')
  t.same(h.sent, { 'die-first': 2 })
  t.match(h.pool.stats(), { replaced: { died: 1, overran: 0 }, inFlightBytes: 0 })
})

t.test('a kernel that kills every worker it runs on: 503 WORKER_FAILED after one retry, and the pool serves on', async t => {
  const h = await harness(t)
  await t.rejects(h.run('die', 2, 1), {
    code: 'WORKER_FAILED',
    statusCode: 503,
    retryAfterSeconds: 1,
    message: 'kernel worker failed: kernel worker thread exited with code 7, on a fresh worker too; retry'
  })
  t.equal(h.workers.length, 3, 'the first worker, the retry\'s, and the one replacing it')
  t.same(h.lost, ['short: kernel worker thread exited with code 7', 'short: kernel worker thread exited with code 7'])
  await h.ready()
  t.same(await h.run('double', 2, 7), [14])
})

t.test('a worker that ends while idle is replaced, and the fresh worker is sent the models it never had', async t => {
  const h = await harness(t)
  t.same(await h.run('double', 2, 1), [2])
  await h.workers[0].terminate()
  await h.ready()
  t.equal(h.workers.length, 2)
  t.same(h.lost, ['short: kernel worker thread exited with code 1'])
  t.same(await h.run('double', 2, 3), [6])
  t.same(h.sent, { double: 2 })
})

t.test('a kernel that ONNX Runtime refuses fails on its own: the worker stays, and the inputs come back', async t => {
  const h = await harness(t)
  const feeds: KernelTensors = { x: { type: 'float64', dims: [2], data: Float64Array.of(1, 2) } }
  await t.rejects(h.pool.run('double', () => scaleModel(2), feeds), { message: /tensor\(double\)/ })
  t.same(Array.from(feeds.x.data as Float64Array), [1, 2], 'the feeds were handed back')
  t.same([h.workers.length, h.lost], [1, []])
  t.same(await h.run('double', 2, 4), [8], 'the worker serves on')
})

t.test('a worker lent a body\'s rows (src/tensor/rows-ahead.ts) reads them beside its kernels', async t => {
  const pool = new WorkerPool({ short: 1, long: 0 }, { intraOpNumThreads: 1, interOpNumThreads: 1 }, 8, {
    startWorker: data => new Worker(BOOT, { eval: true, workerData: { ...(data as object), index: 0 }, execArgv: [] }),
    wide: { threads: 2, elements: Infinity, freeCores: () => 2 }
  })
  t.teardown(async () => { await pool.close() })
  while (pool.available() === 0) await new Promise(resolve => setTimeout(resolve, 10))
  const rows = new RowsAside(job => pool.lend({ rows: job }))
  let taken = 0
  const aside: ReadAside = { start: (b, at) => rows.start(b, at), rowsAt: at => { const run = rows.rowsAt(at); taken += run?.rows ?? 0; return run }, finish: () => rows.finish() }
  const input = Array.from({ length: 600 }, (_, i) => Array.from({ length: 64 }, (_, j) => (i * 64 + j) / 7))
  const body = Buffer.from(JSON.stringify({ input }))
  const read = readBody(body, new Set(['input']), undefined, undefined, aside).input as DecodedTensor
  t.same(read.shape, [600, 64])
  t.same(Array.from(read.data as Float64Array), input.flat(), 'every number, in order')
  t.ok(taken > 250, `the worker read the second half (${taken} rows)`)
  const out = await pool.run('double', () => scaleModel(2), scaleFeeds(1, 2))
  t.same(Array.from(out.y.data as Float32Array), [2, 4], 'and runs kernels as before')
})

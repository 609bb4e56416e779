import t, { type Test } from 'tap'
import { Worker } from 'node:worker_threads'
import { Batcher } from '../../src/batching/batcher'
import { KernelTimeout } from '../../src/kernels/executor'
import { prepare } from '../../src/kernels/prepare'
import { type KernelTensors } from '../../src/kernels/tensors'
import { type LaneSizes, WorkerPool } from '../../src/kernels/worker-pool'
import mse from '../../src/losses/mse'

/*
 * A stand-in for src/kernels/worker.ts speaking its protocol, whose kernels are chosen by key:
 * `echo` answers its `x` feed back as `loss`; `exit` ends the thread and `throw` throws out of
 * it (in every worker, or with `-first` only in the pool's first); `fail` reports a kernel
 * error; `hang` answers only when the
 * test posts 'release' to it (with `-first`, only the first worker hangs). Keys starting with
 * `solo|` echo the first element of `input`, and `batch|` hang (for the batcher). It forgets its
 * sessions on 'forget', as an LRU eviction would. It says 'ready' once started, as worker.ts does
 * (with `slowStart`, only when the test posts 'start').
 */
const FAKE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const known = new Set()
const held = []
parentPort.on('message', msg => {
  if (msg === 'close') return parentPort.postMessage('closed')
  if (msg === 'forget') return known.clear()
  if (msg === 'start') return parentPort.postMessage('ready')
  if (msg === 'release') return held.splice(0).forEach(answer => answer())
  const { id, key, model, feeds } = msg
  if (model === undefined && !known.has(key)) return parentPort.postMessage({ id, ok: false, missingModel: true, message: 'model needed' })
  known.add(key)
  const first = workerData.index === 0
  const answer = () => parentPort.postMessage({ id, ok: true, outputs: { loss: feeds.x } })
  if (key === 'exit' || (key === 'exit-first' && first)) process.exit(3)
  if (key === 'throw' || (key === 'throw-first' && first)) throw new Error('boom')
  if (key === 'fail') return parentPort.postMessage({ id, ok: false, missingModel: false, message: 'kernel failed' })
  if (key === 'hang' || (key === 'hang-first' && first) || key.startsWith('batch|')) return held.push(answer)
  if (key.startsWith('solo|')) return parentPort.postMessage({ id, ok: true, outputs: { loss: { type: 'float32', dims: [], data: feeds.input.data.slice(0, 1) } } })
  answer()
})
if (!workerData.slowStart) parentPort.postMessage('ready')
`

const exited = async (w: Worker): Promise<void> => { await new Promise(resolve => w.once('exit', resolve)) }
const until = async (ok: () => boolean): Promise<void> => { while (!ok()) await new Promise(resolve => setTimeout(resolve, 5)) }

interface Harness {
  pool: WorkerPool
  /** Every thread the pool started, in order. */
  workers: Worker[]
  /** Times model() was called: models sent to a worker. */
  models: { sent: number }
  /** Time limits the pool set, to be fired by hand. */
  timers: Array<{ fn: () => void, ms: number }>
  lost: string[]
  run: (key: string, options?: Parameters<WorkerPool['run']>[3]) => Promise<number>
  /** Resolves once every worker of the pool is ready and idle. */
  ready: () => Promise<void>
}

async function harness (t: Test, sizes: LaneSizes = { short: 1, long: 0 }): Promise<Harness> {
  const workers: Worker[] = []
  const timers: Harness['timers'] = []
  const lost: string[] = []
  const models = { sent: 0 }
  const pool = new WorkerPool(sizes, { intraOpNumThreads: 1, interOpNumThreads: 1 }, 8, {
    startWorker: data => {
      const w = new Worker(FAKE_WORKER, { eval: true, workerData: { ...(data as object), index: workers.length } })
      workers.push(w)
      return w
    },
    setTimer: (fn, ms) => {
      const timer = { fn, ms }
      timers.push(timer)
      return () => { timers.splice(timers.indexOf(timer), 1) }
    },
    onWorkerLost: (lane, reason) => lost.push(`${lane}: ${reason}`)
  })
  t.teardown(async () => {
    for (const w of workers) w.postMessage('release')
    await pool.close()
  })
  const ready = async (): Promise<void> => { await until(() => pool.available('short') === sizes.short && (sizes.long === 0 || pool.available('long') === sizes.long)) }
  const feeds = (v: number): KernelTensors => ({ x: { type: 'float32', dims: [1], data: Float32Array.of(v) } })
  let value = 0
  const run = async (key: string, options = {}): Promise<number> => {
    const v = ++value
    const out = await pool.run(key, () => { models.sent++; return new Uint8Array([1]) }, feeds(v), options)
    return out.loss.data[0] as number
  }
  const h = { pool, workers, models, timers, lost, run, ready }
  await ready()
  return h
}


t.test('a worker takes kernels only once it is ready, and the pool says when that is', async t => {
  const workers: Worker[] = []
  const pool = new WorkerPool({ short: 1, long: 0 }, { intraOpNumThreads: 1, interOpNumThreads: 1 }, 8, {
    startWorker: data => {
      const w = new Worker(FAKE_WORKER, { eval: true, workerData: { ...(data as object), index: workers.length, slowStart: true } })
      workers.push(w)
      return w
    }
  })
  t.teardown(async () => { await pool.close() })
  let capacity = 0
  pool.onCapacity(() => capacity++)
  await new Promise(resolve => workers[0].once('online', resolve))
  t.equal(pool.available(), 0, 'a starting worker is not available')
  await t.rejects(pool.run('echo', () => new Uint8Array([1]), {}), /no idle kernel worker in the short lane/)
  workers[0].postMessage('start')
  await until(() => capacity === 1)
  t.equal(pool.available(), 1)
})

t.test('a kernel runs on a worker, which is sent its model once', async t => {
  const h = await harness(t)
  t.equal(await h.run('echo'), 1)
  t.equal(await h.run('echo'), 2)
  t.equal(h.models.sent, 1)
})

t.test('a worker that has evicted a session is sent the model again', async t => {
  const h = await harness(t)
  t.equal(await h.run('echo'), 1)
  h.workers[0].postMessage('forget')
  t.equal(await h.run('echo'), 2, 'answered after the model was re-sent')
  t.equal(h.models.sent, 2)
  t.equal(h.workers.length, 1, 'no worker was replaced for it')
})

t.test('a worker that exits mid-kernel: replaced, and the run retried on the fresh worker', async t => {
  const h = await harness(t)
  t.equal(await h.run('exit-first'), 1, 'answered by the fresh worker')
  t.equal(h.workers.length, 2)
  t.same(h.lost, ['short: kernel worker thread exited with code 3'])
  t.equal(h.models.sent, 2, 'the fresh worker got the model')
  t.equal(h.pool.available(), 1, 'the fresh worker is free again')
  t.equal(await h.run('echo'), 2)
})

t.test('a worker that throws mid-kernel (error event): replaced, and the run retried', async t => {
  const h = await harness(t)
  t.equal(await h.run('throw-first'), 1)
  t.same(h.lost, ['short: kernel worker thread failed (boom)'])
  t.equal(h.pool.available(), 1, 'the fresh worker is free again')
})

t.test('a kernel that kills every worker it runs on: 503 WORKER_FAILED after one retry; the pool still serves', async t => {
  const h = await harness(t)
  await t.rejects(h.run('exit'), {
    code: 'WORKER_FAILED', statusCode: 503, retryAfterSeconds: 1, message: 'kernel worker failed: kernel worker thread exited with code 3, on a fresh worker too; retry'
  })
  t.equal(h.workers.length, 3, 'first worker, the retry\'s, and the one replacing it')
  await h.ready()
  t.equal(await h.run('echo'), 2)
})

t.test('a reply that cannot be read (messageerror): the worker is replaced and the run retried', async t => {
  const h = await harness(t)
  const answer = h.run('hang-first')
  await until(() => h.pool.available() === 0)
  const old = exited(h.workers[0])
  h.workers[0].emit('messageerror', new Error('could not deserialize'))
  t.equal(await answer, 1)
  t.same(h.lost, ['short: a kernel worker reply could not be read (could not deserialize)'])
  await old
  t.pass('the old thread was terminated')
})

t.test('a kernel error is the run\'s own failure: no retry, no replacement', async t => {
  const h = await harness(t)
  await t.rejects(h.run('fail'), { message: 'kernel failed' })
  t.equal(h.workers.length, 1)
  t.same(h.lost, [])
  t.equal(await h.run('echo'), 2)
})

t.test('a kernel past its time limit: the run throws KernelTimeout at once and a fresh worker takes the lane', async t => {
  const h = await harness(t)
  const late = h.run('hang', { timeoutMs: 1500 })
  await until(() => h.timers.length === 1)
  t.equal(h.timers[0].ms, 1500)
  h.timers[0].fn()
  await t.rejects(late, new KernelTimeout(1500))
  t.equal(h.workers.length, 2, 'a fresh worker')
  t.same(h.lost, ['short: a kernel ran past its time limit of 1500 ms'])
  await h.ready()
  t.equal(await h.run('echo'), 2, 'the lane serves on, on the fresh worker')
  // the abandoned thread is terminated once its kernel returns (never while inside it)
  t.equal(h.pool.overrunning, 1)
  const old = exited(h.workers[0])
  h.workers[0].postMessage('release')
  await old
  t.equal(h.pool.overrunning, 0)
})

t.test('abandoned kernels still finishing are bounded by the lane\'s size: the next fresh worker waits for one to end', async t => {
  const h = await harness(t)
  let capacity = 0
  h.pool.onCapacity(() => capacity++)
  const first = h.run('hang', { timeoutMs: 1000 })
  await until(() => h.timers.length === 1)
  h.timers[0].fn()
  await t.rejects(first, new KernelTimeout(1000))
  await until(() => capacity === 1)
  t.equal(h.pool.available(), 1, 'a fresh worker, ready')
  const second = h.run('hang', { timeoutMs: 1000 })
  await until(() => h.timers.length === 1)
  h.timers[0].fn()
  await t.rejects(second, new KernelTimeout(1000))
  t.equal(h.workers.length, 2, 'no third thread while two kernels still compute')
  t.equal(h.pool.available(), 0)
  t.equal(h.pool.overrunning, 2)
  h.workers[0].postMessage('release')
  await until(() => capacity === 2)
  t.equal(h.workers.length, 3, 'a fresh worker once the first abandoned kernel has ended')
  t.equal(h.pool.available(), 1)
  t.equal(await h.run('echo'), 3)
})

t.test('lanes: a long kernel holds the long worker only; short runs go on', async t => {
  const h = await harness(t, { short: 1, long: 1 })
  t.same([h.pool.available('short'), h.pool.available('long')], [1, 1])
  const long = h.run('hang', { lane: 'long' })
  await until(() => h.pool.available('long') === 0)
  t.equal(h.pool.available('short'), 1)
  t.equal(await h.run('echo', { lane: 'short' }), 2, 'a short run is answered while the long kernel runs')
  h.workers[1].postMessage('release')
  t.equal(await long, 1)
})

t.test('without long workers, long runs share the short ones', async t => {
  const h = await harness(t, { short: 1, long: 0 })
  t.equal(h.pool.available('long'), 1)
  const long = h.run('hang', { lane: 'long' })
  await until(() => h.pool.available('short') === 0)
  t.equal(h.pool.available('long'), 0)
  h.workers[0].postMessage('release')
  t.equal(await long, 1)
})

t.test('batcher on the pool: a batch stopped at a deadline answers 504 to the member due, 503 to the others', async t => {
  const h = await harness(t)
  const clock = { now: 0 }
  const b = new Batcher(h.pool, { maxSize: 4, maxElements: 1000, maxDelayUs: 0, maxQueue: 8, timeoutUs: 10_000_000 }, { clockUs: () => clock.now })
  const call = (v: number): ReturnType<typeof prepare> => prepare(mse as never, { input: [v], target: [0], reduction: 'sum', grad: false })
  const first = b.submit(call(1))
  clock.now = 1_000_000
  const due = b.submit(call(2))
  clock.now = 2_000_000
  const mate = b.submit(call(3))
  clock.now = 3_000_000
  t.equal((await first).loss.data[0], 1)
  await until(() => h.timers.length === 1)
  t.equal(h.timers[0].ms, 8_000, 'the batch may run until its first member\'s deadline (11 s)')
  h.timers[0].fn()
  await t.rejects(due, { code: 'DEADLINE_EXCEEDED', statusCode: 504 })
  await t.rejects(mate, { code: 'KERNEL_ABANDONED', statusCode: 503, retryAfterSeconds: 1 })
  await h.ready()
  t.pass('the lane has a fresh worker')
  h.workers[0].postMessage('release')
  await b.drain()
})

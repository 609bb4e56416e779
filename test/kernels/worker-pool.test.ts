import t, { type Test } from 'tap'
import { Worker } from 'node:worker_threads'
import { Batcher } from '../../src/batching/batcher'
import { KernelTimeout } from '../../src/kernels/executor'
import { buildFeeds, buildModel, kernelKey } from '../../src/kernels/kernel'
import { prepare } from '../../src/kernels/prepare'
import { type KernelTensors } from '../../src/kernels/tensors'
import { type LaneSizes, WorkerPool, type WorkerPoolOptions } from '../../src/kernels/worker-pool'
import mse from '../../src/losses/mse'
import { type TensorData } from '../../src/tensor/tensor'

/*
 * A stand-in for src/kernels/worker.ts speaking its protocol (it hands the inputs moved to it
 * back with every answer, as worker.ts does), whose kernels are chosen by key:
 * `echo` answers its `x` feed back as `loss`; `which` answers 2 on a wide session, 1 on the other; `exit` ends the thread and `throw` throws out of
 * it (in every worker, or with `-first` only in the pool's first); `fail` reports a kernel
 * error; `hang` answers only when the
 * test posts 'release' to it (with `-first`, only the first worker hangs). Keys starting with
 * `solo|` echo the first element of `input`, and `batch|` hang (for the batcher). It forgets its
 * sessions on 'forget', as an LRU eviction would. A message lent to it (`{ lent }`) is echoed back. It says 'ready' once started, as worker.ts does
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
  if (msg.lent !== undefined) return parentPort.postMessage({ lent: msg.lent })
  const { id, key, model, feeds, handBack = [] } = msg
  const reply = (r, outputs = {}) => {
    r.inputs = Object.fromEntries(handBack.map(name => [name, feeds[name]]))
    const buffers = [...Object.values(outputs), ...Object.values(r.inputs)].map(t => t.data.buffer)
    parentPort.postMessage(r, [...new Set(buffers)])
  }
  if (model === undefined && !known.has(key)) return reply({ id, ok: false, missingModel: true, message: 'model needed' })
  known.add(key)
  const first = workerData.index === 0
  const answer = () => reply({ id, ok: true, outputs: { loss: { ...feeds.x, data: feeds.x.data.slice() } } })
  if (key === 'exit' || (key === 'exit-first' && first)) process.exit(3)
  if (key === 'throw' || (key === 'throw-first' && first)) throw new Error('boom')
  if (key === 'fail') return reply({ id, ok: false, missingModel: false, message: 'kernel failed' })
  if (key === 'hang' || (key === 'hang-first' && first) || key.startsWith('batch|')) return held.push(answer)
  if (key === 'which') return reply({ id, ok: true, outputs: { loss: { type: 'float32', dims: [1], data: Float32Array.of(msg.wide ? 2 : 1) } } })
  if (key.startsWith('solo|')) return reply({ id, ok: true, outputs: { loss: { type: 'float32', dims: [], data: feeds.input.data.slice(0, 1) } } })
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

async function harness (t: Test, sizes: LaneSizes = { short: 1, long: 0 }, options: WorkerPoolOptions = {}): Promise<Harness> {
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
    onWorkerLost: (lane, reason) => lost.push(`${lane}: ${reason}`),
    ...options
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
    // as the batcher does: feeds that can be made again, should their worker die with them
    const out = await pool.run(key, () => { models.sent++; return new Uint8Array([1]) }, feeds(v), { rebuild: () => feeds(v), ...options })
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
  t.equal(h.pool.threadsInKernels(), 0, 'no thread in a kernel before any runs')
  const late = h.run('hang', { timeoutMs: 1500 })
  await until(() => h.timers.length === 1)
  t.equal(h.timers[0].ms, 1500)
  t.equal(h.pool.threadsInKernels(), 1, 'the running kernel\'s thread')
  h.timers[0].fn()
  await t.rejects(late, new KernelTimeout(1500))
  t.equal(h.workers.length, 2, 'a fresh worker')
  t.same(h.lost, ['short: a kernel ran past its time limit of 1500 ms'])
  await h.ready()
  t.equal(await h.run('echo'), 2, 'the lane serves on, on the fresh worker')
  // the abandoned thread is terminated once its kernel returns (never while inside it)
  t.equal(h.pool.overrunning, 1)
  t.equal(h.pool.threadsInKernels(), 1, 'the abandoned thread still counts, the idle fresh one does not')
  const old = exited(h.workers[0])
  h.workers[0].postMessage('release')
  await old
  t.equal(h.pool.overrunning, 0)
  t.equal(h.pool.threadsInKernels(), 0)
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

t.test('batcher on the pool: a batch runs until its last member\'s deadline; the member due sooner gets 504 at its own, and the kernel stopped then answers 504 to the rest', async t => {
  const h = await harness(t)
  const clock = { now: 0 }
  const due: Array<() => void> = []
  const b = new Batcher(h.pool, { maxSize: 4, maxElements: 1000, maxDelayUs: 0, maxQueue: 8, timeoutUs: 10_000_000 }, {
    clockUs: () => clock.now,
    setTimer: fn => { due.push(fn); return () => {} }
  })
  const call = (v: number): ReturnType<typeof prepare> => prepare(mse as never, { input: [v], target: [0], reduction: 'sum', grad: false })
  const first = b.submit(call(1))
  clock.now = 1_000_000
  const early = b.submit(call(2))
  clock.now = 2_000_000
  const mate = b.submit(call(3))
  clock.now = 3_000_000
  t.equal((await first).loss.data[0], 1)
  await until(() => h.timers.length === 1)
  t.equal(h.timers[0].ms, 9_000, 'the batch may run until its last member\'s deadline (12 s)')
  clock.now = 11_000_000
  for (const fn of due.splice(0)) fn()
  await t.rejects(early, { code: 'DEADLINE_EXCEEDED', statusCode: 504 })
  clock.now = 12_000_000
  h.timers[0].fn()
  await t.rejects(mate, { code: 'DEADLINE_EXCEEDED', statusCode: 504, message: /which was abandoned/ })
  await h.ready()
  t.pass('the lane has a fresh worker')
  h.workers[0].postMessage('release')
  await b.drain()
})

const model = (): Uint8Array => new Uint8Array([1])
const one = (v: number): KernelTensors => ({ x: { type: 'float32', dims: [1], data: Float32Array.of(v) } })

t.test('inputs move to the worker, not copied, and come back with its answer: a lent argument gets its array back', async t => {
  const h = await harness(t)
  const arg: { data: TensorData } = { data: Float32Array.of(7) }
  const feeds: KernelTensors = { x: { type: 'float32', dims: [1], data: arg.data as Float32Array, source: arg } }
  const run = h.pool.run('hang', model, feeds)
  t.equal(feeds.x.data.length, 0, 'the array is detached while the worker holds it (transferred)')
  t.equal(h.pool.stats().inFlightBytes, 4, 'its bytes count as in flight')
  h.workers[0].postMessage('release')
  t.same([...(await run).loss.data], [7])
  t.same([...feeds.x.data], [7], 'the feed is whole again')
  t.equal(arg.data, feeds.x.data, 'and the argument it was lent by has the returned array')
  t.equal(h.pool.stats().inFlightBytes, 0)
})

t.test('a kernel error hands the inputs back too; so does a missing model, and they go again with it', async t => {
  const h = await harness(t)
  const feeds = one(3)
  await t.rejects(h.pool.run('fail', model, feeds), { message: 'kernel failed' })
  t.same([...feeds.x.data], [3], 'whole after the error')
  let models = 0
  const counted = (): Uint8Array => { models++; return model() }
  t.same([...(await h.pool.run('echo', counted, one(4))).loss.data], [4])
  h.workers[0].postMessage('forget')
  const again = one(5)
  t.same([...(await h.pool.run('echo', counted, again)).loss.data], [5], 'answered once the model was resent')
  t.equal(models, 2)
  t.same([...again.x.data], [5])
})

t.test('a view into a larger buffer is copied, not moved; an array over a SharedArrayBuffer is shared', async t => {
  const h = await harness(t)
  const body = new ArrayBuffer(16)
  new Float32Array(body).set([1, 2, 3, 4])
  const shared = new Float32Array(new SharedArrayBuffer(4))
  shared[0] = 9
  const feeds: KernelTensors = { x: { type: 'float32', dims: [1], data: new Float32Array(body, 4, 1) }, s: { type: 'float32', dims: [1], data: shared } }
  const run = h.pool.run('hang', model, feeds)
  t.equal(body.byteLength, 16, 'the larger buffer stays here')
  t.same([...feeds.x.data, ...feeds.s.data], [2, 9], 'both readable while the kernel runs')
  h.workers[0].postMessage('release')
  t.same([...(await run).loss.data], [2])
})

t.test('feeds already moved away (detached): the run fails on its own; the worker is not lost', async t => {
  const h = await harness(t)
  const feeds = one(2)
  structuredClone(feeds.x.data.buffer, { transfer: [feeds.x.data.buffer as ArrayBuffer] })
  await t.rejects(h.pool.run('echo', model, feeds), /kernel inputs could not be sent to the worker: An ArrayBuffer is detached and could not be cloned/)
  t.same(h.lost, [], 'no worker replaced')
  t.equal(await h.run('echo'), 1, 'the same worker serves the next run')
})

t.test('a worker that dies with moved feeds: the run is retried on feeds made anew', async t => {
  const h = await harness(t)
  let rebuilt = 0
  const out = await h.pool.run('exit-first', model, one(5), { rebuild: () => { rebuilt++; return one(5) } })
  t.same([...out.loss.data], [5])
  t.equal(rebuilt, 1)
})

t.test('... unless they cannot be made anew, or held a request\'s own arrays: 503 WORKER_FAILED, the client retries', async t => {
  const h = await harness(t)
  await t.rejects(h.pool.run('exit-first', model, one(5)), {
    code: 'WORKER_FAILED', statusCode: 503, retryAfterSeconds: 1, message: 'kernel worker failed: kernel worker thread exited with code 3; the request\'s tensors went with it; retry'
  })
  await h.ready()
  const arg: { data: TensorData } = { data: Float32Array.of(6) }
  let rebuilt = 0
  const lent: KernelTensors = { x: { type: 'float32', dims: [1], data: arg.data as Float32Array, source: arg } }
  await t.rejects(h.pool.run('exit', model, lent, { rebuild: () => { rebuilt++; return lent } }), { code: 'WORKER_FAILED' })
  t.equal(rebuilt, 0, 'the argument went with the worker: nothing to make the feeds from')
})

t.test('a lone large call runs on a wide session; not while another kernel runs or waits, nor on cores other processes use', async t => {
  const state = { free: 2, queued: 0 }
  const h = await harness(t, { short: 1, long: 1 }, { wide: { threads: 2, elements: 100, freeCores: () => state.free }, queued: () => state.queued })
  const large = { cost: { elements: 100, steps: 1 } }
  t.equal(await h.run('which', large), 2, 'large, alone: wide')
  t.equal(await h.run('which', { cost: { elements: 99, steps: 1 } }), 1, 'smaller than the bound')
  t.equal(await h.run('which'), 1, 'cost unknown')
  state.queued = 1
  t.equal(await h.run('which', large), 1, 'a call waits in the queue')
  state.queued = 0
  state.free = 1.4
  t.equal(await h.run('which', large), 1, 'other processes leave fewer free cores than threads')
  state.free = 2
  const long = h.run('hang', { lane: 'long' })
  await until(() => h.pool.available('long') === 0)
  t.equal(await h.run('which', large), 1, 'another worker is busy')
  h.workers[1].postMessage('release')
  await long
  t.equal(await h.run('which', large), 2)
  t.equal(h.models.sent, 3, 'one model for each session of `which` (the wide one built once), one for `hang`')
})

t.test('lend: a message to an idle short worker, while nothing waits for one and other processes leave a core free', async t => {
  const state = { free: 2, queued: 0 }
  const h = await harness(t, { short: 1, long: 0 }, { wide: { threads: 2, elements: 100, freeCores: () => state.free }, queued: () => state.queued })
  const lent: unknown[] = []
  h.workers[0].on('message', (m: { lent?: unknown }) => { if (m?.lent !== undefined) lent.push(m.lent) })
  t.equal(h.pool.canLend(), true)
  t.equal(h.pool.lend({ lent: 1 }), true)
  state.queued = 1
  t.same([h.pool.canLend(), h.pool.lend({ lent: 2 })], [false, false], 'a call waits for a worker')
  state.queued = 0
  state.free = 1.4
  t.same([h.pool.canLend(), h.pool.lend({ lent: 3 })], [false, false], 'other processes leave no core free')
  state.free = 2
  const busy = h.run('hang')
  await until(() => h.pool.available() === 0)
  t.same([h.pool.canLend(), h.pool.lend({ lent: 4 })], [false, false], 'the worker runs a kernel')
  h.workers[0].postMessage('release')
  await busy
  t.equal(h.pool.lend({ lent: 5 }), true)
  await until(() => lent.length === 2)
  t.same(lent, [1, 5], 'only the messages lent reached the worker')
})

t.test('no wide runs when the wide sessions would not have more threads than the ordinary ones', async t => {
  const h = await harness(t, { short: 1, long: 0 }, { wide: { threads: 1, elements: 1, freeCores: () => 8 } })
  t.equal(await h.run('which', { cost: { elements: 100, steps: 1 } }), 1)
})

t.test('a tiny call runs on the event loop once its session is built there: no message to a worker, whose place it holds meanwhile', async t => {
  const h = await harness(t, { short: 1, long: 0 }, { inlineElements: 4 })
  const call = prepare(mse as never, { input: [1, 2], target: [0, 0], reduction: 'mean', grad: false })
  // the stand-in worker answers 'solo|' keys with the input's first value; the event loop's session is mse's own
  const key = `solo|${kernelKey(call)}`
  const run = async (): Promise<Array<number | bigint>> => [...(await h.pool.run(key, () => buildModel(call), buildFeeds(call), { cost: call.cost })).loss.data]
  t.same(h.pool.stats().workers.find(w => w.name === 'inline'), undefined, 'no session on the event loop before a tiny call')
  t.same(await run(), [1], 'the first tiny call takes the hop while the event loop builds its session')
  const sent: unknown[] = []
  const post = h.workers[0].postMessage.bind(h.workers[0])
  h.workers[0].postMessage = (msg: unknown) => { sent.push(msg); post(msg) }
  t.teardown(() => { h.workers[0].postMessage = post })
  let answer: Array<number | bigint> = []
  for (let i = 0; i < 200; i++) {
    const before = sent.length
    const running = run()
    if (sent.length === before) t.equal(h.pool.available(), 0, 'calls arriving meanwhile queue (and batch)')
    answer = await running
    if (sent.length === before) break
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  t.same(answer, [2.5], 'mean of 1 and 4, on the event loop')
  t.equal(h.pool.available(), 1)
  t.same(h.pool.stats().workers.find(w => w.name === 'inline'), { name: 'inline', sessions: 1 })
})

t.test('calls over the inline bound, of several steps, or of unknown cost take the hop', async t => {
  const h = await harness(t, { short: 1, long: 0 }, { inlineElements: 4 })
  // the stand-in's model is no ONNX model: only a worker answers these
  t.equal(await h.run('echo', { cost: { elements: 5, steps: 1 } }), 1)
  t.equal(await h.run('echo', { cost: { elements: 1, steps: 2 } }), 2)
  t.equal(await h.run('echo'), 3)
})

t.test('stats: workers by lane, kernels abandoned and workers replaced by reason', async t => {
  const h = await harness(t, { short: 1, long: 1 })
  t.same(h.pool.stats(), { workers: [{ name: 'short-0', sessions: 0 }, { name: 'long-0', sessions: 0 }], inFlightBytes: 0, abandoned: 0, replaced: { died: 0, overran: 0 }, overrunning: 0 })
  t.equal(await h.run('exit-first'), 1)
  const late = h.run('hang', { timeoutMs: 1000 })
  await until(() => h.timers.length === 1)
  h.timers[0].fn()
  await t.rejects(late, new KernelTimeout(1000))
  t.match(h.pool.stats(), { abandoned: 1, replaced: { died: 1, overran: 1 }, overrunning: 1 })
})

import { LosshubError } from '../../src/errors'
import t from 'tap'
import { DynamicBatcher } from '../../src/batching/batcher'
import { ClientGone } from '../../src/batching/departure'
import { type BatchKernels } from '../../src/batching/kernels'
import { type Executor, KernelTimeout, type Lane, type RunOptions } from '../../src/kernels/executor'
import { type KernelTensors } from '../../src/kernels/tensors'
import { type Cost } from '../../src/kernels/prepare'

interface Run { key: string, feeds: KernelTensors, options: RunOptions, finish: () => void, fail: (e: Error) => void }

/** An executor whose runs finish only when the test says so: one slot, or one per lane with `lanes`. */
class ManualExecutor implements Executor {
  runs: Run[] = []
  private readonly busy = new Set<Lane>()
  private listener = (): void => {}
  constructor (private readonly lanes = false) {}
  available (lane: Lane = 'short'): number { return this.busy.has(this.laneOf(lane)) ? 0 : 1 }
  onCapacity (listener: () => void): void { this.listener = listener }
  /** Takes a lane's slot away (a worker not started yet), or gives it back and says so. */
  block (lane: Lane): void { this.busy.add(lane) }
  unblock (lane: Lane): void {
    this.busy.delete(lane)
    this.listener()
  }

  async run (key: string, _model: () => Uint8Array, feeds: KernelTensors, options: RunOptions = {}): Promise<KernelTensors> {
    const lane = this.laneOf(options.lane ?? 'short')
    this.busy.add(lane)
    try {
      return await new Promise<KernelTensors>((resolve, reject) => {
        // echo the input as "loss" so each member's share can be checked
        const rows = feeds.input.dims[0]
        const loss = key.startsWith('batch') ? { ...feeds.input, dims: [rows] } : { ...feeds.input, dims: [] as number[], data: feeds.input.data.slice(0, 1) }
        this.runs.push({ key, feeds, options, finish: () => resolve({ loss }), fail: reject })
      })
    } finally { this.busy.delete(lane) }
  }

  async close (): Promise<void> {}
  private laneOf (lane: Lane): Lane { return this.lanes ? lane : 'short' }
}

/** A call as these tests make them: a value, echoed back as its loss, and what it costs (absent: small). */
interface Call { v: number, cost?: Cost }

/**
 * The kernels of test calls: all of them batch together, one row each; a kernel's input holds
 * the calls' values, and each call's share of a batch's output is its own row.
 */
const kernels: BatchKernels<Call> = {
  cost: c => c.cost,
  plan: c => ({ group: 'echo', rows: 1, elements: c.cost?.elements ?? 1 }),
  run: calls => ({
    key: `${calls.length > 1 ? 'batch' : 'solo'}|echo`,
    name: 'echo',
    model: () => new Uint8Array(0),
    feeds: () => ({ input: { type: 'float32', dims: [calls.length], data: Float32Array.from(calls, c => c.v) } })
  }),
  split: (calls, out) => calls.map((_, i) => ({ loss: { ...out.loss, dims: [], data: out.loss.data.slice(i, i + 1) } }))
}

/** A call of one element, as admission would have measured it. */
const call = (v: number): Call => ({ v, cost: { elements: 1, steps: 1, bytes: 8 } })
/** A call with the given cost. */
const costing = (v: number, cost: Partial<Cost>): Call => ({ v, cost: { elements: 1, steps: 1, bytes: 8, ...cost } })
/** A call without a cost, as a call built by hand has. */
const costless = (v: number): Call => ({ v })
const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

function harness (policy: Partial<ConstructorParameters<typeof DynamicBatcher>[1]> = {}, lanes = false): {
  b: DynamicBatcher<Call>
  ex: ManualExecutor
  clock: { now: number }
  timers: Array<{ fn: () => void, at: number }>
} {
  const ex = new ManualExecutor(lanes)
  const clock = { now: 0 }
  const timers: Array<{ fn: () => void, at: number }> = []
  const b = new DynamicBatcher(ex, { maxSize: 4, maxElements: 1000, maxDelayUs: 0, maxQueue: 8, ...policy }, kernels, {
    clockUs: () => clock.now,
    setTimer: (fn, us) => {
      const timer = { fn, at: clock.now + us }
      timers.push(timer)
      return () => { timers.splice(timers.indexOf(timer), 1) }
    }
  })
  return { b, ex, clock, timers }
}

t.test('an idle executor runs a lone request at once: no added delay', async t => {
  const { b, ex } = harness({ maxDelayUs: 0 })
  const p = b.submit(call(1))
  t.equal(ex.runs.length, 1)
  t.match(ex.runs[0].key, /^solo\|/)
  ex.runs[0].finish()
  t.same(Array.from((await p).loss.data as Float32Array), [1])
})

t.test('requests that arrive while the executor is busy run together, up to maxSize', async t => {
  const { b, ex } = harness()
  const first = b.submit(call(1))
  const rest = [2, 3, 4, 5, 6].map(async v => await b.submit(call(v)))
  t.equal(b.queued, 5)
  ex.runs[0].finish()
  await first
  await tick()
  t.equal(ex.runs.length, 2)
  t.match(ex.runs[1].key, /^batch\|/)
  t.same(Array.from(ex.runs[1].feeds.input.data as Float32Array), [2, 3, 4, 5], 'four requests, oldest first')
  ex.runs[1].finish()
  await tick()
  ex.runs[2].finish()
  const shares = await Promise.all(rest)
  t.same(shares.map(s => Array.from(s.loss.data as Float32Array)), [[2], [3], [4], [5], [6]], 'each request gets its own row back')
  t.same([...b.stats.sizes.entries()].sort(), [[1, 2], [4, 1]])
})

t.test('with a delay, a lone request waits for company until the oldest has waited maxDelayUs', async t => {
  const { b, ex, clock, timers } = harness({ maxDelayUs: 1000 })
  const a = b.submit(call(1))
  t.equal(ex.runs.length, 0, 'not yet')
  t.equal(timers[0].at, 1000)
  clock.now = 400
  const c = b.submit(call(2))
  t.equal(ex.runs.length, 0, 'still waiting for the oldest\'s delay')
  clock.now = 1000
  timers[timers.length - 1].fn()
  t.equal(ex.runs.length, 1)
  t.match(ex.runs[0].key, /^batch\|/)
  ex.runs[0].finish()
  t.same([(await a).loss.data[0], (await c).loss.data[0]], [1, 2])
})

t.test('a full queue refuses at once with OVERLOADED and Retry-After; nothing hangs', async t => {
  const { b, ex } = harness({ maxQueue: 2 })
  const running = b.submit(call(0))
  const queued = [b.submit(call(1)), b.submit(call(2))]
  await t.rejects(b.submit(call(3)), { code: 'OVERLOADED', retryAfterSeconds: 1, statusCode: 503 })
  ex.runs[0].finish()
  await running
  await tick()
  ex.runs[1].finish()
  t.equal((await Promise.all(queued)).length, 2)
})

t.test('a failed batch is retried member by member: only the bad one fails', async t => {
  const { b, ex } = harness()
  const first = b.submit(call(0))
  const members = [1, 2, 3].map(async v => await b.submit(call(v)).then(r => r.loss.data[0], (e: Error) => e.message))
  ex.runs[0].finish()
  await first
  await tick()
  ex.runs[1].fail(new Error('batch failed'))
  for (const [i, v] of [1, 2, 3].entries()) {
    await tick()
    const run = ex.runs[2 + i]
    t.match(run.key, /^solo\|/, `member ${v} retried alone`)
    if (v === 2) run.fail(new Error('bad member'))
    else run.finish()
  }
  t.same(await Promise.all(members), [1, 'bad member', 3])
})

for (const [kind, make] of [
  ['ClientGone', () => { const g = new ClientGone(); return { signal: g, leave: () => g.leave() } }],
  ['an AbortSignal', () => { const c = new AbortController(); return { signal: c.signal, leave: () => c.abort() } }]
] as const) {
  t.test(`a request whose client went away is dropped from the queue (told by ${kind})`, async t => {
    const { b, ex } = harness()
    const first = b.submit(call(0))
    const gone = make()
    const dropped = b.submit(call(1), gone.signal)
    const kept = b.submit(call(2))
    gone.leave()
    await t.rejects(dropped)
    t.equal(b.stats.abandoned, 1)
    ex.runs[0].finish()
    await first
    await tick()
    t.match(ex.runs[1].key, /^solo\|/, 'only the remaining request runs')
    ex.runs[1].finish()
    t.equal((await kept).loss.data[0], 2)
  })
}

t.test('drain answers everything queued, then refuses new requests', async t => {
  const { b, ex } = harness()
  const a = b.submit(call(1))
  const c = b.submit(call(2))
  const drained = b.drain()
  await t.rejects(b.submit(call(3)), { code: 'SHUTTING_DOWN' })
  ex.runs[0].finish()
  await a
  await tick()
  ex.runs[1].finish()
  await c
  await drained
  t.pass('drained')
})

/** Fires the timers due by the harness clock, as the event loop would. */
function fireDue (clock: { now: number }, timers: Array<{ fn: () => void, at: number }>): void {
  for (const timer of timers.filter(x => x.at <= clock.now)) timer.fn()
}

t.test('a request past its deadline while queued leaves the queue with 504 DEADLINE_EXCEEDED; the one running is kept', async t => {
  const { b, ex, clock, timers } = harness({ timeoutUs: 30_000_000 })
  const running = b.submit(call(1))
  t.equal(ex.runs[0].options.timeoutMs, 30_000, 'the run may last what is left of its deadline')
  clock.now = 5_000_000
  const late = b.submit(call(2))
  t.equal(timers.at(-1)?.at, 35_000_000, 'a timer for the queued request\'s deadline')
  clock.now = 35_000_000
  fireDue(clock, timers)
  await t.rejects(late, { code: 'DEADLINE_EXCEEDED', statusCode: 504, message: 'deadline exceeded: waited 30000 ms in the queue, past REQUEST_TIMEOUT_MS (30000 ms); the service is busy, retry later' })
  t.equal(b.queued, 0)
  t.equal(b.stats.timedOut, 1)
  ex.runs[0].finish()
  t.equal((await running).loss.data[0], 1, 'the running request is answered (this executor cannot stop it)')
  t.equal(ex.runs.length, 1, 'the expired request never ran')
  await b.drain()
})

t.test('a queued request is run with only what is left of its deadline', async t => {
  const { b, ex, clock } = harness({ timeoutUs: 10_000_000 })
  const first = b.submit(call(1))
  clock.now = 2_000_000
  const second = b.submit(call(2))
  clock.now = 6_000_000
  ex.runs[0].finish()
  await first
  await tick()
  t.equal(ex.runs[1].options.timeoutMs, 6_000, 'queued at 2 s, started at 6 s, deadline at 12 s')
  ex.runs[1].finish()
  await second
})

/**
 * Two requests queued behind a running one (deadline 10 s; queued at 2 and 3 s), run as one
 * batch from 4 s: `early` is due at 12 s, `later` at 13 s.
 */
async function batchOfTwo (): Promise<ReturnType<typeof harness> & { early: Promise<KernelTensors>, later: Promise<KernelTensors> }> {
  const h = harness({ timeoutUs: 10_000_000 })
  const { b, ex, clock } = h
  const first = b.submit(call(0))
  clock.now = 2_000_000
  const early = b.submit(call(1))
  clock.now = 3_000_000
  const later = b.submit(call(2))
  clock.now = 4_000_000
  ex.runs[0].finish()
  await first
  await tick()
  // answered in the tests; a rejection seen before then is not unhandled
  early.catch(() => {})
  later.catch(() => {})
  return { ...h, early, later }
}

t.test('a batch runs until its last member\'s deadline: a member due sooner gets 504 at its own while the kernel runs on for the others', async t => {
  const { b, ex, clock, timers, early, later } = await batchOfTwo()
  t.match(ex.runs[1].key, /^batch\|/, 'the two queued requests run as one batch')
  t.equal(ex.runs[1].options.timeoutMs, 9_000, 'until the later member\'s deadline (13 s)')
  clock.now = 12_000_000
  fireDue(clock, timers)
  await t.rejects(early, { code: 'DEADLINE_EXCEEDED', statusCode: 504, message: 'deadline exceeded: REQUEST_TIMEOUT_MS (10000 ms) passed after 2000 ms in the queue and 8000 ms in the kernel; a smaller request (fewer frames or elements) takes less' })
  ex.runs[1].finish()
  t.equal((await later).loss.data[0], 2, 'its batch mate gets its own answer')
  t.equal(b.stats.timedOut, 1)
  t.equal(timers.length, 0, 'no timer left behind')
  await b.drain()
})

t.test('a batch\'s kernel abandoned at its last member\'s deadline: every member 504, none retried', async t => {
  const { b, ex, clock, timers, early, later } = await batchOfTwo()
  clock.now = 12_000_000
  fireDue(clock, timers)
  await t.rejects(early, { code: 'DEADLINE_EXCEEDED' })
  clock.now = 13_000_000
  ex.runs[1].fail(new KernelTimeout(9_000))
  await t.rejects(later, { code: 'DEADLINE_EXCEEDED', statusCode: 504, message: 'deadline exceeded: REQUEST_TIMEOUT_MS (10000 ms) passed after 1000 ms in the queue and 9000 ms in the kernel, which was abandoned; a smaller request (fewer frames or elements) takes less' })
  await tick()
  t.equal(ex.runs.length, 2, 'no member is retried alone after a timeout')
  t.equal(b.stats.timedOut, 2)
  await b.drain()
})

t.test('a failed batch retries alone only the members still waiting', async t => {
  const { b, ex, clock, timers, early, later } = await batchOfTwo()
  clock.now = 12_000_000
  fireDue(clock, timers)
  await t.rejects(early, { code: 'DEADLINE_EXCEEDED' })
  ex.runs[1].fail(new Error('a bad member'))
  await tick()
  t.equal(ex.runs.length, 3, 'one retry')
  t.same(Array.from(ex.runs[2].feeds.input.data as Float32Array), [2], 'of the member still waiting')
  ex.runs[2].finish()
  t.equal((await later).loss.data[0], 2)
  await b.drain()
})

t.test('the queue is bounded in bytes of decoded arguments: past QUEUE_MAX_MB, 503 OVERLOADED with Retry-After', async t => {
  const MiB = 2 ** 20
  const { b, ex } = harness({ maxQueueBytes: 10 * MiB })
  const running = b.submit(costing(0, { bytes: 9 * MiB }))
  t.equal(b.queuedArgumentBytes, 0, 'a running request is not queued')
  const queued = [b.submit(costing(1, { bytes: 6 * MiB }))]
  t.equal(b.queuedArgumentBytes, 6 * MiB)
  await t.rejects(b.submit(costing(2, { bytes: 4.5 * MiB })), {
    code: 'OVERLOADED', statusCode: 503, retryAfterSeconds: 1, message: 'overloaded: 6.0 MiB of arguments are queued and this request brings 4.5 MiB (QUEUE_MAX_MB); retry'
  })
  queued.push(b.submit(costing(3, { bytes: 4 * MiB })), b.submit(costless(4)))
  t.equal(b.queuedArgumentBytes, 10 * MiB, 'exactly the bound fits; a call without a cost holds nothing')
  ex.runs[0].finish()
  await running
  await tick()
  ex.runs[1].finish()
  t.same((await Promise.all(queued)).map(r => r.loss.data[0]), [1, 3, 4])
  t.equal(b.queuedArgumentBytes, 0)
})

t.test('a request larger than the byte bound is taken when nothing waits: size alone never refuses', async t => {
  const { b, ex } = harness({ maxQueueBytes: 1000 })
  const running = b.submit(call(0))
  const big = b.submit(costing(1, { bytes: 5000 }))
  t.equal(b.queued, 1)
  await t.rejects(b.submit(costing(2, { bytes: 1 })), { code: 'OVERLOADED' })
  ex.runs[0].finish()
  await running
  await tick()
  ex.runs[1].finish()
  t.equal((await big).loss.data[0], 1)
})

t.test('a long call runs in the long lane: a small one sent after it runs at once and is answered first', async t => {
  const { b, ex } = harness({ lanes: { longSteps: 1000, longElements: 1 << 20 } }, true)
  const order: string[] = []
  const long = b.submit(costing(1, { steps: 200_000 })).then(() => order.push('long'))
  const small = b.submit(call(2)).then(() => order.push('small'))
  t.same(ex.runs.map(r => r.options.lane), ['long', 'short'], 'both run at once, each in its lane')
  ex.runs[1].finish()
  await small
  t.same(order, ['small'], 'the small request is answered while the long kernel still runs')
  ex.runs[0].finish()
  await long
  t.same(order, ['small', 'long'])
})

t.test('a second long call waits for the long lane even while the short lane is idle', async t => {
  const { b, ex } = harness({ lanes: { longSteps: 1000, longElements: 1 << 20 } }, true)
  const first = b.submit(costing(1, { elements: 1 << 21 }))
  const second = b.submit(costing(2, { steps: 5000 }))
  t.equal(ex.runs.length, 1)
  const small = b.submit(costless(3))
  t.same(ex.runs.map(r => r.options.lane), ['long', 'short'], 'a call without a cost is small')
  ex.runs[1].finish()
  await small
  ex.runs[0].finish()
  await first
  await tick()
  t.same(ex.runs.map(r => r.options.lane), ['long', 'short', 'long'])
  ex.runs[2].finish()
  t.equal((await second).loss.data[0], 2)
})

t.test('capacity that comes back outside a run (a worker started late) starts the queued work', async t => {
  const { b, ex } = harness()
  ex.block('short')
  const waiting = b.submit(call(7))
  t.equal(ex.runs.length, 0)
  ex.unblock('short')
  t.equal(ex.runs.length, 1)
  ex.runs[0].finish()
  t.equal((await waiting).loss.data[0], 7)
})

t.test('a call submitted without a deadline (the warm-up) is never expired', async t => {
  const { b, ex, clock, timers } = harness({ timeoutUs: 1_000_000 })
  ex.block('short')
  const warm = b.submit(call(1), undefined, { us: Infinity, name: 'the warm-up' })
  const request = b.submit(call(2))
  clock.now = 5_000_000
  fireDue(clock, timers)
  await t.rejects(request, { code: 'DEADLINE_EXCEEDED' })
  t.equal(b.queued, 1, 'the warm-up call still waits')
  ex.unblock('short')
  t.equal(ex.runs[0].options.timeoutMs, undefined, 'and its kernel has no time limit')
  ex.runs[0].finish()
  t.equal((await warm).loss.data[0], 1)
})

t.test('a deadline of its own, shorter than the policy\'s, expires the call and is named in the message', async t => {
  const { b, ex, clock, timers } = harness({ timeoutUs: 30_000_000 })
  ex.block('short')
  const running = b.submit(call(1))
  const own = b.submit(call(2), undefined, { us: 2_000_000, name: 'the request\'s timeout parameter' })
  clock.now = 2_000_000
  fireDue(clock, timers)
  await t.rejects(own, { code: 'DEADLINE_EXCEEDED', message: 'deadline exceeded: waited 2000 ms in the queue, past the request\'s timeout parameter (2000 ms); the service is busy, retry later' })
  ex.unblock('short')
  ex.runs[0].finish()
  await running
})

t.test('refuseAll answers every request queued or running with its error; a kernel that ends later is not read', async t => {
  const { b, ex } = harness()
  const running = b.submit(call(1))
  const queued = [2, 3].map(async v => await b.submit(call(v)))
  t.equal(b.queued, 2)
  const err = new LosshubError('SHUTTING_DOWN', 'out of time', 1)
  b.refuseAll(err)
  t.equal(b.queued, 0, 'the queue is empty')
  await t.rejects(running, err, 'the running request is answered')
  for (const q of queued) await t.rejects(q, err, 'so is each queued one')
  ex.runs[0].finish()
  await b.drain()
  t.equal(ex.runs.length, 1, 'nothing queued ran')
})

import t from 'tap'
import { Batcher } from '../../src/batching/batcher'
import { type Executor } from '../../src/kernels/executor'
import { type KernelTensors } from '../../src/kernels/tensors'
import { prepare } from '../../src/kernels/prepare'
import mse from '../../src/losses/mse'

/** An executor with one slot whose runs finish only when the test says so. */
class ManualExecutor implements Executor {
  runs: Array<{ key: string, feeds: KernelTensors, finish: () => void, fail: (e: Error) => void }> = []
  private busy = false
  available (): number { return this.busy ? 0 : 1 }
  async run (key: string, _model: () => Uint8Array, feeds: KernelTensors): Promise<KernelTensors> {
    this.busy = true
    try {
      return await new Promise<KernelTensors>((resolve, reject) => {
        // echo the input as "loss" so each member's share can be checked
        const rows = feeds.input.dims[0]
        const loss = key.startsWith('batch') ? { ...feeds.input, dims: [rows] } : { ...feeds.input, dims: [] as number[], data: feeds.input.data.slice(0, 1) }
        this.runs.push({ key, feeds, finish: () => resolve({ loss }), fail: reject })
      })
    } finally { this.busy = false }
  }

  async close (): Promise<void> {}
}

const call = (v: number): ReturnType<typeof prepare> => prepare(mse as never, { input: [v], target: [0], reduction: 'sum', grad: false })
const tick = async (): Promise<void> => await new Promise(resolve => setImmediate(resolve))

function harness (policy: Partial<ConstructorParameters<typeof Batcher>[1]> = {}): { b: Batcher, ex: ManualExecutor, clock: { now: number }, timers: Array<{ fn: () => void, at: number }> } {
  const ex = new ManualExecutor()
  const clock = { now: 0 }
  const timers: Array<{ fn: () => void, at: number }> = []
  const b = new Batcher(ex, { maxSize: 4, maxElements: 1000, maxDelayUs: 0, maxQueue: 8, ...policy }, {
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
  t.same(Array.from(ex.runs[1].feeds.segment_ids.data as BigInt64Array), [0n, 1n, 2n, 3n], 'four requests, one row each')
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

t.test('a request whose client went away is dropped from the queue', async t => {
  const { b, ex } = harness()
  const first = b.submit(call(0))
  const gone = new AbortController()
  const dropped = b.submit(call(1), gone.signal)
  const kept = b.submit(call(2))
  gone.abort()
  await t.rejects(dropped)
  t.equal(b.stats.abandoned, 1)
  ex.runs[0].finish()
  await first
  await tick()
  t.match(ex.runs[1].key, /^solo\|/, 'only the remaining request runs')
  ex.runs[1].finish()
  t.equal((await kept).loss.data[0], 2)
})

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

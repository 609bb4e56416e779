import t, { type Test } from 'tap'
import * as ort from 'onnxruntime-node'
import { InProcessExecutor, runCost, toOrt } from '../../src/kernels/executor'
import { buildFeeds, buildModel, kernelKey } from '../../src/kernels/kernel'
import { prepare, type PreparedCall } from '../../src/kernels/prepare'
import { SessionCache } from '../../src/kernels/session-cache'
import { fromOrt, type KernelTensors } from '../../src/kernels/tensors'
import { WorkerPool, type WorkerPoolOptions } from '../../src/kernels/worker-pool'
import { REGISTRY } from '../../src/losses'

/* Real kernels on real worker threads (src/kernels/worker.ts, started through ts-node). */

const settings = { intraOpNumThreads: 1, interOpNumThreads: 1 }
const b64 = (a: Float32Array | BigInt64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')

/** cross_entropy over [n, 3] float32 logits and int64 targets in base64 (the arguments are lent to the kernel as they are), with gradients. */
function crossEntropy (n = 4): PreparedCall {
  const def = REGISTRY.get('cross_entropy')
  if (def === undefined) throw new Error('cross_entropy')
  const defaults: Record<string, unknown> = {}
  for (const [k, s] of Object.entries(def.options)) if ('default' in s) defaults[k] = (s as { default: unknown }).default
  return prepare(def, {
    ...defaults,
    input: { dtype: 'float32', shape: [n, 3], data: b64(Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i))) },
    target: { dtype: 'int64', shape: [n], data: b64(BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 3))) },
    grad: true
  })
}

/** The call's outputs on the event loop: what every other way of running it must give. */
async function expected (call: PreparedCall): Promise<KernelTensors> {
  const ex = new InProcessExecutor(new SessionCache(settings))
  try { return await ex.run(kernelKey(call), () => buildModel(call), buildFeeds(call)) } finally { await ex.close() }
}

async function pool (t: Test, options: WorkerPoolOptions = {}): Promise<WorkerPool> {
  const p = new WorkerPool({ short: 1, long: 0 }, settings, 8, options)
  t.teardown(async () => { await p.close() })
  while (p.available() === 0) await new Promise(resolve => setTimeout(resolve, 10))
  return p
}

const values = (out: KernelTensors): Record<string, number[]> => Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array)]))

t.test('onnxruntime-node refuses arrays over a SharedArrayBuffer: toOrt copies them into memory of their own', async t => {
  const call = crossEntropy()
  const session = await ort.InferenceSession.create(buildModel(call))
  t.teardown(async () => { await session.release() })
  const shared: KernelTensors = {}
  for (const [name, f] of Object.entries(buildFeeds(call))) {
    const Arr = f.data.constructor as new (b: SharedArrayBuffer) => typeof f.data
    const data = new Arr(new SharedArrayBuffer(f.data.byteLength))
    ;(data as Float32Array).set(f.data as Float32Array)
    shared[name] = { type: f.type, dims: f.dims, data }
  }
  const raw: Record<string, ort.Tensor> = {}
  for (const [name, f] of Object.entries(shared)) raw[name] = new ort.Tensor(f.type, f.data, f.dims)
  await t.rejects(session.run(raw), /Invalid argument/, 'ORT itself refuses them')
  const fed = toOrt(shared)
  t.notOk(Object.values(fed).some(f => (f.data as Float32Array).buffer instanceof SharedArrayBuffer), 'toOrt gave ORT plain copies')
  t.same(values(fromOrt(await session.run(fed))), values(await expected(call)))
})

t.test('a real worker: the arguments move to it (and stay there after a success), and the answer is the event loop\'s', async t => {
  const call = crossEntropy()
  const input = Array.from(call.args.input.data as Float32Array)
  const want = values(await expected(call))
  const p = await pool(t)
  const feeds = (): KernelTensors => buildFeeds(call)
  const fed = feeds()
  t.equal(fed.input.source, call.args.input, 'base64 float32 logits are lent as they are')
  const running = p.run(kernelKey(call), () => buildModel(call), fed, { cost: runCost([call]), rebuild: feeds })
  t.equal(call.args.input.data.length, 0, 'moved to the worker (transferred, not copied)')
  const out = await running
  t.same(values(out), want)
  t.equal(call.args.input.data.length, 0, 'not handed back after a success: nothing reads it again')
  t.ok(input.length > 0)
  const [worker] = p.stats().workers
  t.equal(worker.name, 'short-0')
  t.equal(worker.sessions, 1, 'the worker tells its sessions with its answer')
  t.ok((worker.heapUsedBytes ?? 0) > 0 && (worker.heapTotalBytes ?? 0) >= (worker.heapUsedBytes ?? 0), 'and its heap')
})

t.test('feeds over a SharedArrayBuffer are shared with a worker, which copies them for ORT', async t => {
  const call = crossEntropy()
  const p = await pool(t)
  const feeds = buildFeeds(call)
  for (const f of Object.values(feeds)) {
    const Arr = f.data.constructor as new (b: SharedArrayBuffer) => typeof f.data
    const data = new Arr(new SharedArrayBuffer(f.data.byteLength))
    ;(data as Float32Array).set(f.data as Float32Array)
    f.data = data
    delete f.source
  }
  const running = p.run(kernelKey(call), () => buildModel(call), feeds)
  t.ok(Object.values(feeds).every(f => f.data.length > 0), 'nothing moved: still readable here')
  t.same(values(await running), values(await expected(call)))
})

t.test('a wide session (two intra-op threads) answers as the ordinary one; each is built once', async t => {
  const queue = { queued: 0 }
  const p = await pool(t, { wide: { threads: 2, elements: 1, freeCores: () => 2 }, queued: () => queue.queued })
  // a fresh call each time: a call's arguments stay with the worker that ran it
  const run = async (): Promise<KernelTensors> => {
    const call = crossEntropy(64)
    return await p.run(kernelKey(call), () => buildModel(call), buildFeeds(call), { cost: runCost([call]) })
  }
  const want = values(await expected(crossEntropy(64)))
  const wide = values(await run())
  t.equal(p.stats().workers[0].sessions, 1, 'only the wide session so far')
  queue.queued = 1
  const narrow = values(await run())
  t.equal(p.stats().workers[0].sessions, 2, 'and now the ordinary one')
  // more threads may sum in another order: equal to float32 rounding
  for (const [name, got] of Object.entries({ wide, narrow })) {
    for (const k of Object.keys(want)) {
      const worst = Math.max(...got[k].map((v, i) => Math.abs(v - want[k][i]) / Math.max(1, Math.abs(want[k][i]))))
      t.ok(got[k].length === want[k].length && worst <= 1e-6, `${name} ${k}: within 1e-6 (${worst})`)
    }
  }
})

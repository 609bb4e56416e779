import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { build, postLoss } from '../helpers/app'
import { KEPT_BODY_BYTES, SHARED_BODY_BYTES, SMALLEST_KEPT_BODY, giveKeptMemory, giveMemory, keptCopy, keptMemoryBytes, letGoWhenIdle, takeKeptMemory, takeMemory } from '../../src/http/body-memory'

t.test('JSON bodies and binary bodies keep memory in pools of their own', async t => {
  const a = takeMemory(SMALLEST_KEPT_BODY)
  t.type(a, ArrayBuffer)
  giveMemory(a)
  t.same(keptMemoryBytes(), { local: SMALLEST_KEPT_BODY, shared: 0, sharedInUse: 0 })
  t.equal(takeMemory(SMALLEST_KEPT_BODY), a)
  const small = takeKeptMemory(SMALLEST_KEPT_BODY - 1)
  t.type(small, ArrayBuffer, 'a small binary body has memory of its own, which moves to a kernel worker')
  giveKeptMemory(small)
  t.same(keptMemoryBytes(), { local: 0, shared: 0, sharedInUse: 0 }, 'and is left to the garbage collector')
  const large = takeKeptMemory(SMALLEST_KEPT_BODY)
  t.type(large, SharedArrayBuffer, 'a large one is read into shared memory, which a kernel worker reads in place')
  t.same(keptMemoryBytes(), { local: 0, shared: 0, sharedInUse: SMALLEST_KEPT_BODY })
  giveKeptMemory(large)
  t.same(keptMemoryBytes(), { local: 0, shared: SMALLEST_KEPT_BODY, sharedInUse: 0 })
  t.equal(takeKeptMemory(SMALLEST_KEPT_BODY), large, 'and is reused')
  giveKeptMemory(large)
  t.equal(KEPT_BODY_BYTES, 32 * 2 ** 20)
  t.equal(SHARED_BODY_BYTES, 3 * KEPT_BODY_BYTES, 'shared memory: the decoded tensors of BODIES_IN_PROGRESS_MB (32 MiB) of bodies')
})

t.test('shared memory stays within its budget: past it, memory of its own; idle buffers of another size make room', async t => {
  const half = SHARED_BODY_BYTES / 2
  const [a, b] = [takeKeptMemory(half), takeKeptMemory(half)]
  t.same([a, b].map(m => m instanceof SharedArrayBuffer), [true, true])
  const over = takeKeptMemory(SMALLEST_KEPT_BODY)
  t.type(over, ArrayBuffer, 'the budget is in use: memory of its own')
  giveKeptMemory(a)
  giveKeptMemory(b)
  t.equal(takeKeptMemory(half), b, 'given back, a buffer serves the next body of its size: the latest given')
  giveKeptMemory(b)
  // a size no kept buffer fits: the idle ones are forgotten to make room, not kept beside it
  const other = takeKeptMemory(half + 8)
  t.type(other, SharedArrayBuffer)
  t.same(keptMemoryBytes(), { local: 0, shared: 0, sharedInUse: half + 8 })
  giveKeptMemory(other)
  t.same(keptMemoryBytes(), { local: 0, shared: half + 8, sharedInUse: 0 })
})

t.test('keptCopy puts large parts into shared memory, each 16-byte aligned, and leaves small ones as they are', async t => {
  const parts = [Buffer.alloc(3, 7), Buffer.alloc(SMALLEST_KEPT_BODY, 9), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9])]
  const copy = keptCopy(parts)
  t.same(copy.parts.map(p => p.buffer instanceof SharedArrayBuffer), [true, true, true])
  t.same(copy.parts.map(p => p.byteOffset), [0, 16, 16 + SMALLEST_KEPT_BODY])
  t.same(copy.parts, parts, 'the same bytes')
  t.not(copy.parts[1], parts[1])
  const before = keptMemoryBytes().shared
  copy.release()
  t.ok(keptMemoryBytes().shared > before, 'given back once released')
  const few = [Buffer.alloc(100, 1)]
  const none = keptCopy(few)
  t.equal(none.parts, few, 'too few bytes to be worth a copy')
  none.release()
})

t.test('bodies read into reused memory answer as their own: mse over large base64 bodies, one after another and at once', async t => {
  // on a kernel worker, requests waiting 100 ms for others: a large tensor's memory handed on
  // before its kernel ran would be overwritten by the next body's
  const app = await build(t, { maxEventLoopDelayMs: 0, kernelWorkers: 1, batchMaxDelayUs: 100_000, batchMaxElements: 10_000_000 })
  const n = 100_000 // 400 kB of float32 per tensor: bodies over the smallest kept size
  const body = (seed: number): { body: unknown, want: number } => {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * seed))
    const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i + seed))
    let sum = 0
    for (let i = 0; i < n; i++) sum += (x[i] - y[i]) ** 2
    const b64 = (a: Float32Array): unknown => ({ dtype: 'float32', shape: [n], data: Buffer.from(a.buffer).toString('base64') })
    return { body: { input: b64(x), target: b64(y) }, want: sum / n }
  }
  const cases = [1, 2, 3, 4, 5, 6].map(body)
  // a reduced loss comes back as a 0-d tensor in the request's form: base64 float32
  const lossOf = (r: { body: { loss: { data: string } } }): number => Buffer.from(r.body.loss.data, 'base64').readFloatLE(0)
  for (const [i, c] of cases.entries()) {
    const r = await postLoss(app, 'mse', c.body)
    t.equal(r.status, 200)
    t.ok(Math.abs(lossOf(r) - c.want) <= 1e-5 * c.want, `one after another: request ${i}`)
  }
  t.ok(keptMemoryBytes().shared > 0, 'the tensors\' memory is back in its pool once answered')
  // each sent while the ones before it wait for their kernel
  const together = await Promise.all(cases.map(async (c, i) => { await sleep(10 * i); return await postLoss(app, 'mse', c.body) }))
  together.forEach((r, i) => {
    t.equal(r.status, 200)
    t.ok(Math.abs(lossOf(r) - cases[i].want) <= 1e-5 * cases[i].want, `at once: request ${i} has its own answer`)
  })
})

t.test('nested bodies answer as their own: their float32 copies live in the request\'s reused memory until its kernel has run', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0, kernelWorkers: 1, batchMaxDelayUs: 100_000, batchMaxElements: 10_000_000 })
  const n = 40_000 // read as float64 (320 kB, shared memory), then copied to float32 (160 kB, memory of its own) for the kernel
  const m = 80_000 // 640 kB read, 320 kB copied: both in shared memory
  const body = (seed: number, size: number): { body: unknown, want: number } => {
    const x = Float32Array.from({ length: size }, (_, i) => Math.sin(i * seed))
    const y = Float32Array.from({ length: size }, (_, i) => Math.cos(i + seed))
    let sum = 0
    for (let i = 0; i < size; i++) sum += (x[i] - y[i]) ** 2
    return { body: { input: Array.from(x), target: Array.from(y) }, want: sum / size }
  }
  const cases = [1, 2, 3, 4, 5, 6].map(seed => body(seed, seed % 2 === 0 ? m : n))
  const before = keptMemoryBytes().sharedInUse
  // each sent while the ones before it wait for their kernel: a copy handed on before its
  // kernel ran would be overwritten by the next request's
  const together = await Promise.all(cases.map(async (c, i) => { await sleep(10 * i); return await postLoss(app, 'mse', c.body) }))
  together.forEach((r, i) => {
    t.equal(r.status, 200)
    t.ok(Math.abs(r.body.loss - cases[i].want) <= 1e-5 * cases[i].want, `request ${i} has its own answer: ${r.body.loss} against ${cases[i].want}`)
  })
  t.equal(keptMemoryBytes().sharedInUse, before, 'every copy is given back once answered')
})

t.test('nested bodies of POST /losses answer as their own: the float32 copies of their tensors live in the request\'s memory until the kernel has run', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0, kernelWorkers: 1, batchMaxDelayUs: 100_000, batchMaxElements: 10_000_000 })
  const n = 80_000 // 640 kB read as float64, 320 kB copied to float32 per tensor (the terms share the copies): shared memory
  const body = (seed: number): { body: unknown, want: number } => {
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * seed))
    const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i + seed))
    let squares = 0
    let absolutes = 0
    for (let i = 0; i < n; i++) {
      squares += (x[i] - y[i]) ** 2
      absolutes += Math.abs(x[i] - y[i])
    }
    const args = { input: 'x', target: 'y' }
    return {
      body: { tensors: { x: Array.from(x), y: Array.from(y) }, terms: [{ loss: 'mse', weight: 0.25, args }, { loss: 'l1', weight: 2, args }] },
      want: 0.25 * squares / n + 2 * absolutes / n
    }
  }
  const cases = [1, 2, 3, 4].map(body)
  const before = keptMemoryBytes().sharedInUse
  const together = await Promise.all(cases.map(async (c, i) => {
    await sleep(10 * i)
    const r = await app.inject({ method: 'POST', url: '/losses', payload: c.body as object })
    return { status: r.statusCode, body: r.json() }
  }))
  together.forEach((r, i) => {
    t.equal(r.status, 200)
    t.ok(Math.abs(r.body.total - cases[i].want) <= 1e-5 * cases[i].want, `request ${i} has its own total: ${r.body.total} against ${cases[i].want}`)
  })
  t.equal(keptMemoryBytes().sharedInUse, before, 'every copy is given back once answered')
})

t.test('a request refused after its tensors were decoded gives their memory back: by the schema (400), by the loss\'s checks, and over V2', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0 })
  const n = 100_000 // 400 kB of float32: decoded into shared memory
  const x = Buffer.from(Float32Array.from({ length: n }, (_, i) => i / n).buffer).toString('base64')
  const tensor = { dtype: 'float32', shape: [n], data: x }
  const before = keptMemoryBytes().sharedInUse
  for (let i = 0; i < 4; i++) {
    const schema = await postLoss(app, 'mse', { input: tensor, target: tensor, reduction: 'bogus' })
    t.equal(schema.status, 400, 'an unknown reduction: refused by the schema, before the handler')
    const check = await postLoss(app, 'mse', { input: tensor, target: { ...tensor, shape: [n / 2, 2] } })
    t.equal(check.status, 400, 'shapes that do not broadcast: refused by the loss\'s check')
    // V2's binary form: the body itself is the shared memory
    const header = Buffer.from(JSON.stringify({ id: 5, inputs: ['input', 'target'].map(name => ({ name, datatype: 'FP32', shape: [n], parameters: { binary_data_size: 4 * n } })) }))
    const raw = Buffer.from(x, 'base64')
    const v2 = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'inference-header-content-length': String(header.length) }, payload: Buffer.concat([header, raw, raw]) })
    t.equal(v2.statusCode, 400, `V2: a number for id, refused by the schema: ${v2.body}`)
  }
  t.equal(keptMemoryBytes().sharedInUse, before, 'no shared memory is held once they are answered')
})

t.test('a body that never completes gives its memory back: its stream fails', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0 })
  const n = 100_000
  const header = Buffer.from(JSON.stringify({ inputs: ['input', 'target'].map(name => ({ name, datatype: 'FP32', shape: [n], parameters: { binary_data_size: 4 * n } })) }))
  const payload = Buffer.concat([header, Buffer.alloc(8 * n)])
  const headers = { 'inference-header-content-length': String(header.length) }
  const before = keptMemoryBytes().sharedInUse
  for (const simulate of [{ end: true, split: false, error: true, close: false }, { end: true, split: true, error: true, close: false }]) {
    const r = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers, payload, simulate }).catch((err: Error) => err)
    t.ok(r instanceof Error || r.statusCode >= 400, `${JSON.stringify(simulate)}: not answered as a success`)
    t.equal(keptMemoryBytes().sharedInUse, before, `${JSON.stringify(simulate)}: no shared memory is held`)
  }
  const ok = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers, payload })
  t.equal(ok.statusCode, 200, 'and the next whole body is served')
})

// last in this file: from here on the module's pools let go when idle
t.test('letGoWhenIdle: after an idle spell both pools let their buffers go, and the shared budget no longer counts them', async t => {
  letGoWhenIdle(100)
  const a = takeMemory(SMALLEST_KEPT_BODY)
  const s = takeKeptMemory(SMALLEST_KEPT_BODY)
  t.type(s, SharedArrayBuffer)
  giveMemory(a)
  giveKeptMemory(s)
  const kept = keptMemoryBytes()
  t.ok(kept.local >= SMALLEST_KEPT_BODY && kept.shared >= SMALLEST_KEPT_BODY, `both kept at first: ${JSON.stringify(kept)}`)
  // used again within the spell: kept on
  await sleep(60)
  giveMemory(takeMemory(SMALLEST_KEPT_BODY))
  await sleep(60)
  t.ok(keptMemoryBytes().local >= SMALLEST_KEPT_BODY, 'a pool in use keeps its buffers')
  await sleep(300)
  t.same(keptMemoryBytes(), { local: 0, shared: 0, sharedInUse: 0 }, 'idle: both let go, none counted as in use')
  t.not(takeMemory(SMALLEST_KEPT_BODY), a, 'the next body gets fresh memory')
  // the whole shared budget is there again
  const whole = takeKeptMemory(SHARED_BODY_BYTES)
  t.type(whole, SharedArrayBuffer)
  giveKeptMemory(whole)
})

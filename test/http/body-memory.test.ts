import t from 'tap'
import { build, postLoss } from '../helpers/app'
import { KEPT_BODY_BYTES, SMALLEST_KEPT_BODY, giveMemory, keptMemoryBytes, takeMemory } from '../../src/http/body-memory'

t.test('memory given back is taken again by a body it fits (up to twice its size), within the bound', async t => {
  const a = takeMemory(SMALLEST_KEPT_BODY)
  giveMemory(a)
  t.equal(keptMemoryBytes(), SMALLEST_KEPT_BODY)
  t.not(takeMemory(SMALLEST_KEPT_BODY + 1), a, 'not for a larger body')
  t.not(takeMemory(SMALLEST_KEPT_BODY / 2 - 1), a, 'not for a body under half its size (nor under the smallest kept size)')
  t.equal(takeMemory(SMALLEST_KEPT_BODY), a, 'the same memory for a body it fits')
  t.equal(keptMemoryBytes(), 0, 'and it is no longer kept')
  giveMemory(new ArrayBuffer(SMALLEST_KEPT_BODY - 1))
  t.equal(keptMemoryBytes(), 0, 'small memory is not kept')
  const big = new ArrayBuffer(KEPT_BODY_BYTES)
  giveMemory(big)
  giveMemory(new ArrayBuffer(SMALLEST_KEPT_BODY))
  t.equal(keptMemoryBytes(), KEPT_BODY_BYTES, 'nothing past the bound')
  t.equal(takeMemory(KEPT_BODY_BYTES), big)
})

t.test('bodies read into reused memory answer as their own: mse over large base64 bodies, one after another and at once', async t => {
  const app = await build(t)
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
  const together = await Promise.all(cases.map(async c => await postLoss(app, 'mse', c.body)))
  together.forEach((r, i) => {
    t.equal(r.status, 200)
    t.ok(Math.abs(lossOf(r) - cases[i].want) <= 1e-5 * cases[i].want, `at once: request ${i} has its own answer`)
  })
})

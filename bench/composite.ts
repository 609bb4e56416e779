/**
 * A composite against its terms one by one (npm run bench:composite): bce_with_logits + binary
 * dice, half and half, with gradients, on [8,1,256,256] logits and mask in base64, at
 * concurrency 1. One `POST /losses` against `POST /loss/bce_with_logits` then
 * `POST /loss/dice`, taking turns; prints each one's latency, the ratio (the goal: the
 * composite at least 1.6x faster), and checks that the composite's gradient is the weighted
 * sum of the two singles' within the API's float32 tolerance.
 */
import os from 'node:os'
import { startServer } from './server'

const shape = [8, 1, 256, 256]
const n = shape.reduce((a, b) => a * b, 1)
const rounds = Number(process.env.BENCH_ROUNDS ?? 15)

/** Deterministic pseudo-random floats (no seeding API in Math.random). */
function lcg (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32 }
}

const rand = lcg(7)
const logits = Float32Array.from({ length: n }, () => (rand() + rand() + rand() - 1.5) * 3)
const mask = Float32Array.from({ length: n }, () => (rand() < 0.3 ? 1 : 0))
const b64 = (a: Float32Array): { dtype: 'float32', shape: number[], data: string } => ({ dtype: 'float32', shape, data: Buffer.from(a.buffer).toString('base64') })
const tensors = { logits: b64(logits), mask: b64(mask) }

const compositeBody = JSON.stringify({
  tensors,
  terms: [
    { loss: 'bce_with_logits', weight: 0.5, args: { input: 'logits', target: 'mask' } },
    { loss: 'dice', weight: 0.5, args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' } }
  ],
  grad: true
})
const bceBody = JSON.stringify({ input: tensors.logits, target: tensors.mask, grad: true })
const diceBody = JSON.stringify({ input: tensors.logits, target: tensors.mask, mode: 'binary', grad: true })

async function post (url: string, body: string): Promise<any> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`)
  return await r.json()
}

const floats = (t: { data: string }): Float32Array => new Float32Array(new Uint8Array(Buffer.from(t.data, 'base64')).buffer)

async function timed<T> (work: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now()
  const out = await work()
  return [performance.now() - t0, out]
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main (): Promise<void> {
  const server = await startServer({ WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
  try {
    const composite = async (): Promise<any> => await post(`${server.url}/losses`, compositeBody)
    const singles = async (): Promise<[any, any]> => [await post(`${server.url}/loss/bce_with_logits`, bceBody), await post(`${server.url}/loss/dice`, diceBody)]
    for (let i = 0; i < 2; i++) { await composite(); await singles() } // kernels built, caches warm

    const times = { composite: [] as number[], singles: [] as number[] }
    let last: { composite?: any, singles?: [any, any] } = {}
    for (let i = 0; i < rounds; i++) {
      const [tc, c] = await timed(composite)
      const [ts, s] = await timed(singles)
      times.composite.push(tc)
      times.singles.push(ts)
      last = { composite: c, singles: s }
    }

    // the composite's gradient against 0.5 * (bce's + dice's), allclose at 1e-4 relative, 1e-5 absolute
    const g = floats(last.composite.grad.logits)
    const gb = floats(last.singles![0].grad.input)
    const gd = floats(last.singles![1].grad.input)
    let worst = 0
    let bad = 0
    for (let i = 0; i < n; i++) {
      const want = 0.5 * gb[i] + 0.5 * gd[i]
      const err = Math.abs(g[i] - want)
      worst = Math.max(worst, err)
      if (err > 1e-5 + 1e-4 * Math.abs(want)) bad++
    }
    // a single's reduced loss comes back as a 0-d tensor in the request's form (base64)
    const lossOf = (r: { loss: { data: string } }): number => floats(r.loss)[0]
    const totalErr = Math.abs(last.composite.total - (0.5 * lossOf(last.singles![0]) + 0.5 * lossOf(last.singles![1])))

    const mc = median(times.composite)
    const ms = median(times.singles)
    console.log(`${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, Node ${process.version}; ${rounds} rounds each, taking turns, concurrency 1`)
    console.log(`bce_with_logits + dice (binary), grad, logits and mask [${shape.join(',')}] float32 base64 (${(compositeBody.length / 2 ** 20).toFixed(1)} MiB composite body)`)
    console.log('| call | median ms | mean ms |')
    console.log('|---|---:|---:|')
    const mean = (xs: number[]): string => (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1)
    console.log(`| POST /losses (both terms) | ${mc.toFixed(1)} | ${mean(times.composite)} |`)
    console.log(`| POST /loss/bce_with_logits, then /loss/dice | ${ms.toFixed(1)} | ${mean(times.singles)} |`)
    console.log(`ratio (singles / composite, medians): ${(ms / mc).toFixed(2)}x (goal: >= 1.6x)`)
    console.log(`gradient vs 0.5 * (bce + dice): ${bad === 0 ? 'matches' : `${bad} elements out of tolerance`} (max |diff| ${worst.toExponential(2)}); total |diff| ${totalErr.toExponential(2)}`)
    if (bad > 0) process.exitCode = 1
  } finally {
    await server.stop()
  }
}

main().catch(err => { console.error(err); process.exit(1) })

/**
 * Where kernels run (npm run bench:event-loop): the same heavy load with ONNX Runtime on the
 * HTTP event loop (KERNEL_WORKERS=0) and on a kernel worker thread (KERNEL_WORKERS=1). While
 * a kernel-heavy request (multilabel_margin [64,500] with gradients) runs at concurrency 8, a
 * probe in another process measures how long GET /healthz takes: the time any other request
 * waits behind a running kernel.
 */
import { spawn } from 'node:child_process'
import autocannon from 'autocannon'
import { startServer } from './server'

const b64 = (a: Float32Array | BigInt64Array): string => Buffer.from(a.buffer).toString('base64')
// kernel-heavy, payload-light: multilabel_margin compares every listed class with every class
// (N*C*C = 16M terms for [64,500]); its body is 0.3 MB
const n = 64
const c = 500
const loss = 'multilabel_margin'
const body = JSON.stringify({
  input: { dtype: 'float32', shape: [n, c], data: b64(Float32Array.from({ length: n * c }, (_, i) => Math.sin(i))) },
  target: { dtype: 'int64', shape: [n, c], data: b64(BigInt64Array.from({ length: n * c }, (_, i) => (i % c < 100 ? BigInt((i * 7) % c) : -1n))) },
  grad: true
})
const seconds = Number(process.env.BENCH_SECONDS ?? 4)

/** GET /healthz every 10 ms from a separate process (the load generator's own event loop is busy). */
async function probe (url: string, ms: number): Promise<number[]> {
  const script = `const end = Date.now() + ${ms}; const t = [];
(async () => { while (Date.now() < end) { const t0 = performance.now(); await fetch('${url}/healthz'); t.push(performance.now() - t0); await new Promise(r => setTimeout(r, 10)) }
process.stdout.write(JSON.stringify(t)) })()`
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  await new Promise(resolve => child.once('exit', resolve))
  return (JSON.parse(out) as number[]).sort((a, b) => a - b)
}

const q = (xs: number[], p: number): string => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))].toFixed(1)

async function main (): Promise<void> {
  console.log('| kernels | heavy req/s | /healthz p50 ms | /healthz p99 ms | /healthz max ms |')
  console.log('|---|---:|---:|---:|---:|')
  for (const workers of ['0', '1']) {
    const server = await startServer({ KERNEL_WORKERS: workers, WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
    await autocannon({ url: `${server.url}/loss/${loss}`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 2, duration: 1 })
    const load = autocannon({ url: `${server.url}/loss/${loss}`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 8, duration: seconds })
    const probes = await probe(server.url, seconds * 1000 - 200)
    const r = await load
    console.log(`| ${workers === '0' ? 'on the event loop' : 'worker thread'} | ${r.requests.average.toFixed(0)} | ${q(probes, 0.5)} | ${q(probes, 0.99)} | ${probes[probes.length - 1].toFixed(1)} |`)
    await server.stop()
  }
}

main().catch(err => { console.error(err); process.exit(1) })

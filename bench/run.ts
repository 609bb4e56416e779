/**
 * Load benchmark of the dynamic batcher (npm run bench): every workload at each concurrency,
 * batching on and off in the same run, against the built server on loopback (autocannon).
 * Flags: BENCH_SECONDS (default 3, per measurement; each cell measures each mode twice),
 * BENCH_CONCURRENCY (default "1,16,64,256").
 */
import os from 'node:os'
import autocannon from 'autocannon'
import { startServer } from './server'
import { WORKLOADS } from './workloads'

const seconds = Number(process.env.BENCH_SECONDS ?? 3)
const levels = (process.env.BENCH_CONCURRENCY ?? '1,16,64,256').split(',').map(Number)
const modes = { on: {}, off: { BATCH_MAX_SIZE: '1' } } as const

interface Cell { rps: number, mean: number, p50: number, p99: number, errors: number }

async function measure (url: string, loss: string, body: string, connections: number): Promise<Cell> {
  const r = await autocannon({ url: `${url}/loss/${loss}`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections, duration: seconds })
  return { rps: r.requests.average, mean: r.latency.mean, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx }
}

function mean (a: Cell, b: Cell): Cell {
  return { rps: (a.rps + b.rps) / 2, mean: (a.mean + b.mean) / 2, p50: (a.p50 + b.p50) / 2, p99: (a.p99 + b.p99) / 2, errors: a.errors + b.errors }
}

async function main (): Promise<void> {
  console.log(`# losshub batching benchmark\n\n${os.cpus()[0].model} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; 2 × ${seconds}s per mode and cell, interleaved off/on/on/off\n`)
  // both servers run side by side and every cell alternates off/on, so drift in the
  // machine's speed (it is shared and noisy) hits both modes alike
  const servers = { on: await startServer(modes.on), off: await startServer(modes.off) }
  console.log('| workload | conc. | req/s on | req/s off | ratio | mean ms on | mean ms off | p50 ms on | p50 ms off | p99 ms on | p99 ms off | errors |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const w of WORKLOADS) {
    for (const s of Object.values(servers)) await measure(s.url, w.loss, w.body, 4) // load this workload's kernels
    for (const c of levels) {
      // off, on, on, off: each mode is measured first once, so neither gains from going second
      const off1 = await measure(servers.off.url, w.loss, w.body, c)
      const on1 = await measure(servers.on.url, w.loss, w.body, c)
      const on = mean(on1, await measure(servers.on.url, w.loss, w.body, c))
      const off = mean(off1, await measure(servers.off.url, w.loss, w.body, c))
      console.log(`| ${w.name} | ${c} | ${on.rps.toFixed(0)} | ${off.rps.toFixed(0)} | ${(on.rps / off.rps).toFixed(2)} | ${on.mean.toFixed(2)} | ${off.mean.toFixed(2)} | ${on.p50} | ${off.p50} | ${on.p99} | ${off.p99} | ${on.errors + off.errors} |`)
    }
  }
  await Promise.all(Object.values(servers).map(async s => await s.stop()))
}

main().catch(err => { console.error(err); process.exit(1) })

/**
 * Load benchmark of the dynamic batcher (npm run bench): every workload at each concurrency,
 * batching on and off in the same run, against the built server on loopback (autocannon).
 * Flags: BENCH_SECONDS (default 3), BENCH_CONCURRENCY (default "1,16,64,256").
 */
import os from 'node:os'
import autocannon from 'autocannon'
import { startServer } from './server'
import { WORKLOADS } from './workloads'

const seconds = Number(process.env.BENCH_SECONDS ?? 3)
const levels = (process.env.BENCH_CONCURRENCY ?? '1,16,64,256').split(',').map(Number)
const modes = { on: {}, off: { BATCH_MAX_SIZE: '1' } } as const

interface Cell { rps: number, p50: number, p99: number, errors: number }

async function measure (url: string, loss: string, body: string, connections: number): Promise<Cell> {
  const r = await autocannon({ url: `${url}/loss/${loss}`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections, duration: seconds })
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx }
}

async function main (): Promise<void> {
  console.log(`# losshub batching benchmark\n\n${os.cpus()[0].model} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; ${seconds}s per cell\n`)
  const results = new Map<string, Cell>()
  for (const [mode, env] of Object.entries(modes)) {
    const server = await startServer(env)
    for (const w of WORKLOADS) {
      await measure(server.url, w.loss, w.body, 4) // warm the kernels of this workload
      for (const c of levels) results.set(`${mode}|${w.name}|${c}`, await measure(server.url, w.loss, w.body, c))
    }
    await server.stop()
  }
  console.log('| workload | conc. | req/s on | req/s off | ratio | p50 ms on | p50 ms off | p99 ms on | p99 ms off | errors |')
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const w of WORKLOADS) {
    for (const c of levels) {
      const on = results.get(`on|${w.name}|${c}`) as Cell
      const off = results.get(`off|${w.name}|${c}`) as Cell
      console.log(`| ${w.name} | ${c} | ${on.rps.toFixed(0)} | ${off.rps.toFixed(0)} | ${(on.rps / off.rps).toFixed(2)} | ${on.p50} | ${off.p50} | ${on.p99} | ${off.p99} | ${on.errors + off.errors} |`)
    }
  }
}

main().catch(err => { console.error(err); process.exit(1) })

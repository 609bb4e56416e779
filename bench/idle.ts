/**
 * Throughput before and after idle spells (npm run bench:idle): one process (`WORKERS=1`),
 * cross_entropy [256,1000] base64 at concurrency 64 in 1 s wrk runs (autocannon without wrk),
 * six before an idle spell of KEPT_IDLE_MS + 2.5 s and six after it, twice; the same with the event loop's
 * memory let go after KEPT_IDLE_MS (20 s) idle and collected (src/http/body-memory.ts, where the heap
 * has its floor: src/heap.ts), on glibc and on jemalloc (as ALLOCATOR preloads it into cluster
 * workers), and with no floor, the memory kept for good. Also the process's resident set after
 * each spell. The servers run one at a time; compare within a run.
 */
import autocannon from 'autocannon'
import { hasTool, wrkPost } from './native-load'
import { residentMiB, startServer } from './server'
import { WORKLOADS, type Workload } from './workloads'
import { workerAllocator } from '../src/allocator'
import { OLD_SPACE_FLOOR } from '../src/heap'
import { KEPT_IDLE_MS } from '../src/tensor/release-memory'

// longer than KEPT_IDLE_MS, so that each spell lets the pools go
const SPELL_MS = KEPT_IDLE_MS + 2500
const RUNS = 6

const payload = (WORKLOADS.find(w => w.name === 'cross_entropy [256,1000] base64') as Workload).body
const wrk = hasTool('wrk')

async function rate (url: string): Promise<number> {
  const headers = { 'content-type': 'application/json' }
  if (wrk) return (await wrkPost(url, payload, headers, 64, 1)).rps
  const r = await autocannon({ url, method: 'POST', headers, body: payload, connections: 64, duration: 1 })
  return r.requests.average
}

async function main (): Promise<void> {
  const jemalloc = workerAllocator('jemalloc', process.env)
  const variants: Array<[string, string[], Record<string, string>]> = [
    ['heap floor (`--initial-old-space-size=64`): memory let go when idle, then collected; glibc', [OLD_SPACE_FLOOR], {}],
    [`the same on ${jemalloc.name}`, [OLD_SPACE_FLOOR], jemalloc.env],
    ['no floor: memory kept for good; glibc', [], {}]
  ]
  console.log(`# Requests a second before and after idle spells\n\ncross_entropy [256,1000] base64, concurrency 64, ${wrk ? 'wrk' : 'autocannon'} (1 s runs, on the same cores), one process (WORKERS=1); ${SPELL_MS / 1000} s idle between groups of ${RUNS}.\n`)
  console.log('| server | first load | after spell 1 | after spell 2 | resident MiB after spells 1, 2 |')
  console.log('|---|---|---|---|---:|')
  for (const [name, flags, env] of variants) {
    const server = await startServer({ WORKERS: '1', ...env }, flags)
    const url = `${server.url}/loss/cross_entropy`
    try {
      const groups: number[][] = []
      const resident: number[] = []
      for (let g = 0; g < 3; g++) {
        const rates: number[] = []
        for (let i = 0; i < RUNS; i++) rates.push(await rate(url))
        groups.push(rates)
        if (g < 2) {
          await new Promise(resolve => setTimeout(resolve, SPELL_MS))
          resident.push(residentMiB(server.pid))
        }
      }
      console.log(`| ${name} | ${groups.map(g => g.map(r => r.toFixed(0)).join(' ')).join(' | ')} | ${resident.map(r => r.toFixed(0)).join(', ')} |`)
    } finally {
      await server.stop()
    }
  }
}

main().catch(err => { console.error(err); process.exit(1) })

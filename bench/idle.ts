/**
 * Throughput before and after idle spells (npm run bench:idle): one process (`WORKERS=1`),
 * cross_entropy [256,1000] base64 at concurrency 64 in 1 s wrk runs (autocannon without wrk),
 * six before an idle spell of 12.5 s and six after it, twice; the same with the event loop's
 * memory let go after 10 idle seconds and collected (src/http/body-memory.ts, where the heap
 * has its floor: src/heap.ts), on glibc and on jemalloc (as ALLOCATOR preloads it into cluster
 * workers), and with no floor, the memory kept for good. Also the process's resident set after
 * each spell. The servers run one at a time; compare within a run.
 */
import fs from 'node:fs'
import autocannon from 'autocannon'
import { hasTool, wrkPost } from './native-load'
import { startServer } from './server'
import { workerAllocator } from '../src/allocator'
import { OLD_SPACE_FLOOR } from '../src/heap'
import { KEPT_IDLE_MS } from '../src/tensor/release-memory'

// longer than KEPT_IDLE_MS, so that each spell lets the pools go
const SPELL_MS = KEPT_IDLE_MS + 2500
const RUNS = 6

function lcg (seed: number): () => number {
  let s = seed
  return () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 }
}

function body (n: number, c: number): string {
  const rand = lcg(11)
  const x = Float32Array.from({ length: n * c }, () => Math.round((rand() * 4 - 2) * 1e4) / 1e4)
  const target = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rand() * c)))
  const b64 = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')
  return JSON.stringify({ input: { dtype: 'float32', shape: [n, c], data: b64(x) }, target: { dtype: 'int64', shape: [n], data: b64(target) } })
}

async function rate (url: string, payload: string): Promise<number> {
  const headers = { 'content-type': 'application/json' }
  if (hasTool('wrk')) return (await wrkPost(url, payload, headers, 64, 1)).rps
  const r = await autocannon({ url, method: 'POST', headers, body: payload, connections: 64, duration: 1 })
  return r.requests.average
}

const residentMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024

async function main (): Promise<void> {
  const payload = body(256, 1000)
  const jemalloc = workerAllocator('jemalloc', process.env)
  const variants: Array<[string, string[], Record<string, string>]> = [
    ['heap floor (`--initial-old-space-size=64`): memory let go when idle, then collected; glibc', [OLD_SPACE_FLOOR], {}],
    [`the same on ${jemalloc.name}`, [OLD_SPACE_FLOOR], jemalloc.env],
    ['no floor: memory kept for good; glibc', [], {}]
  ]
  console.log(`# Requests a second before and after idle spells\n\ncross_entropy [256,1000] base64, concurrency 64, ${hasTool('wrk') ? 'wrk' : 'autocannon'} (1 s runs, on the same cores), one process (WORKERS=1); ${SPELL_MS / 1000} s idle between groups of ${RUNS}.\n`)
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
        for (let i = 0; i < RUNS; i++) rates.push(await rate(url, payload))
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

/**
 * losshub against the FastAPI + PyTorch peer (../shared/peer/, its README says how to install
 * it), side by side in one run (npm run bench:peer). Both run at their defaults (2 processes
 * each on this 2-core machine); every cell measures losshub, peer, peer, losshub, so drift in
 * the machine's speed hits both alike. The load generator shares the cores with the servers.
 * Every cell uses wrk when it is on PATH (a C generator: it leaves the servers more of the cores
 * and adds less to each request's latency; bench/native-load.ts). Otherwise, or with
 * BENCH_GENERATOR=autocannon, throughput cells use autocannon and concurrency-1 latency a
 * keep-alive loop timed with hrtime (autocannon's percentiles have 1 ms resolution). Flags:
 * BENCH_SECONDS (default 5), BENCH_GENERATOR (wrk or autocannon), PEER_DIR (default
 * ../shared/peer beside the repository).
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { freePort, residentMiB, startBare, startServer } from './server'
import { hasTool, wrkPost } from './native-load'
import { KEPT_IDLE_MS } from '../src/tensor/release-memory'

const seconds = Number(process.env.BENCH_SECONDS ?? 5)
const generator = process.env.BENCH_GENERATOR ?? (hasTool('wrk') ? 'wrk' : 'autocannon')
if (generator !== 'wrk' && generator !== 'autocannon') throw new Error(`BENCH_GENERATOR: expected wrk or autocannon, got '${generator}'`)
const peerDir = process.env.PEER_DIR ?? path.join(__dirname, '..', '..', '..', 'shared', 'peer')

let seed = 11
const rand = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
const values = (n: number): number[] => Array.from({ length: n }, () => Math.round((rand() * 4 - 2) * 1e4) / 1e4)
const indices = (n: number, c: number): number[] => Array.from({ length: n }, () => Math.floor(rand() * c))
const b64 = (a: Float32Array | BigInt64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')

function nested (n: number, c: number): string {
  const x = values(n * c)
  return JSON.stringify({ input: Array.from({ length: n }, (_, i) => x.slice(i * c, (i + 1) * c)), target: indices(n, c) })
}
function base64 (n: number, c: number): string {
  return JSON.stringify({
    input: { dtype: 'float32', shape: [n, c], data: b64(Float32Array.from(values(n * c))) },
    target: { dtype: 'int64', shape: [n], data: b64(BigInt64Array.from(indices(n, c), BigInt)) }
  })
}

/**
 * How long after the last cell the resident set is read again: the memory kept for large
 * requests (the event loop's bodies and tensors, the kernel workers' staging copies) is let go
 * after 20 s without them (KEPT_IDLE_MS, src/tensor/release-memory.ts), and jemalloc
 * (ALLOCATOR's default) hands its pages back a second later.
 */
const SETTLE_MS = KEPT_IDLE_MS + 3000

interface Workload { name: string, body: string, concurrency: number }
const small = nested(32, 10)
const mediumNested = nested(256, 1000)
const mediumBase64 = base64(256, 1000)
const WORKLOADS: Workload[] = [
  { name: 'cross_entropy [32,10] nested', body: small, concurrency: 64 },
  { name: 'cross_entropy [32,10] nested', body: small, concurrency: 1 },
  { name: 'cross_entropy [256,1000] nested', body: mediumNested, concurrency: 1 },
  { name: 'cross_entropy [256,1000] nested', body: mediumNested, concurrency: 64 },
  { name: 'cross_entropy [256,1000] base64', body: mediumBase64, concurrency: 1 },
  { name: 'cross_entropy [256,1000] base64', body: mediumBase64, concurrency: 64 },
  { name: 'cross_entropy [4096,1000] base64', body: base64(4096, 1000), concurrency: 1 }
]

interface Cell { rps: number, p50: number, p99: number, errors: number }

/** Throughput and latency at `connections`: wrk, or autocannon and (for one connection) a loop timed with hrtime. */
async function measure (url: string, body: string, connections: number): Promise<Cell> {
  if (generator === 'wrk') return await wrkPost(`${url}/loss/cross_entropy`, body, { 'content-type': 'application/json' }, connections, seconds)
  if (connections === 1) return await serial(url, body)
  const r = await autocannon({ url: `${url}/loss/cross_entropy`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections, duration: seconds })
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx }
}

async function serial (url: string, body: string): Promise<Cell> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const { hostname, port } = new URL(url)
  const payload = Buffer.from(body)
  const once = async (): Promise<number> => await new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path: '/loss/cross_entropy', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, res => {
      res.on('data', () => {})
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(payload)
  })
  const times: number[] = []
  let errors = 0
  const until = performance.now() + seconds * 1000
  while (performance.now() < until) {
    const t0 = process.hrtime.bigint()
    if (await once() !== 200) errors++
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  agent.destroy()
  times.sort((a, b) => a - b)
  const q = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))]
  return { rps: times.length / seconds, p50: q(0.5), p99: q(0.99), errors }
}

function mean (a: Cell, b: Cell): Cell {
  return { rps: (a.rps + b.rps) / 2, p50: (a.p50 + b.p50) / 2, p99: (a.p99 + b.p99) / 2, errors: a.errors + b.errors }
}

/** Resident set (MiB) of a process and each of its children (cluster workers). */
function residentSets (pid: number): number[] {
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(s => s !== '').map(Number)
  return [pid, ...children].map(residentMiB)
}

async function main (): Promise<void> {
  const script = path.join(peerDir, 'peer.sh')
  if (!fs.existsSync(script)) throw new Error(`no peer at ${peerDir} (set PEER_DIR)`)
  const peerPort = await freePort()
  execFileSync('bash', [script, 'start', String(peerPort), '2'], { stdio: 'inherit' })
  const peer = `http://127.0.0.1:${peerPort}`
  const losshub = await startServer({})
  try {
    const cpus = os.cpus()
    console.log(`# losshub vs the FastAPI + PyTorch peer\n\n${cpus[0].model} × ${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}. Both at their defaults (2 processes each); the load generator runs on the same cores. ${seconds} s per measurement, 2 per server and cell (losshub, peer, peer, losshub). ${generator === 'wrk' ? 'Every cell: wrk (one thread).' : 'Concurrency 1: a keep-alive loop timed with hrtime; higher: autocannon.'}\n`)
    console.log('| workload | conc. | losshub req/s | peer req/s | losshub / peer | losshub p50 ms | peer p50 ms | p50 ratio | losshub p99 ms | peer p99 ms | errors (losshub, peer) |')
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const w of WORKLOADS) {
      await measure(losshub.url, w.body, 4) // warm both: kernels loaded, JITs hot
      await measure(peer, w.body, 4)
      const l1 = await measure(losshub.url, w.body, w.concurrency)
      const p = mean(await measure(peer, w.body, w.concurrency), await measure(peer, w.body, w.concurrency))
      const l = mean(l1, await measure(losshub.url, w.body, w.concurrency))
      const f = (v: number): string => v < 10 ? v.toFixed(3) : v.toFixed(1)
      console.log(`| ${w.name} | ${w.concurrency} | ${l.rps.toFixed(1)} | ${p.rps.toFixed(1)} | ${(l.rps / p.rps).toFixed(2)} | ${f(l.p50)} | ${f(p.p50)} | ${(l.p50 / p.p50).toFixed(2)} | ${f(l.p99)} | ${f(p.p99)} | ${l.errors}, ${p.errors} |`)
    }
    const atOnce = residentSets(losshub.pid)
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    const settled = residentSets(losshub.pid)
    const mib = (sets: number[]): string => sets.map(v => v.toFixed(0)).join(', ')
    console.log(`\nResident set after the run (MiB; primary, workers): losshub ${mib(atOnce)} at the end of the last cell, ${mib(settled)} ${SETTLE_MS / 1000} s later`)
    // the floor under the small cells: no loss, only Fastify's request handling and JSON parsing
    const bare = await startBare()
    try {
      await measure(`http://127.0.0.1:${bare.fastify}`, small, 4)
      const floor = await measure(`http://127.0.0.1:${bare.fastify}`, small, 1)
      console.log(`\nFloor: a bare Fastify route (bench/bare-server.ts) that parses the [32,10] body with Fastify's own JSON parser and answers \`{"loss":0}\`, concurrency 1: p50 ${floor.p50.toFixed(3)} ms, ${floor.rps.toFixed(0)} req/s`)
    } finally {
      bare.stop()
    }
  } finally {
    await losshub.stop()
    execFileSync('bash', [script, 'stop', String(peerPort)], { stdio: 'inherit' })
  }
}

main().catch(err => { console.error(err); process.exit(1) })

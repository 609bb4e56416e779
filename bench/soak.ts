/**
 * Soak benchmark (npm run soak): the built server under mixed traffic for a while, at
 * concurrency 64: every loss's example in every tensor form (nested, typed flat, typed base64,
 * mixed), with and without gradients, and one request in ten a bad one (a fuzz mutant that
 * must get a 4xx). Prints, per minute, the requests, their status classes, p50/p99 latency and
 * the server's resident set; then the 5xx and the lost requests (sent, never answered).
 * Flags: `--minutes N` or SOAK_MINUTES (default 10), SOAK_CONCURRENCY (default 64).
 * A benchmark, not a test: it asserts nothing. Loopback only.
 */
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import fc from 'fast-check'
import { LOSSES } from '../src/losses'
import { exampleBody } from '../src/routes/loss'
import { type Form } from '../test/helpers/tensors'
import { bodyIn, readExample } from '../test/fuzz/forms'
import { FAMILIES, type Family } from '../test/fuzz/mutations'
import { serialize } from '../test/fuzz/wire'
import { startServer } from './server'

const minutes = Number(flag('--minutes') ?? process.env.SOAK_MINUTES ?? 10)
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 64)
// an answer later than this counts as lost (the request is abandoned)
const TIMEOUT_MS = 30000
// at most this many requests a second on average, whatever the machine: the loop is bounded in count too
const MAX_REQUESTS = Math.ceil(minutes * 60 * 20000)
const BAD_SHARE = 0.1
const FORMS: Form[] = ['nested', 'flat', 'base64']
const BAD_FAMILIES: Family[] = ['extra', 'wrongType', 'dims', 'values', 'dtype', 'badBase64', 'nesting', 'mixed']

function flag (name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

interface Req { loss: string, body: string, bad: boolean }

/** Every loss's example in each form and mixed, with and without grad; and mutants that must be refused. */
function requestPool (): { good: Req[], bad: Req[] } {
  const good: Req[] = []
  const bad: Req[] = []
  for (const def of LOSSES) {
    const ex = readExample(def, exampleBody(def))
    const names = Object.keys(ex.tensors)
    const layouts: Array<(arg: string) => Form> = [...FORMS.map(f => () => f), arg => FORMS[names.indexOf(arg) % 3]]
    for (const formOf of layouts) {
      for (const grad of [false, true]) good.push({ loss: def.name, body: JSON.stringify({ ...bodyIn(ex, formOf), grad }), bad: false })
    }
    for (const family of BAD_FAMILIES) {
      for (const m of fc.sample(FAMILIES[family](ex), { seed: 42, numRuns: 8 })) {
        if (m.expect === 'reject') bad.push({ loss: def.name, body: serialize(m.body), bad: true })
      }
    }
  }
  return { good, bad }
}

/** The resident set of a process and all its descendants (cluster workers), in MiB (Linux /proc). */
function treeRssMb (root: number): number {
  const children = new Map<number, number[]>()
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {} // the process ended meanwhile
  }
  let kb = 0
  const visit = (pid: number): void => {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
      kb += Number(m?.[1] ?? 0)
    } catch {}
    for (const c of children.get(pid) ?? []) visit(c)
  }
  visit(root)
  return kb / 1024
}

interface Minute { sent: number, answered: number, ok: number, c4xx: number, c5xx: number, c503: number, lost: number, unexpected: number, ms: number[], rss: number[] }
const newMinute = (): Minute => ({ sent: 0, answered: 0, ok: 0, c4xx: 0, c5xx: 0, c503: 0, lost: 0, unexpected: 0, ms: [], rss: [] })

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]
}

async function main (): Promise<void> {
  const { good, bad } = requestPool()
  console.log(`# losshub soak\n\n${os.cpus()[0].model} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}; ` +
    `${minutes} min at concurrency ${concurrency}; ${good.length} good requests (35 losses × 4 form layouts × grad on/off), ${bad.length} bad ones (${BAD_SHARE * 100}% of the traffic)\n`)
  const server = await startServer({})
  const pid = server.pid
  const { port } = new URL(server.url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const start = performance.now()
  const end = start + minutes * 60000
  const stats: Minute[] = []
  const minuteOf = (t: number): Minute => (stats[Math.floor((t - start) / 60000)] ??= newMinute())
  const rssTimer = setInterval(() => minuteOf(Math.min(performance.now(), end - 1)).rss.push(treeRssMb(pid)), 1000)
  let seed = 1
  const random = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32 }
  let sent = 0
  const failures = new Map<string, { count: number, first: string }>()
  const noteFailure = (text: string): void => {
    let code = 'unparsed'
    let message = text.slice(0, 200)
    try { ({ code, message } = JSON.parse(text) as { code: string, message: string }) } catch {}
    const f = failures.get(code) ?? { count: 0, first: message }
    f.count++
    failures.set(code, f)
  }

  const send = async (r: Req): Promise<void> => {
    const t0 = performance.now()
    const m = minuteOf(t0)
    m.sent++
    const status = await new Promise<number>(resolve => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/loss/${r.loss}`, agent, headers: { 'content-type': 'application/json' } }, res => {
        const status = res.statusCode ?? 0
        // a 5xx's error code and message are kept (which code, and the first message of each)
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { if (status >= 500) chunks.push(c) })
        res.on('end', () => {
          if (status >= 500) noteFailure(Buffer.concat(chunks).toString())
          resolve(status)
        })
        res.on('error', () => resolve(0))
      })
      req.setTimeout(TIMEOUT_MS, () => req.destroy())
      req.on('error', () => resolve(0))
      req.end(r.body)
    })
    // counted in the minute it was sent, so that a minute's columns add up
    if (status === 0) { m.lost++; return }
    m.answered++
    m.ms.push(performance.now() - t0)
    if (status === 200) m.ok++
    else if (status >= 500) { m.c5xx++; if (status === 503) m.c503++ } else if (status >= 400) m.c4xx++
    if (r.bad ? status === 200 || status >= 500 : status !== 200) m.unexpected++
  }
  const loop = async (): Promise<void> => {
    while (performance.now() < end && sent < MAX_REQUESTS) {
      sent++
      const pool = random() < BAD_SHARE ? bad : good
      await send(pool[Math.floor(random() * pool.length)])
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  clearInterval(rssTimer)
  const rssAfter = treeRssMb(pid)
  agent.destroy()
  await server.stop()

  console.log('| minute | sent | req/s | 200 | 4xx | 5xx (503) | lost | unexpected | p50 ms | p99 ms | RSS MiB end | RSS MiB max |')
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const total = newMinute()
  stats.forEach((m, i) => {
    const ms = m.ms.sort((a, b) => a - b)
    const span = Math.min(60000, end - (start + i * 60000)) / 1000
    console.log(`| ${i + 1} | ${m.sent} | ${(m.sent / span).toFixed(0)} | ${m.ok} | ${m.c4xx} | ${m.c5xx} (${m.c503}) | ${m.lost} | ${m.unexpected} | ` +
      `${percentile(ms, 0.5).toFixed(1)} | ${percentile(ms, 0.99).toFixed(1)} | ${Math.round(m.rss.at(-1) ?? NaN)} | ${Math.round(Math.max(...m.rss))} |`)
    for (const k of ['sent', 'answered', 'ok', 'c4xx', 'c5xx', 'c503', 'lost', 'unexpected'] as const) total[k] += m[k]
  })
  console.log(`\n${total.sent} requests sent, ${total.answered} answered: ${total.ok} × 200, ${total.c4xx} × 4xx, ${total.c5xx} × 5xx (${total.c503} of them 503). ` +
    `Lost (sent, never answered within ${TIMEOUT_MS / 1000} s): ${total.lost}. Unexpected (a good request not 200, a bad one 200 or 5xx): ${total.unexpected}. ` +
    `Server resident set at the end: ${Math.round(rssAfter)} MiB (process tree).`)
  for (const [code, f] of failures) console.log(`5xx ${code} × ${f.count}, first: ${f.first}`)
  console.log(`5xx: ${total.c5xx}\nlost: ${total.lost}`)
}

main().catch(err => { console.error(err); process.exit(1) })

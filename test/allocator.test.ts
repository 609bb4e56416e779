import { spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import http from 'node:http'
import t from 'tap'
import { JEMALLOC_CONF } from '../src/config'
import { jemallocCandidates, workerAllocator } from '../src/allocator'

const debian = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'

t.test('jemalloc: workers preload jemalloc where it is installed, with settings that hand memory back', async t => {
  const found = workerAllocator('jemalloc', {}, path => path === debian)
  t.same(found.env, { LD_PRELOAD: debian, MALLOC_CONF: JEMALLOC_CONF })
  t.match(JEMALLOC_CONF, /background_thread:true/, 'pages go back while the process is idle too')
  t.match(JEMALLOC_CONF, /oversize_threshold:0/, 'large kernels\' intermediates are reused, not faulted in afresh each run')
  t.same(workerAllocator('jemalloc', { MALLOC_CONF: 'narenas:2' }, path => path === debian).env.MALLOC_CONF, 'narenas:2', 'the operator\'s settings win')
})

t.test('jemalloc not installed, with a preload of the operator\'s, and system: the environment is left as it is', async t => {
  t.same(workerAllocator('jemalloc', {}, () => false), { name: 'glibc (no libjemalloc.so.2 installed)', env: {} })
  t.same(workerAllocator('jemalloc', { LD_PRELOAD: '/opt/tcmalloc.so' }, () => true).env, {})
  t.same(workerAllocator('system', {}, () => true).env, {})
})

t.test('the Docker image\'s link is looked for first, then the architecture\'s Debian directory', async t => {
  t.same(jemallocCandidates('arm64').slice(0, 2), ['/usr/local/lib/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'])
  t.same(jemallocCandidates('x64')[1], debian)
})

/**
 * A node:http server (what every worker runs) under jemalloc with `conf`, receiving `requests`
 * bodies of 16 MiB after a few to warm up: the page faults it took per request.
 */
async function faultsPerBody (lib: string, conf: string, requests: number): Promise<number> {
  const server = 'const s = require("node:http").createServer((q, r) => { q.on("data", () => {}); q.on("end", () => r.end("ok")) }); s.listen(0, "127.0.0.1", () => console.log(s.address().port))'
  const child = spawn(process.execPath, ['-e', server], { env: { ...process.env, LD_PRELOAD: lib, MALLOC_CONF: conf }, stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const [port] = await once(child.stdout, 'data') as [Buffer]
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const body = Buffer.alloc(16 * 2 ** 20, 7)
    const post = async (): Promise<void> => await new Promise((resolve, reject) => {
      http.request({ port: Number(port), host: '127.0.0.1', method: 'POST', agent }, res => { res.resume().on('end', resolve) }).on('error', reject).end(body)
    })
    // field 10 of /proc/PID/stat: minor page faults (the name in field 2 has no spaces here)
    const faults = (): number => Number(fs.readFileSync(`/proc/${child.pid ?? 0}/stat`, 'utf8').split(' ')[9])
    for (let i = 0; i < 5; i++) await post()
    const before = faults()
    for (let i = 0; i < requests; i++) await post()
    agent.destroy()
    return (faults() - before) / requests
  } finally { child.kill() }
}

const installed = jemallocCandidates().find(path => fs.existsSync(path))
t.test('jemalloc with JEMALLOC_CONF reuses the memory of past request bodies instead of faulting in new pages', { skip: installed === undefined || process.platform !== 'linux' ? 'jemalloc is not installed' : false }, async t => {
  const lib = installed as string
  const withFit = await faultsPerBody(lib, JEMALLOC_CONF, 15)
  const without = await faultsPerBody(lib, JEMALLOC_CONF.replace(/,?lg_extent_max_active_fit:\d+/, ''), 15)
  // 16 MiB is 4,096 pages: without the setting most of each body's pieces land on fresh pages
  t.ok(withFit < 1000, `${withFit.toFixed(0)} page faults per 16 MiB body (fewer than 1,000 expected)`)
  t.ok(withFit * 3 < without, `${withFit.toFixed(0)} page faults per body, against ${without.toFixed(0)} without lg_extent_max_active_fit`)
})

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import t from 'tap'
import { RESTART, restartAfter, send, stoppedCleanly } from '../src/cluster'
import { OLD_SPACE_FLOOR } from '../src/heap'
import { startServer, waitReady } from './helpers/server'

const workerPids = (primary: number): number[] => {
  try { return execFileSync('pgrep', ['-P', String(primary)]).toString().trim().split('\n').filter(Boolean).map(Number) } catch { return [] }
}

t.test('WORKERS=2: two processes share the port, metrics add up across them, a dead worker is replaced, SIGTERM exits 0', async t => {
  const server = await startServer(t, { WORKERS: '2' })
  await waitReady(server.url)
  const pid = server.child.pid as number
  const before = workerPids(pid)
  t.equal(before.length, 2, 'two worker processes')
  const body = JSON.stringify({ input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] })
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${server.url}/loss/cross_entropy`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' }, body })
    t.equal(r.status, 200)
  }
  const text = await (await fetch(`${server.url}/metrics`)).text()
  t.match(text, /^losshub_requests_total\{protocol="loss",loss="cross_entropy",status="200"\} 10$/m, 'the scrape counts both workers\' requests')

  process.kill(before[0], 'SIGKILL')
  let after: number[] = []
  for (let i = 0; i < 200; i++) {
    after = workerPids(pid)
    if (after.length === 2 && !after.includes(before[0])) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.equal(after.length, 2, 'the dead worker was replaced')
  t.notOk(after.includes(before[0]))
  await waitReady(server.url)
  const res = await fetch(`${server.url}/loss/cross_entropy`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  t.equal(res.status, 200, await res.text())

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'the primary exits 0 once its workers have drained')
})

t.test('stoppedCleanly: a worker told to stop ended well by exiting 0 or by that SIGTERM; an abort, a crash or a non-zero exit is a failed stop', async t => {
  t.ok(stoppedCleanly(0, null))
  t.ok(stoppedCleanly(null, 'SIGTERM'), 'ended by the SIGTERM before its handler was installed')
  t.notOk(stoppedCleanly(1, null), 'its shutdown timed out')
  t.notOk(stoppedCleanly(null, 'SIGABRT'), 'aborted (ONNX Runtime torn down mid-run)')
  t.notOk(stoppedCleanly(null, 'SIGKILL'))
  t.notOk(stoppedCleanly(null, 'SIGSEGV'))
})

t.test('restartAfter: doubling delays while a worker keeps dying young, capped; a long life starts the count again', async t => {
  const policy = { baseMs: 100, maxMs: 1000, stableMs: 30000 }
  const seen: number[] = []
  let earlyDeaths = 0
  for (let i = 0; i < 7; i++) {
    const next = restartAfter(earlyDeaths, 500, policy)
    earlyDeaths = next.earlyDeaths
    seen.push(next.delayMs)
  }
  t.same(seen, [100, 200, 400, 800, 1000, 1000, 1000])
  t.same(restartAfter(earlyDeaths, 30000, policy), { earlyDeaths: 0, delayMs: 0 }, 'a worker that lived 30 s is replaced at once')
  t.same(restartAfter(0, 29999, policy), { earlyDeaths: 1, delayMs: 100 })
  t.same(restartAfter(5000, 0, RESTART), { earlyDeaths: 5001, delayMs: RESTART.maxMs }, 'no overflow after many deaths')
})

t.test('send: to a worker that has gone, or whose channel fails, is logged and never throws', async t => {
  const logged: string[] = []
  const log = (msg: string): void => { logged.push(msg) }
  const gone = { isConnected: () => false, send: () => { throw new Error('must not be called') }, process: { pid: 1 } }
  send(gone as any, { type: 'x' }, log)
  const closing = { isConnected: () => true, send: (_m: unknown, cb: (err: Error | null) => void) => { process.nextTick(cb, new Error('channel closed')); return false }, process: { pid: 2 } }
  send(closing as any, { type: 'x' }, log)
  await new Promise(resolve => setImmediate(resolve))
  t.same(logged, ['worker gone before its answer', 'could not answer a worker'])
})

/** Runs test/helpers/dying-workers.js; resolves with its log lines once `enough` says so (or it exits). */
/** Calls `each` with every JSON line a process writes to `stream` (pino's output), as it arrives; other lines are skipped. */
function onJsonLines (stream: NodeJS.ReadableStream | null, each: (line: any) => void): void {
  let buffer = ''
  stream?.on('data', (b: Buffer) => {
    buffer += b.toString()
    const parts = buffer.split('\n')
    buffer = parts.pop() as string
    for (const l of parts) {
      let line: unknown
      try { line = JSON.parse(l) } catch { continue }
      each(line)
    }
  })
}

async function watchDyingCluster (enough: (lines: any[]) => boolean): Promise<{ child: ChildProcess, lines: any[], exited: Promise<number | null>, alive: boolean }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'dying-workers.js')], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const lines: any[] = []
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => { stderr += b.toString() })
  await new Promise<void>(resolve => {
    onJsonLines(child.stdout, line => {
      lines.push(line)
      if (enough(lines)) resolve()
    })
    void exited.then(() => resolve())
  })
  if (stderr !== '') lines.push({ msg: 'stderr', text: stderr })
  return { child, lines, exited, alive: child.exitCode === null && child.signalCode === null }
}

t.test('the primary survives workers that die while it answers them, and backs off their restarts', async t => {
  const deaths = (lines: any[]): any[] => lines.filter(l => l.msg === 'worker died; replacing it')
  const { child, lines, exited, alive } = await watchDyingCluster(lines => deaths(lines).length >= 10 && lines.some(l => /answer/.test(l.msg)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  t.ok(alive, `the primary is still running after ${deaths(lines).length} deaths (${JSON.stringify(lines.filter(l => l.msg === 'stderr'))})`)
  t.ok(lines.some(l => l.msg === 'worker gone before its answer' || l.msg === 'could not answer a worker'), 'an answer found its worker gone')
  // two slots, each 50, 100, 200, 400, 400 ... ms (policy of dying-workers.js)
  const expected = (n: number): number => Math.min(400, 50 * 2 ** (n - 1))
  t.same(deaths(lines).map(l => l.delayMs), deaths(lines).map(l => expected(l.earlyDeaths)), 'each delay doubles with the early deaths before it, up to the cap')
  t.ok(Math.max(...deaths(lines).map(l => l.earlyDeaths)) >= 5, 'the count grows past the cap')
  t.same(deaths(lines).map(l => l.code), deaths(lines).map(() => 3), 'every worker exited with its own code')
  child.kill('SIGTERM')
  t.type(await exited, 'number', 'SIGTERM still stops the primary')
})

t.test('a worker that cannot listen (the port is taken) is restarted with growing delays; the primary stays up and exits 0 on SIGTERM', async t => {
  const blocker = net.createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as net.AddressInfo).port
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'src', 'server.js')], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', WORKERS: '2', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const deaths: any[] = []
  await new Promise<void>(resolve => {
    onJsonLines(child.stdout, line => {
      if (/worker died/.test(line.msg)) deaths.push(line)
      if (deaths.length >= 6) resolve()
    })
    void exited.then(() => resolve())
  })
  t.equal(child.exitCode, null, `the primary is still running after ${deaths.length} worker deaths`)
  // exit 1 from the failed listen (a signal only if closing the app outlasted SHUTDOWN_TIMEOUT_MS and the
  // exit landed while ONNX Runtime was loading on a kernel thread)
  t.ok(deaths.every(d => d.code === 1 || (d.code === null && d.signal !== null)), `each worker died of the failed listen (${JSON.stringify(deaths.map(d => d.code ?? d.signal))})`)
  t.same(deaths.map(d => d.delayMs), deaths.map(d => 100 * 2 ** (d.earlyDeaths - 1)), '0.1 s, 0.2 s, 0.4 s ... per slot')
  t.ok(Math.max(...deaths.map(d => d.earlyDeaths)) >= 3)
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'exits 0 on SIGTERM, also with restarts pending')
})

t.test('workers get the heap\'s floor (src/heap.ts) from the primary, which may be started without it', async t => {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'src', 'server.js')], {
    env: { ...process.env, PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1', WORKERS: '2', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'ignore']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  let workers: number[] = []
  for (let i = 0; i < 100 && workers.length < 2; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    workers = workerPids(child.pid as number)
  }
  t.equal(workers.length, 2, 'two workers')
  const argv = (pid: number): string[] => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
  t.notOk(argv(child.pid as number).includes(OLD_SPACE_FLOOR), 'the primary was started without it')
  for (const pid of workers) t.same(argv(pid).filter(a => a === OLD_SPACE_FLOOR), [OLD_SPACE_FLOOR], `worker ${pid} has it, once`)
  child.kill('SIGTERM')
  t.type(await exited, 'number')
})

import { execFileSync } from 'node:child_process'
import t from 'tap'
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
  t.match(text, /^losshub_requests_total\{loss="cross_entropy",status="200"\} 10$/m, 'the scrape counts both workers\' requests')

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

import t from 'tap'
import { startServer, waitReady } from './helpers/server'

t.test('the real server: listens, serves a loss over HTTP, logs one line per request, exits 0 on SIGTERM', async t => {
  const server = await startServer(t)
  await waitReady(server.url)
  const res = await fetch(`${server.url}/loss/cross_entropy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'test-req-1' },
    body: JSON.stringify({ input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1], reduction: 'sum' })
  })
  t.equal(res.status, 200)
  t.equal(res.headers.get('x-request-id'), 'test-req-1', 'the request id is echoed')
  const body = await res.json() as { loss: number }
  t.ok(Math.abs(body.loss - 1.5671) < 1e-4, `loss ${body.loss}`)
  t.equal((await fetch(`${server.url}/healthz`)).status, 200)

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'exit code 0 after SIGTERM')
  const lines = server.logs.map(l => JSON.parse(l)).filter(l => l.reqId === 'test-req-1')
  t.equal(lines.length, 1, 'one log line for the request')
  t.match(lines[0], { msg: 'request', statusCode: 200, url: '/loss/cross_entropy' })
})

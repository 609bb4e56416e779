import net from 'node:net'
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

/**
 * Opens a raw connection, writes `head`, then stalls; resolves with what the server sent once it
 * closes the connection, or with 'still open' if it has not after `giveUpMs` (far past the bound).
 */
async function stall (port: number, head: string, giveUpMs = 20000): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head))
    let text = ''
    const giveUp = setTimeout(() => { resolve('still open'); socket.destroy() }, giveUpMs)
    socket.on('data', (b: Buffer) => { text += b.toString() })
    socket.on('close', () => { clearTimeout(giveUp); resolve(text) })
    socket.on('error', reject)
  })
}

t.test('slow uploads are bounded: a stalled body or stalled headers get 408 and the connection is closed', async t => {
  const { listening, postLoss } = await import('./helpers/app')
  const { app, port } = await listening(t, { receiveTimeoutMs: 1000, headersTimeoutMs: 1000 })
  const body = JSON.stringify({ input: [1, 2], target: [0, 0] })
  const stalledBodies = Array.from({ length: 10 }, async () => await stall(port, `POST /loss/mse HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 5)}`))
  const stalledHeaders = Array.from({ length: 10 }, async () => await stall(port, 'POST /loss/mse HTTP/1.1\r\nhost: x\r\ncontent-'))
  const t0 = Date.now()
  const answers = await Promise.all([...stalledBodies, ...stalledHeaders])
  t.comment(`closed after ${Date.now() - t0} ms`)
  t.same(answers.map(a => a.split('\r\n')[0]), answers.map(() => 'HTTP/1.1 408 Request Timeout'), 'all 20 stalled uploads answered 408 and closed')
  t.same(new Set(answers.map(a => JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4)).code)), new Set(['RECEIVE_TIMEOUT']), 'each with the code RECEIVE_TIMEOUT')
  t.equal((await postLoss(app, 'mse', JSON.parse(body))).status, 200, 'the server still serves')
})

t.test('an upload that completes within the bound is served, also over a kept-alive connection', async t => {
  const { build } = await import('./helpers/app')
  const app = await build(t, { receiveTimeoutMs: 1000, headersTimeoutMs: 1000 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${url}/loss/mse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: [1, 2], target: [0, 0], reduction: 'sum' }) })
    t.equal(r.status, 200)
    t.equal((await r.json() as { loss: number }).loss, 5)
    await new Promise(resolve => setTimeout(resolve, 600)) // idle in between: the receive bound does not count it
  }
})

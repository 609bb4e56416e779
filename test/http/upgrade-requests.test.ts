import t from 'tap'
import { listening } from '../helpers/app'
import { rawExchange } from '../helpers/raw-http'

/**
 * A request asking to change protocols is answered in HTTP/1.1 and its connection closed after
 * the answer: Node's parser drops what was sent behind it (src/http/upgrade-requests.ts).
 */

const health = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
const answers = (got: string): number => got.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0

t.test('an h2c Upgrade with a request behind it: answered, then the connection closes at once', async t => {
  // keep-alive far longer than the test waits: a connection left open would time the exchange out
  const { port } = await listening(t, { keepAliveTimeoutMs: 60000 })
  const upgrade = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n'
  const began = Date.now()
  const got = await rawExchange(port, upgrade + health, true)
  t.equal(answers(got), 1, 'the Upgrade request answered (the one behind it, dropped by Node, is for the client to send again)')
  t.match(got, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(got, /\r\nConnection: close\r\n/, 'Connection: close tells the client so')
  t.ok(Date.now() - began < 10000, `closed after the answer, not at the keep-alive timeout (${Date.now() - began} ms)`)
})

t.test('a loss request with a body asking to upgrade: its answer, then the close', async t => {
  const { port } = await listening(t, { keepAliveTimeoutMs: 60000 })
  const body = '{"input":[3],"target":[1]}'
  const got = await rawExchange(port, `POST /loss/mse HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` + health, true)
  t.equal(answers(got), 1)
  t.match(got, /\r\nConnection: close\r\n\r\n\{"loss":4\}$/, 'mse of 3 and 1: 4, and the connection closed')
})

t.test('an Upgrade header not named in Connection is no upgrade: the connection is kept and what follows answered', async t => {
  const { port } = await listening(t, { keepAliveTimeoutMs: 60000 })
  // half-closed after sending: the server closes once both are answered
  const got = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n' + health)
  t.equal(answers(got), 2, 'both answered')
  t.notMatch(got.slice(0, got.indexOf('\r\n\r\n')), /Connection: close/, 'the first answer keeps the connection')
})

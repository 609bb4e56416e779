import t from 'tap'
import { build, listening } from '../helpers/app'
import { rawExchange } from '../helpers/raw-http'

/**
 * A pipelined request whose reply is still queued when its connection closes (here: after the
 * 400 of a request before it, answered with Connection: close) has that reply closed too, so that
 * what waits for it is given back: its large body's turn and its place among the requests in
 * progress (src/http/queued-replies.ts).
 */

const ones = Array.from({ length: 200000 }, () => 1)
const large = JSON.stringify({ input: ones, target: ones.map(() => 0) })

async function gauge (app: Awaited<ReturnType<typeof build>>, series: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  return Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text)?.[1])
}

t.test('a large body pipelined behind a refused request gives its turn back when the connection closes', async t => {
  const { app, port } = await listening(t)
  const inProgress = 'losshub_large_body_bytes{state="in_progress"}'
  for (let i = 0; i < 3; i++) {
    const got = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n' +
      `POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${large.length}\r\n\r\n${large}`, true)
    t.match(got, /^HTTP\/1\.1 400 Bad Request/, 'the two Hosts: 400, and the connection closed')
  }
  // the queued reply is closed with its connection, a moment after the client sees it close
  let left = await gauge(app, inProgress)
  for (let i = 0; i < 20 && left !== 0; i++) {
    await new Promise(resolve => setTimeout(resolve, 50))
    left = await gauge(app, inProgress)
  }
  t.equal(left, 0, 'no large body counts as in progress')
  t.equal(app.losshub.active, 0, 'no request counts as in progress for draining')
  const after = await app.inject({ method: 'POST', url: '/loss/mse', headers: { 'content-type': 'application/json' }, payload: large })
  t.equal(after.statusCode, 200, 'a large request is served at once')
})

t.test('a client that half-closes after pipelining gets every answer, then the connection closes (app.ts: httpAllowHalfOpen)', async t => {
  const { port } = await listening(t)
  const one = 'POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{"input":[3,0],"target":[0,0]}'
  for (const n of [1, 2, 50]) {
    // sent whole, then the client's FIN
    const got = await rawExchange(port, one.repeat(n))
    t.equal(got.match(/\{"loss":4\.5\}/g)?.length, n, `${n} pipelined, then half-closed: ${n} answers`)
  }
})

import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, listening } from '../helpers/app'

/**
 * A reply its client does not take within RECEIVE_TIMEOUT_MS of being sent has its connection
 * closed (src/http/send-deadline.ts): the client gets the part the OS had already taken, then
 * the end of the stream, and the process lets the rest go.
 */

// mse of [2048,1] against [1,2048] with reduction "none": a 22 KB request for a [2048,2048] reply of some 20 MB
const column = Array.from({ length: 2048 }, (_, i) => [i / 2048])
const body = JSON.stringify({ input: column, target: [column.map(r => r[0] + 0.5)], reduction: 'none' })

/**
 * Sends the request on a fresh connection, reads nothing until `stall` settles (a time in ms, or
 * a promise), then everything: the reply's declared and received body bytes.
 */
async function fetchRaw (port: number, stall: number | Promise<unknown>): Promise<{ status: number, declared: number, received: number }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.pause()
  socket.write(`POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  await (typeof stall === 'number' ? sleep(stall) : stall)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.resume()
  await once(socket, 'close')
  const all = Buffer.concat(chunks)
  const head = all.subarray(0, all.indexOf('\r\n\r\n')).toString()
  return {
    status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]),
    declared: Number(/content-length: (\d+)/i.exec(head)?.[1]),
    received: all.length - head.length - 4
  }
}

t.test('a reply the client does not take in time is cut and its connection closed; one taken in time is whole', async t => {
  const { app, port } = await listening(t, { receiveTimeoutMs: 1000, headersTimeoutMs: 1000, keepAliveTimeoutMs: 1000 })

  const taken = await fetchRaw(port, 0)
  t.equal(taken.status, 200)
  t.ok(taken.declared > 16e6, `a reply of ${taken.declared} bytes: more than the socket buffers hold`)
  t.equal(taken.received, taken.declared, 'read at once: the whole reply (and the connection ends at its keep-alive timeout)')

  // left unread until the server closes its side (or 20 s): a fixed stall raced the reply's
  // encoding on a loaded machine, and a reply not yet sent cannot be cut
  const serverSide = once(app.server, 'connection').then(([socket]) => socket as net.Socket)
  const began = Date.now()
  const left = await fetchRaw(port, serverSide.then(async socket => await Promise.race([once(socket, 'close'), sleep(20000)])))
  t.equal(left.status, 200)
  t.equal(left.declared, taken.declared)
  t.ok(left.received < left.declared, `unread: cut after ${left.received} of ${left.declared} bytes`)
  t.ok(Date.now() - began >= 1000, `not before RECEIVE_TIMEOUT_MS (${Date.now() - began} ms)`)
})

t.test('replies not taken are bounded by QUEUE_MAX_MB: a new reply past it cuts those stalled a second, not the ones being read', async t => {
  // RECEIVE_TIMEOUT_MS far off: only the budget can cut here; no shedding for event-loop lag
  // (writing the 46 MB reply holds the loop long enough to shed the small requests under load)
  // a logger of each request's own (silent), to see whose logger reports a cut
  const app = await build(t, { queueMaxMb: 8, receiveTimeoutMs: 60000, keepAliveTimeoutMs: 1000, maxEventLoopDelayMs: 0, logLevel: 'silent' }, { logger: true })
  // the SEND_TIMEOUT warnings, by the body size of the request whose logger wrote them
  const cuts: number[] = []
  app.addHook('onRequest', async request => {
    const warn = request.log.warn.bind(request.log)
    request.log.warn = ((obj: { code?: string }, ...rest: unknown[]) => {
      if (obj.code === 'SEND_TIMEOUT') cuts.push(Number(request.headers['content-length']))
      warn(obj, ...(rest as [string]))
    }) as typeof request.log.warn
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  // the server's side of the unread connection (the first one made)
  const serverSide = once(app.server, 'connection').then(([socket]) => socket as net.Socket)
  const began = Date.now()
  const answers: unknown[] = []
  // left unread while other replies are sent, one every 300 ms, until the server has closed it
  // (its 40 MB held here are past 8 MiB once sent; it is cut once stalled a second)
  const unread = fetchRaw(port, serverSide.then(async socket => {
    while (!socket.destroyed && Date.now() - began < 20000) {
      const r = await fetch(`http://127.0.0.1:${port}/loss/mse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":[3],"target":[1]}' })
      const answer = (await r.json()) as { loss?: number }
      answers.push(answer.loss ?? answer)
      await sleep(300)
    }
  }))
  const left = await unread
  t.ok(left.received < left.declared, `unread: cut after ${left.received} of ${left.declared} bytes`)
  t.ok(Date.now() - began < 20000, `long before RECEIVE_TIMEOUT_MS (${Date.now() - began} ms)`)
  t.ok(answers.length > 0 && answers.every(a => a === 4), `the replies sent meanwhile are answered: ${JSON.stringify(answers)}`)
  t.same(cuts, [Buffer.byteLength(body)], 'the cut is logged once, by the request whose reply it was (not the one that found the budget full)')
  const read = await fetchRaw(port, 0)
  t.equal(read.received, read.declared, 'a reply read at once is whole, whatever its size')
})

/**
 * A body over BODY_LIMIT_MB gets its 413, with the error body, even when the client writes the
 * whole body before it reads (as Node's http and Python's http.client do): the server reads and
 * drops the rest first (src/http/discard-body.ts) instead of closing the connection under a
 * client still sending, which that client would see as EPIPE or ECONNRESET. Against a real
 * server process over TCP: in one process the client and the server take turns and never race.
 */
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { type IncomingMessage } from 'node:http'
import t from 'tap'
import { DISCARD_IDLE_MS, discardBody } from '../../src/http/discard-body'
import { startServer, waitReady } from '../helpers/server'

const MiB = 2 ** 20

/**
 * What came back, and over which connection. (Not `req.reusedSocket`: a request that waits in
 * the agent for a connection still finishing the previous request gets it when freed, and Node
 * reports that as not reused.)
 */
interface Outcome { status?: number, body?: any, error?: string, socket?: object | null }

/** POSTs `bytes` bytes of JSON whitespace with Node's http client and reads whatever comes back. */
async function post (url: string, agent: http.Agent, bytes: number, mode: 'content-length' | 'chunked' | 'one-write'): Promise<Outcome> {
  const body = Buffer.alloc(bytes, 0x20)
  return await new Promise(resolve => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' }
    if (mode !== 'chunked') headers['content-length'] = bytes
    const req = http.request(`${url}/loss/mse`, { method: 'POST', headers, agent }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()), socket: req.socket }))
      res.on('error', err => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }))
    })
    req.on('error', err => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }))
    if (mode === 'one-write') { req.end(body); return }
    // 64 KiB writes, waiting for the socket to drain, as a streaming client sends a large body
    let sent = 0
    const write = (): void => {
      while (sent < bytes) {
        const chunk = body.subarray(sent, sent + 64 * 1024)
        sent += chunk.length
        if (!req.write(chunk)) { req.once('drain', write); return }
      }
      req.end()
    }
    write()
  })
}

t.test('a body over BODY_LIMIT_MB: the client reads 413 and the error body, and the connection serves on', async t => {
  const server = await startServer(t, { BODY_LIMIT_MB: '1', KERNEL_WORKERS: '0' })
  await waitReady(server.url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const sockets = new Set<object | null | undefined>()
  for (const mode of ['content-length', 'chunked', 'one-write'] as const) {
    for (const mib of [4, 24]) {
      for (let i = 0; i < 2; i++) {
        const r = await post(server.url, agent, mib * MiB, mode)
        sockets.add(r.socket)
        t.equal(r.error, undefined, `${mode}, ${mib} MiB (#${i + 1}): no broken connection`)
        t.equal(r.status, 413, `${mode}, ${mib} MiB (#${i + 1}): 413`)
        t.same(r.body, { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', error: 'Payload Too Large', message: 'body: larger than the configured limit (BODY_LIMIT_MB)' })
      }
    }
  }
  // the body was read to its end, so the same keep-alive connection takes the next request
  const ok = await new Promise<Outcome>((resolve, reject) => {
    const req = http.request(`${server.url}/loss/mse`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent }, res => {
      let text = ''
      res.on('data', c => { text += String(c) })
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text), socket: req.socket }))
    })
    req.on('error', reject)
    req.end(JSON.stringify({ input: [3], target: [1] }))
  })
  t.same({ status: ok.status, body: ok.body }, { status: 200, body: { loss: 4 } }, '(3 - 1)^2')
  t.equal(sockets.size, 1, 'every 413 came over one connection')
  t.ok(sockets.has(ok.socket), 'and so did the next answer')
})

/** A stand-in for a request stream: a PassThrough with headers. */
function fakeRequest (headers: Record<string, string> = {}): PassThrough & IncomingMessage {
  return Object.assign(new PassThrough(), { headers }) as unknown as PassThrough & IncomingMessage
}

t.test('discardBody reads a body to its end, within its bound, and no further', async t => {
  const small = fakeRequest()
  const ended = discardBody(small, 10)
  small.write(Buffer.alloc(6))
  small.end(Buffer.alloc(4))
  t.equal(await ended, true, '10 bytes of a bound of 10: read to the end')

  const big = fakeRequest()
  const stopped = discardBody(big, 10)
  big.write(Buffer.alloc(8))
  big.write(Buffer.alloc(8))
  t.equal(await stopped, false, '16 bytes past a bound of 10: stops')
  t.equal(big.listenerCount('data'), 0, 'and reads no more')

  t.equal(await discardBody(fakeRequest({ 'content-length': '11' }), 10), false, 'a Content-Length past the bound: at once')

  const gone = fakeRequest()
  const aborted = discardBody(gone, 10)
  gone.destroy()
  t.equal(await aborted, false, 'a client that goes away')

  const slow = fakeRequest()
  const waited = discardBody(slow, 100, 200)
  setTimeout(() => slow.write(Buffer.alloc(8)), 150)
  let settled = false
  void waited.then(() => { settled = true })
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(settled, false, 'a byte within the idle bound: still reading 300 ms after the start')
  const since = Date.now()
  t.equal(await waited, false, 'then none for 200 ms: stops')
  t.ok(Date.now() - since < 1000, 'about the bound after the last byte')
  t.equal(slow.listenerCount('data'), 0, 'and reads no more')
})

t.test('a chunked body over the limit whose client then stops sending: 413 after DISCARD_IDLE_MS, not 408 (the upload stall or receive timeout)', async t => {
  const server = await startServer(t, { BODY_LIMIT_MB: '1', KERNEL_WORKERS: '0', RECEIVE_TIMEOUT_MS: '20000' })
  await waitReady(server.url)
  const { port } = new URL(server.url)
  const socket = net.connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  // one chunk declared at 4 GiB, of which 2 MiB come (past the 1 MiB limit), then nothing
  socket.write('POST /loss/mse HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n')
  socket.write(Buffer.alloc(2 * MiB, 0x20))
  const start = Date.now()
  let text = ''
  socket.on('data', c => { text += String(c) })
  await once(socket, 'close')
  const elapsed = Date.now() - start
  t.match(text, /^HTTP\/1\.1 413 /, `413 (${text.split('\r\n')[0]})`)
  t.match(text, /"code":"PAYLOAD_TOO_LARGE"/, 'with its code')
  t.match(text, /connection: close/i, 'and the connection closed: the rest of the body is not read')
  t.ok(elapsed >= DISCARD_IDLE_MS - 100 && elapsed < 10000, `once the idle bound passed (${elapsed} ms), well before the 20 s receive timeout`)
})

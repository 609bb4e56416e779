import net from 'node:net'
import t from 'tap'
import { listening } from '../helpers/app'
import { rawExchange } from '../helpers/raw-http'

/**
 * What the router and Node's HTTP parser refuse before any route runs is answered in the API's
 * coded error body (V2's own form under /v2), not in Fastify's or Node's plain defaults.
 */

/**
 * Sends `request` on a fresh connection (and ends its side, unless `open`: the server may take
 * an end as the client going away); its first answer, parsed.
 */
async function raw (port: number, request: string, open = false): Promise<{ status: string, headers: string, body: Record<string, unknown> }> {
  const text = await rawExchange(port, request, open)
  const head = text.slice(0, text.indexOf('\r\n\r\n'))
  return { status: head.split('\r\n')[0], headers: head, body: JSON.parse(text.slice(head.length + 4)) }
}

t.test('malformed framing, oversized headers, bad URLs and overlong path segments get coded answers', async t => {
  const { app, port } = await listening(t)
  const body = '{"input":[1],"target":[0]}'

  const both = await raw(port, 'POST /loss/mse HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n')
  t.equal(both.status, 'HTTP/1.1 400 Bad Request')
  t.match(both.headers, /connection: close/i, 'the connection is closed: nothing after the fault can be trusted')
  t.same(both.body, { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message: 'malformed HTTP request (HPE_INVALID_CONTENT_LENGTH): Parse Error: Content-Length can\'t be present with Transfer-Encoding' })

  const chunk = await raw(port, 'POST /loss/mse HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n')
  t.equal(chunk.body.code, 'INVALID_REQUEST')
  t.match(chunk.body.message, /^malformed HTTP request \(HPE_INVALID_CHUNK_SIZE\)/)

  const big = await raw(port, `POST /loss/mse HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20000)}\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  t.equal(big.status, 'HTTP/1.1 431 Request Header Fields Too Large')
  t.same(big.body, { statusCode: 431, code: 'HEADERS_TOO_LARGE', error: 'Request Header Fields Too Large', message: 'headers: larger than the 16 KiB the server reads' })

  const post = (url: string): string => `POST ${url} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`
  const badUrl = await raw(port, post('/loss/%ff'))
  t.equal(badUrl.status, 'HTTP/1.1 400 Bad Request')
  t.same(badUrl.body, { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message: 'url: /loss/%ff is not a valid URL (a %-escape that does not decode)' })
  const badV2Url = await raw(port, post('/v2/models/%ff/infer'))
  t.same(badV2Url.body, { error: 'INVALID_REQUEST: url: /v2/models/%ff/infer is not a valid URL (a %-escape that does not decode)', code: 'INVALID_REQUEST' }, 'under /v2: the protocol\'s form')

  const long = 'a'.repeat(101)
  const longLoss = await raw(port, post(`/loss/${long}`))
  t.equal(longLoss.status, 'HTTP/1.1 404 Not Found')
  t.same(longLoss.body, { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: `no route POST /loss/${long}: a path segment this long names no loss or model; see GET /docs` })
  const longModel = await raw(port, post(`/v2/models/${long}/infer`))
  t.equal(longModel.status, 'HTTP/1.1 404 Not Found')
  t.equal(longModel.body.code, 'NOT_FOUND')

  const noHost = await raw(port, `POST /loss/mse HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  t.equal(noHost.status, 'HTTP/1.1 400 Bad Request')
  t.match(noHost.headers, /connection: close/i)
  t.same(noHost.body, { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message: 'host: an HTTP/1.1 request must carry a Host header' })
  const noHostV2 = await raw(port, 'GET /v2/health/ready HTTP/1.1\r\n\r\n')
  t.same(noHostV2.body, { error: 'INVALID_REQUEST: host: an HTTP/1.1 request must carry a Host header', code: 'INVALID_REQUEST' }, 'under /v2: the protocol\'s form')
  const http10 = await raw(port, `POST /loss/mse HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`, true)
  t.same([http10.status, http10.body], ['HTTP/1.1 200 OK', { loss: 1 }], 'HTTP/1.0 needs no Host')
  // RFC 9112 3.2: more than one Host, or one that is no authority, is 400 too (Node keeps the first and takes any value)
  const twoHosts = await raw(port, `POST /loss/mse HTTP/1.1\r\nhost: a\r\nHost: b\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  t.same([twoHosts.status, twoHosts.body], ['HTTP/1.1 400 Bad Request', { statusCode: 400, code: 'INVALID_REQUEST', error: 'Bad Request', message: 'host: a request carries one Host header, not several' }])
  t.match(twoHosts.headers, /connection: close/i)
  const twoHosts10 = await raw(port, 'GET /v2/health/live HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n')
  t.same(twoHosts10.body, { error: 'INVALID_REQUEST: host: a request carries one Host header, not several', code: 'INVALID_REQUEST' }, 'HTTP/1.0 too, V2\'s form under /v2')
  const spaced = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n')
  t.same([spaced.status, spaced.body.message], ['HTTP/1.1 400 Bad Request', 'host: "a b" is not a host and port'])
  for (const host of ['[::1]:8080', 'losshub.example:80', '10.0.0.1', '']) {
    const ok = await raw(port, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    t.same([ok.status, ok.body], ['HTTP/1.1 200 OK', { status: 'ok' }], `Host: ${host} is served`)
  }
  // CONNECT: Node would close the connection unanswered; it is a method without a route here
  const connect = await raw(port, 'CONNECT losshub.example:443 HTTP/1.1\r\nHost: losshub.example:443\r\n\r\n')
  t.same([connect.status, connect.body], ['HTTP/1.1 404 Not Found', { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: 'no route CONNECT losshub.example:443: this server is no proxy; see GET /docs' }])
  t.match(connect.headers, /connection: close/i)
  // pipelined behind requests still in progress (a loss, a health check), it is answered after them, in order
  const pipelined = await rawExchange(port, post('/loss/mse').replace(/connection: close\r\n/i, '') + 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nCONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n')
  t.same(pipelined.match(/HTTP\/1\.1 \d+|\{"(loss|status|statusCode)":[^}]*\}/g), ['HTTP/1.1 200', '{"loss":1}', 'HTTP/1.1 200', '{"status":"ok"}', 'HTTP/1.1 404', '{"statusCode":404,"code":"NOT_FOUND","error":"Not Found","message":"no route CONNECT a:1: this server is no proxy; see GET /docs"}'])

  // malformed bytes pipelined behind requests in progress: those are answered first, then the 400 (Node dropped them)
  const behind = await rawExchange(port, post('/loss/mse').replace(/connection: close\r\n/i, '') + 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGARBAGE\r\n\r\n')
  t.same(behind.match(/HTTP\/1\.1 \d+|\{"(loss|status|statusCode)":[^}]*\}/g), ['HTTP/1.1 200', '{"loss":1}', 'HTTP/1.1 200', '{"status":"ok"}', 'HTTP/1.1 400', '{"statusCode":400,"code":"INVALID_REQUEST","error":"Bad Request","message":"malformed HTTP request (HPE_INVALID_METHOD): Parse Error: Invalid method encountered"}'])

  // RFC 9112 9.6: what follows a request that said Connection: close is not read; the request is answered
  const closing = await raw(port, post('/loss/mse') + 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n')
  t.same([closing.status, closing.body], ['HTTP/1.1 200 OK', { loss: 1 }])
  t.match(closing.headers, /connection: close/i)

  const after = await app.inject({ method: 'POST', url: '/loss/mse', payload: JSON.parse(body) })
  t.equal(after.statusCode, 200, 'the server serves on')
})

t.test('an Expect other than 100-continue: 417 EXPECTATION_FAILED in the coded body of its route family, connection closed', async t => {
  const { port } = await listening(t)
  const body = '{"input":[1],"target":[0]}'
  const loss = await raw(port, `POST /loss/mse HTTP/1.1\r\nhost: x\r\nexpect: 200-ok\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
  t.equal(loss.status, 'HTTP/1.1 417 Expectation Failed')
  t.match(loss.headers, /connection: close/i)
  t.same(loss.body, { statusCode: 417, code: 'EXPECTATION_FAILED', error: 'Expectation Failed', message: 'expect: "200-ok" is not supported; send none, or 100-continue' })
  const v2 = await raw(port, 'POST /v2/models/mse/infer HTTP/1.1\r\nhost: x\r\nexpect: 200-ok\r\ncontent-length: 2\r\n\r\n{}')
  t.equal(v2.status, 'HTTP/1.1 417 Expectation Failed')
  t.same(v2.body, { error: 'EXPECTATION_FAILED: expect: "200-ok" is not supported; send none, or 100-continue', code: 'EXPECTATION_FAILED' })
  // 100-continue within the body limit: Continue, and the request is served
  const cont = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(`POST /loss/mse HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`))
    let got = ''
    socket.on('data', (c: Buffer) => { got += c.toString('latin1') })
    socket.on('close', () => resolve(got))
    socket.on('error', reject)
  })
  t.match(cont, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
})

t.test('100-continue with a body over the limit: 413 at once, no Continue, the body never sent', async t => {
  const { port } = await listening(t, { bodyLimitMb: 0.001 })
  const ask = (url: string, length: number): string => `POST ${url} HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`
  // headers only, the connection left open: the answer comes without the body
  // the limit: 0.001 MiB, 1049 bytes
  const loss = await raw(port, ask('/loss/mse', 1050), true)
  t.equal(loss.status, 'HTTP/1.1 413 Payload Too Large')
  t.match(loss.headers, /connection: close/i)
  t.same(loss.body, { statusCode: 413, code: 'PAYLOAD_TOO_LARGE', error: 'Payload Too Large', message: 'body: its Content-Length 1050 is larger than the 1049 bytes of the configured limit (BODY_LIMIT_MB); not sent, as Expect: 100-continue allows' })
  const v2 = await raw(port, ask('/v2/models/mse/infer', 5000), true)
  t.equal(v2.status, 'HTTP/1.1 413 Payload Too Large')
  t.equal(v2.body.code, 'PAYLOAD_TOO_LARGE', 'under /v2: the protocol\'s form')
  t.match(v2.body.error, /^PAYLOAD_TOO_LARGE: body: its Content-Length 5000 is larger than the 1049 bytes/)
})

t.test('every 4xx of a /v2 request is in the protocol\'s form: the parser\'s faults in its headers or body, its receive timeout, and the framework\'s', async t => {
  const { port } = await listening(t, { receiveTimeoutMs: 1000, headersTimeoutMs: 1000, bodyLimitMb: 0.001 })
  const v2 = (code: string, message: string): object => ({ error: `${code}: ${message}`, code })
  const infer = 'POST /v2/models/mse/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n'
  // Node's parser: a malformed chunk in the body, framing refused at the end of the headers, a bad header, headers too large
  const chunk = await raw(port, `${infer}transfer-encoding: chunked\r\n\r\nzz\r\n`)
  t.same([chunk.status, chunk.body], ['HTTP/1.1 400 Bad Request', v2('INVALID_REQUEST', 'malformed HTTP request (HPE_INVALID_CHUNK_SIZE): Parse Error: Invalid character in chunk size')])
  const both = `${infer}transfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n`
  const framing = v2('INVALID_REQUEST', 'malformed HTTP request (HPE_INVALID_CONTENT_LENGTH): Parse Error: Content-Length can\'t be present with Transfer-Encoding')
  t.same((await raw(port, both)).body, framing, 'a fault in the headers')
  // pipelined: the faulty request's own family, not that of the one before it
  const behind = await rawExchange(port, `GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n${both}`)
  t.equal(behind.slice(behind.lastIndexOf('\r\n\r\n') + 4), JSON.stringify(framing), 'behind a request of another family')
  const lossBehind = await rawExchange(port, `GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n${both.replace('/v2/models/mse/infer', '/loss/mse')}`)
  t.match(JSON.parse(lossBehind.slice(lossBehind.lastIndexOf('\r\n\r\n') + 4)), { statusCode: 400, code: 'INVALID_REQUEST' }, '/loss behind /v2: the API\'s')
  t.same((await raw(port, `${infer}bad header: x\r\n\r\n`)).body, v2('INVALID_REQUEST', 'malformed HTTP request (HPE_INVALID_HEADER_TOKEN): Parse Error: Invalid header token'))
  const big = await raw(port, `${infer}x-big: ${'a'.repeat(20000)}\r\n\r\n`)
  t.same([big.status, big.body], ['HTTP/1.1 431 Request Header Fields Too Large', v2('HEADERS_TOO_LARGE', 'headers: larger than the 16 KiB the server reads')])
  // Node's receive timeout, the body still short of its Content-Length
  const slow = await raw(port, `${infer}content-length: 10\r\n\r\n{}`, true)
  t.same([slow.status, slow.body], ['HTTP/1.1 408 Request Timeout', v2('RECEIVE_TIMEOUT', 'request: not received within RECEIVE_TIMEOUT_MS (its headers: HEADERS_TIMEOUT_MS)')])
  // the framework's: bad JSON, a content type or encoding it does not read, a body over the limit, no such route
  const framework: Array<[string, string, string]> = [
    [`${infer}content-length: 4\r\n\r\n{bad`, 'HTTP/1.1 400 Bad Request', 'INVALID_JSON'],
    [`${infer.replace('application/json', 'text/plain')}content-length: 2\r\n\r\n{}`, 'HTTP/1.1 415 Unsupported Media Type', 'UNSUPPORTED_MEDIA_TYPE'],
    [`${infer}content-encoding: gzip\r\ncontent-length: 2\r\n\r\n{}`, 'HTTP/1.1 415 Unsupported Media Type', 'UNSUPPORTED_MEDIA_TYPE'],
    [`${infer}content-length: 1100\r\n\r\n${' '.repeat(1100)}`, 'HTTP/1.1 413 Payload Too Large', 'PAYLOAD_TOO_LARGE'],
    [`${infer}transfer-encoding: chunked\r\n\r\n44c\r\n${' '.repeat(1100)}\r\n0\r\n\r\n`, 'HTTP/1.1 413 Payload Too Large', 'PAYLOAD_TOO_LARGE'],
    ['GET /v2/nowhere HTTP/1.1\r\nhost: x\r\n\r\n', 'HTTP/1.1 404 Not Found', 'NOT_FOUND']
  ]
  for (const [request, status, code] of framework) {
    const r = await raw(port, request)
    t.same([r.status, Object.keys(r.body), r.body.code], [status, ['error', 'code'], code], `${status}: ${String(r.body.error)}`)
  }
})

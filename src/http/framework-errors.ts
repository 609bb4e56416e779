import { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify'
import { type ErrorCode } from '../errors'
import { errorBody } from './errors'
import { type ServerSocket } from './queued-replies'

/** Rewrites an error body for the route family a URL belongs to (V2's own form under /v2). */
export type ErrorForm = (url: string, payload: string) => string

/**
 * Fastify's `frameworkErrors`: what the router refuses before any route runs, in the API's
 * coded error body. A URL whose %-escapes do not decode is 400 INVALID_REQUEST; a path segment
 * longer than the router reads names no loss or model: 404 NOT_FOUND, as any unknown path.
 */
export function frameworkErrors (form: ErrorForm) {
  return function answer (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    const [code, message]: [ErrorCode, string] = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? ['NOT_FOUND', `no route ${request.method} ${request.url.slice(0, 200)}: a path segment this long names no loss or model; see GET /docs`]
      : ['INVALID_REQUEST', `url: ${request.url.slice(0, 200)} is not a valid URL (a %-escape that does not decode)`]
    const body = errorBody(code, message)
    void reply.code(body.statusCode).type('application/json').send(form(request.url, JSON.stringify(body)))
  }
}

/**
 * Runs `then` once Node has written the replies still owed on `socket` to requests received
 * whole before the current one (pipelined), one after another (each reply's close hands the
 * socket to the next); at once when there are none, when the socket is gone, or when the next
 * reply is that of a request not received whole (the faulty one itself: it never will be).
 */
function afterReplies (socket: ServerSocket, then: () => void): void {
  const writing = socket._httpMessage
  if (writing == null || socket.destroyed || !writing.req.complete) then()
  else writing.once('close', () => { afterReplies(socket, then) })
}

/**
 * Fastify's `clientErrorHandler`, for what Node's HTTP parser refuses before there is a request
 * (malformed framing or headers, headers too large) and for its receive timeouts: the API's
 * coded error body, then the connection is closed (nothing after the fault can be trusted).
 * The body is in the form of the faulty request's route family (V2's under /v2) when its URL
 * is known (`faultyUrl`), else the API's (headers that never came whole). Requests before the
 * fault on the connection (pipelined) are answered first, where Node would drop or cut their
 * answers; nothing more is read meanwhile.
 */
export function clientErrors (form: ErrorForm) {
  return function answer (err: Error & { code?: string, rawPacket?: unknown, bytesParsed?: unknown }, socket: ServerSocket): void {
    // gone: nothing more can be said on this connection
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    // bytes after a request that said Connection: close (RFC 9112 9.6: not read) while its
    // answer is still to come: that answer is given, and closes the connection
    if (err.code === 'HPE_CLOSED_CONNECTION' && socket._httpMessage != null) return
    const [code, message]: [ErrorCode, string] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['RECEIVE_TIMEOUT', 'request: not received within RECEIVE_TIMEOUT_MS (its headers: HEADERS_TIMEOUT_MS)']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? ['HEADERS_TOO_LARGE', 'headers: larger than the 16 KiB the server reads']
          : ['INVALID_REQUEST', `malformed HTTP request (${err.code ?? 'unknown'}): ${err.message}`]
    const error = errorBody(code, message)
    const body = form(faultyUrl(socket, err), JSON.stringify(error))
    socket.pause()
    afterReplies(socket, () => {
      if (socket.destroyed) return
      // written, then closed at once as Node itself does: a client that stalls cannot hold the socket
      socket.write(`HTTP/1.1 ${error.statusCode} ${error.error}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      socket.destroy()
    })
  }
}

/**
 * The URL of the request a parser fault or receive timeout on `socket` befell: that of the
 * request Node's parser reads (its own field, `parser.incoming`), unless that one arrived whole;
 * then the fault is in the next one's headers, whose request line is read from the bytes the
 * parser was given (`rawPacket`, up to the fault) when it is among them. Empty when unknown.
 */
function faultyUrl (socket: ServerSocket, err: { rawPacket?: unknown, bytesParsed?: unknown }): string {
  const incoming = (socket as ServerSocket & { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming
  if (incoming != null && !incoming.complete) return incoming.url ?? ''
  if (!Buffer.isBuffer(err.rawPacket)) return ''
  const parsed = err.rawPacket.subarray(0, typeof err.bytesParsed === 'number' ? err.bytesParsed : undefined).toString('latin1')
  return [...parsed.matchAll(REQUEST_LINE)].pop()?.[1] ?? ''
}

/** A request line (RFC 9112 3), at the start of the bytes or of a line; its target. */
const REQUEST_LINE = /(?:^|\n)[A-Z]+ (\S+) HTTP\/\d\.\d\r?\n/g

/**
 * Node's 'checkExpectation': a request whose Expect is not 100-continue (which Node answers
 * itself) is refused 417 EXPECTATION_FAILED in the API's coded body (Node's own 417 has none),
 * unread, and its connection closed.
 */
export function expectationFailed (form: ErrorForm) {
  return function check (request: IncomingMessage, response: ServerResponse): void {
    refuse(request, response, form, errorBody('EXPECTATION_FAILED', `expect: ${JSON.stringify(String(request.headers.expect)).slice(0, 200)} is not supported; send none, or 100-continue`))
  }
}

/** Answers `error` in the coded body of the request's route family, closing the connection; `written` runs once it is. */
function refuse (request: IncomingMessage, response: ServerResponse, form: ErrorForm, error: ReturnType<typeof errorBody>, written?: () => void): void {
  const body = form(request.url ?? '', JSON.stringify(error))
  response.writeHead(error.statusCode, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body, written)
}

/** A Host value: an authority (RFC 3986 3.2: a reg-name, IPv4 or IP literal, and a port), or empty. */
const HOST_VALUE = /^[A-Za-z0-9\-._~%!$&'()*+,;=[\]:]*$/

/**
 * The Host header as RFC 9112 3.2 asks: an HTTP/1.1 request without one, any request with more
 * than one, or with a value that is no authority (a space, say), is refused with 400
 * INVALID_REQUEST in the coded body of its route family and its connection closed (Node keeps
 * the first of two and takes any value; its own check for a missing one, turned off:
 * `requireHostHeader`, answers a bare 400). A Fastify `onRequest` hook.
 */
export async function requireHost (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const host = request.headers.host
  const message = host === undefined
    ? request.raw.httpVersion === '1.1' ? 'host: an HTTP/1.1 request must carry a Host header' : undefined
    : hostCount(request.raw.rawHeaders) > 1
      ? 'host: a request carries one Host header, not several'
      : HOST_VALUE.test(host) ? undefined : `host: ${JSON.stringify(host.slice(0, 200))} is not a host and port`
  if (message === undefined) return
  // sent, not thrown: an error's reply drops the headers set before it
  await reply.code(400).header('connection', 'close').send(errorBody('INVALID_REQUEST', message))
}

function hostCount (raw: readonly string[]): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') n++
  return n
}

/**
 * Node's 'connect': a CONNECT request (a proxy's method; this server is none) gets 404
 * NOT_FOUND in the coded body like any other method without a route, and its connection is
 * closed (Node, with no listener, closes it without an answer), after the answers to the
 * requests before it on the connection (pipelined).
 */
export function refuseConnect (form: ErrorForm) {
  return function answer (request: IncomingMessage, socket: ServerSocket): void {
    const target = (request.url ?? '').slice(0, 200)
    const body = form(target, JSON.stringify(errorBody('NOT_FOUND', `no route CONNECT ${target}: this server is no proxy; see GET /docs`)))
    afterReplies(socket, () => {
      if (socket.destroyed) return
      socket.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      socket.destroySoon()
    })
  }
}

/**
 * Node's 'checkContinue': a request that asks before sending its body (Expect: 100-continue)
 * and declares one over `bodyLimit` bytes is refused 413 PAYLOAD_TOO_LARGE at once, without
 * the 100 Continue that would have it upload the body only to be refused; its connection is
 * closed. Any other goes on as Node would take it (100 Continue, then the request).
 */
export function continueWithin (server: Server, bodyLimit: number, form: ErrorForm) {
  return function check (request: IncomingMessage, response: ServerResponse): void {
    if (Number(request.headers['content-length']) > bodyLimit) {
      const error = errorBody('PAYLOAD_TOO_LARGE', `body: its Content-Length ${String(request.headers['content-length'])} is larger than the ${bodyLimit} bytes of the configured limit (BODY_LIMIT_MB); not sent, as Expect: 100-continue allows`)
      // closed once written: Node would otherwise wait for the body it was told not to send
      refuse(request, response, form, error, () => request.socket.destroy())
      return
    }
    response.writeContinue()
    server.emit('request', request, response)
  }
}

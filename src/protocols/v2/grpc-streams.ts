import type http2 from 'node:http2'
import { constants as http2Constants } from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { LosshubError } from '../../errors'
import { type BodyAdmission, lineFullMessage, Pace, PACE_CHECK_MS, paceMessage } from '../../http/body-admission'

/**
 * What grpc-js (1.14) has no options for, done on the HTTP/2 servers under it: flow-control
 * windows, and the bounds HTTP puts on a request while it arrives (its receive time, and the
 * budget of large bodies in progress). They are reached through grpc-js's `http2Servers` field;
 * where that is not found nothing changes.
 */

/**
 * The HTTP/2 receive windows (per connection and per stream) of the gRPC server. Node's default
 * of 64 KiB makes a client wait for a WINDOW_UPDATE after every 64 KiB it sends: a 16 MiB
 * tensor then takes hundreds of round trips (about 3x longer on loopback than with this).
 */
export const FLOW_CONTROL_WINDOW = 8 * 2 ** 20

/** A gRPC message's prefix: a compressed flag, then its length (4 bytes, big-endian). */
const PREFIX_BYTES = 5

/** Calls `tune` once for each HTTP/2 server under `server`; `seen` keeps one from being tuned twice by the same function. */
function eachHttp2Server (server: grpc.Server, seen: WeakSet<object>, tune: (h2: http2.Http2Server) => void): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers
  if (!(servers instanceof Map)) return
  for (const h2 of servers.keys() as IterableIterator<http2.Http2Server>) {
    if (seen.has(h2) || typeof h2?.on !== 'function') continue
    seen.add(h2)
    tune(h2)
  }
}

const widened = new WeakSet<object>()

/** Gives every new HTTP/2 session of `server` FLOW_CONTROL_WINDOW. */
export function widenWindows (server: grpc.Server): void {
  eachHttp2Server(server, widened, h2 => h2.on('session', (session: http2.ServerHttp2Session) => {
    try {
      session.setLocalWindowSize(FLOW_CONTROL_WINDOW)
      session.settings({ initialWindowSize: FLOW_CONTROL_WINDOW })
    } catch {} // a session closing already: it needs no window
  }))
}

/** The bounds on requests while they arrive. */
export interface ReceiveBounds {
  /** Most time a request may take to arrive (RECEIVE_TIMEOUT_MS, as for HTTP). */
  receiveTimeoutMs: number
  /** The large-body budget and waiting line that HTTP bodies go through too (BODIES_IN_PROGRESS_MB). */
  admission: BodyAdmission
  /** The largest message accepted: a larger one is refused by grpc-js as its prefix arrives, and takes no turn. */
  maxMessageBytes: number
  /** The gRPC status for a request refused while it arrives (logged and counted by the caller): its RPC's name, why, and when its stream opened (performance.now()). */
  fail: (rpc: string, err: LosshubError, started: number) => grpc.ServiceError & { metadata: grpc.Metadata }
}

const bounded = new WeakSet<object>()

/**
 * Bounds each request while it arrives, as HTTP's are bounded:
 * - One not whole `receiveTimeoutMs` after its stream opened (a stalled or trickled upload,
 *   which grpc-js would buffer for as long as the client likes) is answered DEADLINE_EXCEEDED
 *   with losshub-code RECEIVE_TIMEOUT, as HTTP answers 408.
 * - A large message (its length is in its prefix) takes its turn in `admission`, HTTP's line of
 *   large bodies: while it waits its stream is paused, so that its bytes wait in the client
 *   (HTTP/2 flow control holds at most a window of them here). Once it may be read its pace is
 *   watched as a large HTTP body's is (`Pace`). A line too long gets UNAVAILABLE (OVERLOADED).
 * An answered stream is reset (NO_ERROR, as gRPC asks of a server that answers before the client
 * has finished sending), which drops what was buffered of it.
 */
export function boundReceiving (server: grpc.Server, bounds: ReceiveBounds): void {
  eachHttp2Server(server, bounded, h2 => h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const rpc = String(headers[':path']).slice(String(headers[':path']).lastIndexOf('/') + 1)
    const opened = performance.now()
    const answer = (err: LosshubError): void => { answerStream(stream, bounds.fail(rpc, err, opened)) }
    const deadline = Date.now() + bounds.receiveTimeoutMs
    const timer = setTimeout(() => {
      // arrived whole (its call may still run: its deadline is the batcher's), or answered
      if (stream.readableEnded || stream.headersSent || stream.closed) return
      answer(new LosshubError('RECEIVE_TIMEOUT', `request: not received within RECEIVE_TIMEOUT_MS (${bounds.receiveTimeoutMs} ms)`))
    }, bounds.receiveTimeoutMs)
    timer.unref()
    stream.once('close', () => clearTimeout(timer))
    admitMessage(stream, bounds, deadline, answer)
    if (headers['grpc-timeout'] !== undefined || headers['grpc-encoding'] !== undefined) correctClientFaults(stream, headers, answer)
  }))
}

/**
 * grpc-js (1.14) answers INTERNAL, as grpc-go does, for two mistakes of the client's that it
 * finds before any handler runs: a `grpc-timeout` it cannot read, and a message flagged
 * compressed that does not decompress. Those answers (INTERNAL, without a losshub-code: none
 * of ours) become INVALID_ARGUMENT with losshub-code INVALID_REQUEST and a message naming what
 * was wrong, logged and counted as the call's would be.
 */
function correctClientFaults (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, answer: (err: LosshubError) => void): void {
  const respond = stream.respond
  stream.respond = function (this: http2.ServerHttp2Stream, out?: http2.OutgoingHttpHeaders, options?: http2.ServerStreamResponseOptions): void {
    const fault = out !== undefined && String(out['grpc-status']) === String(grpc.status.INTERNAL) && out['losshub-code'] === undefined ? clientFault(String(out['grpc-message']), headers) : undefined
    if (fault === undefined) return respond.call(this, out, options)
    stream.respond = respond
    answer(new LosshubError('INVALID_REQUEST', fault))
  }
}

/** What a client did wrong, by grpc-js's INTERNAL message; undefined for anything else. */
function clientFault (encodedMessage: string, headers: http2.IncomingHttpHeaders): string | undefined {
  let message: string
  try {
    message = decodeURI(encodedMessage)
  } catch {
    return undefined
  }
  if (message.startsWith('Invalid grpc-timeout value')) return `grpc-timeout: ${JSON.stringify(String(headers['grpc-timeout']))} is not a timeout (1 to 8 digits, then a unit: H, M, S, m, u or n)`
  if (message === 'Failed to decompress message') return `request: the message is flagged compressed (grpc-encoding ${String(headers['grpc-encoding'])}) but does not decompress`
  return undefined
}

/** Reads the first message's prefix as it arrives and, for a large message, waits for its turn in `bounds.admission`. */
function admitMessage (stream: http2.ServerHttp2Stream, bounds: ReceiveBounds, deadline: number, answer: (err: LosshubError) => void): void {
  const { admission } = bounds
  let got = 0
  let head: Buffer | undefined // the prefix's bytes so far, when its first chunk was shorter than it
  const count = (chunk: Buffer): void => {
    got += chunk.length
    if (got - chunk.length >= PREFIX_BYTES) return // the prefix came before
    const prefix = head === undefined ? chunk : Buffer.concat([head, chunk])
    if (prefix.length < PREFIX_BYTES) {
      head = prefix
      return
    }
    const bytes = PREFIX_BYTES + prefix.readUInt32BE(1)
    if (bytes < admission.smallest || bytes - PREFIX_BYTES > bounds.maxMessageBytes) {
      stream.removeListener('data', count)
      return
    }
    let started = false
    const leave = admission.enter(bytes, () => {
      started = true
      stream.resume()
      watchPace(stream, new Pace(bytes, deadline, Date.now()), () => got, answer)
    })
    if (leave === undefined) return answer(new LosshubError('OVERLOADED', lineFullMessage(admission, bytes), 1))
    stream.once('close', leave)
    // grpc-js resumes a stream only once a message is whole, or the stream closes
    if (!started) stream.pause()
  }
  stream.on('data', count)
}

/** Answers a large message that stalls or arrives far too slowly, as HTTP's `watchPace` does a large body. */
function watchPace (stream: http2.ServerHttp2Stream, pace: Pace, got: () => number, answer: (err: LosshubError) => void): void {
  const timer = setInterval(() => {
    if (stream.headersSent || stream.closed) return clearInterval(timer)
    const now = Date.now()
    const verdict = pace.check(now, got())
    if (verdict === 'done') return clearInterval(timer)
    if (verdict === 'ok') return
    clearInterval(timer)
    answer(new LosshubError('RECEIVE_TIMEOUT', paceMessage('request', verdict, got(), pace, now)))
  }, PACE_CHECK_MS)
  timer.unref()
  stream.once('close', () => clearInterval(timer))
}

/** A trailers-only answer of `failure`, and the stream reset under a client that may still be sending. */
function answerStream (stream: http2.ServerHttp2Stream, failure: grpc.ServiceError & { metadata: grpc.Metadata }): void {
  if (stream.headersSent || stream.closed) return
  stream.respond({
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(failure.code),
    'grpc-message': encodeURI(failure.details),
    ...failure.metadata.toHttp2Headers()
  }, { endStream: true })
  stream.close(http2Constants.NGHTTP2_NO_ERROR)
}

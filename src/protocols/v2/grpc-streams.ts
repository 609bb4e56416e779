import type http2 from 'node:http2'
import { constants as http2Constants } from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { LosshubError } from '../../errors'
import { type BodyAdmission, lineFullMessage, Pace, PACE_CHECK_MS, PACE_STALL_MS, paceMessage } from '../../http/body-admission'
import { ACCEPTED_ENCODINGS, type CallSoFar, clientFault, PREFIX_BYTES } from './grpc-faults'
import { MessageDiverter } from './grpc-collected'

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
  /** A call's start, at its stream's: its end (called once it is answered, or its stream closes), or the error refusing it. */
  starts: (rpc: string) => LosshubError | (() => void)
  /** The gRPC status for a request refused while it arrives (logged and counted by the caller): its RPC's name, why, and when its stream opened (performance.now()). */
  fail: (rpc: string, err: LosshubError, started: number) => grpc.ServiceError & { metadata: grpc.Metadata }
}

const bounded = new WeakSet<object>()

/**
 * Bounds each request while it arrives, as HTTP's are bounded (and counts it in flight from its
 * start, `bounds.starts`):
 * - One not whole `receiveTimeoutMs` after its stream opened (a stalled or trickled upload,
 *   which grpc-js would buffer for as long as the client likes) is answered DEADLINE_EXCEEDED
 *   with losshub-code RECEIVE_TIMEOUT, as HTTP answers 408.
 * - Its message is watched as it arrives (`watchMessage`): grpc-js sees none of it until it
 *   may be read (`ReadGate`), a large one waiting its turn among HTTP's large bodies, and a
 *   second one is refused at once.
 * - Its answer is watched (`watchAnswer`): grpc-js's own answers to a client's mistakes get the
 *   API's codes (grpc-faults.ts), and a unary answer not taken within `receiveTimeoutMs` (a
 *   client that stopped reading) is cancelled.
 * An answered stream is reset (NO_ERROR, as gRPC asks of a server that answers before the client
 * has finished sending), which drops what was buffered of it. Returns the function that answers
 * every call whose request still arrives (a shutdown's last word).
 */
export function boundReceiving (server: grpc.Server, bounds: ReceiveBounds): (err: LosshubError) => void {
  // the calls whose request still arrives, by their stream
  const arriving = new Map<http2.ServerHttp2Stream, (err: LosshubError) => void>()
  eachHttp2Server(server, bounded, h2 => {
    // before grpc-js's own listener, which starts reading the stream
    // (a compressed message's only: grpc-js inflates it whole as it arrives; an uncompressed one
    // it only buffers, as far as the chunks that come before a pause of ours)
    h2.prependListener('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const encoding = headers['grpc-encoding']
      if (encoding !== undefined && encoding !== 'identity') gates.set(stream, new ReadGate(stream))
      const timeout = headers['grpc-timeout']
      if (timeout !== undefined) readTimeout(headers, timeout)
      // grpc-js answers a method it does not serve in its own listener, before ours (which then
      // watches the answer in this hook's place): coded as REST codes an unknown route
      hookRespond(stream, (out, _options, send) => {
        if (out !== undefined && Number(out['grpc-status']) === grpc.status.UNIMPLEMENTED && out['losshub-code'] === undefined) out['losshub-code'] = 'NOT_FOUND'
        send()
      })
    })
    h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      const gate = gates.get(stream)
      gate?.seal()
      // grpc-js has read it: the client's own, for the messages that name it
      const timeout = sentTimeouts.get(headers)
      if (timeout !== undefined) headers['grpc-timeout'] = timeout
      // answered by grpc-js already (an unknown method, a bad content type): nothing will read the rest
      if (stream.headersSent) return closeStream(stream)
      const path = String(headers[':path'])
      const rpc = path.slice(path.lastIndexOf('/') + 1)
      const opened = performance.now()
      const answer = (err: LosshubError): void => { if (!stream.headersSent && !stream.closed) answerStream(stream, bounds.fail(rpc, err, opened)) }
      const starts = bounds.starts(rpc)
      if (starts instanceof LosshubError) return answer(starts)
      // in flight until answered (as an HTTP request whose reply is written), or gone
      let ends: (() => void) | undefined = starts
      const end = (): void => { ends?.(); ends = undefined }
      // an uncompressed ModelInfer's message may be read into reused memory instead of by grpc-js (grpc-collected.ts)
      const divert = gate === undefined && rpc === 'ModelInfer' ? MessageDiverter.of(stream) : undefined
      const message = watchMessage(stream, rpc, gate, divert, bounds, Date.now() + bounds.receiveTimeoutMs, answer)
      arriving.set(stream, answer)
      stream.once('end', () => arriving.delete(stream))
      let delivering = false
      // one timer a stream: first the request's arrival, then (re-armed) the answer's delivery
      const timer = setTimeout(() => {
        if (delivering) return closeStream(stream, http2Constants.NGHTTP2_CANCEL)
        // arrived whole (its call may still run: its deadline is the batcher's), or answered
        if (stream.readableEnded || stream.headersSent || stream.closed) return
        answer(new LosshubError('RECEIVE_TIMEOUT', `request: not received within RECEIVE_TIMEOUT_MS (${bounds.receiveTimeoutMs} ms)`))
      }, bounds.receiveTimeoutMs)
      timer.unref()
      stream.once('close', () => {
        arriving.delete(stream)
        clearTimeout(timer)
        message.release()
        end()
      })
      watchAnswer(stream, { rpc, headers, arrived: message.arrived }, answer, () => {
        // a unary call's answer is out: its tensors are done with, and it has as long again to be taken
        message.release()
        end()
        if (rpc === 'Watch') return
        delivering = true
        timer.refresh()
      })
    })
  })
  return err => { for (const answer of [...arriving.values()]) answer(err) }
}

/** A grpc-timeout as gRPC defines it: 1 to 8 digits, then a unit. */
const TIMEOUT = /^(\d{1,8})([HMSmun])$/
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }

/** The longest a Node timer waits (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The grpc-timeout a client sent, where grpc-js is shown another (`readTimeout`) until its listener has run. */
const sentTimeouts = new WeakMap<http2.IncomingHttpHeaders, string>()

/**
 * Shows grpc-js (1.14) a stream's grpc-timeout as gRPC reads it. grpc-js finds its pattern
 * anywhere in the value (accepting `99999999999S` and `1S,x`), and sets a timer of the time
 * truncated to 32 bits: a valid deadline past 2^31 ms (`2592000S`, 30 days, as grpc-go writes
 * it) would end the call at once. A value that is not a timeout is shown as one grpc-js
 * refuses (then answered INVALID_REQUEST, `clientFault`); a deadline past any timer's reach is
 * no deadline.
 */
function readTimeout (headers: http2.IncomingHttpHeaders, timeout: string | string[]): void {
  const sent = String(timeout)
  const match = TIMEOUT.exec(sent)
  if (match === null) {
    sentTimeouts.set(headers, sent)
    headers['grpc-timeout'] = 'not a timeout'
  } else if (Number(match[1]) * TIMEOUT_UNIT_MS[match[2]] > MAX_TIMER_MS) {
    sentTimeouts.set(headers, sent)
    delete headers['grpc-timeout']
  }
}

/** The read gates of streams between grpc-js's listener and ours. */
const gates = new WeakMap<http2.ServerHttp2Stream, ReadGate>()

/**
 * Holds back from grpc-js the 'data' and 'end' of a stream until its message may be read: grpc-js
 * reads (and inflates) a message as it arrives, so a pause of ours would come after it has seen
 * the first chunk. The listeners grpc-js adds while the gate is open to them (between its
 * creation and `seal`) are wrapped; what they would have been given waits, in order, for `open`.
 */
class ReadGate {
  private shut = true
  private held: Array<() => void> = []

  constructor (private readonly stream: http2.ServerHttp2Stream) {
    const on = stream.on
    const gate = this
    stream.on = function (this: http2.ServerHttp2Stream, event: string | symbol, listener: (...args: any[]) => void) {
      return on.call(this, event, event === 'data' || event === 'end' ? gate.wrap(listener) : listener)
    } as typeof stream.on
  }

  /** Listeners added from now on are not held back. */
  seal (): void { delete (this.stream as { on?: unknown }).on }

  open (): void {
    if (!this.shut) return
    this.shut = false
    const held = this.held
    this.held = []
    for (const give of held) give()
  }

  private wrap (listener: (...args: any[]) => void): (...args: any[]) => void {
    return (...args) => { if (this.shut) this.held.push(() => listener(...args)); else listener(...args) }
  }
}

/**
 * A call's answer: grpc-js's answers to a client's mistakes made the API's (`clientFault`), and
 * `answered` told of any other. A stream whose whole answer has gone out while its request still
 * arrives is reset (NO_ERROR).
 */
function watchAnswer (stream: http2.ServerHttp2Stream, call: CallSoFar, answer: (err: LosshubError) => void, answered: () => void): void {
  hookRespond(stream, (out, options, send) => {
    // grpc-js's, as none of ours lacks a losshub-code
    const fault = out !== undefined && out['losshub-code'] === undefined ? clientFault(Number(out['grpc-status']), String(out['grpc-message']), call) : undefined
    if (fault !== undefined) return answer(fault)
    send()
    // the whole answer (an error, or a deadline) is out while the request still arrives: nothing will read the rest
    if (options?.endStream === true && !stream.readableEnded) closeStream(stream)
    answered()
  })
}

/** A stream's first `respond`: its headers and options, and the call that sends them (or not, if the hook never calls it). */
type RespondHook = (headers: http2.OutgoingHttpHeaders | undefined, options: http2.ServerStreamResponseOptions | undefined, send: () => void) => void

const respondHooks = new WeakMap<http2.ServerHttp2Stream, RespondHook>()
const respondPatched = new WeakSet<object>()

/**
 * Lets `hook` see `stream`'s first `respond` (its answer's headers) and decide whether they go
 * out. Patched once on the streams' prototype, which looks the stream's hook up: a function set
 * on each stream would give it a shape of its own, and slow every access to it in Node and grpc-js.
 */
function hookRespond (stream: http2.ServerHttp2Stream, hook: RespondHook): void {
  const proto = Object.getPrototypeOf(stream) as { respond: http2.ServerHttp2Stream['respond'] }
  if (!respondPatched.has(proto)) {
    respondPatched.add(proto)
    const respond = proto.respond
    proto.respond = function (this: http2.ServerHttp2Stream, headers?: http2.OutgoingHttpHeaders, options?: http2.ServerStreamResponseOptions): void {
      const hooked = respondHooks.get(this)
      if (hooked === undefined) return respond.call(this, headers, options)
      respondHooks.delete(this)
      hooked(headers, options, () => respond.call(this, headers, options))
    }
  }
  respondHooks.set(stream, hook)
}

/**
 * The most a compressed message may inflate to, per byte: deflate's limit (about 1032:1). grpc-js
 * inflates a message whole before any handler sees it, so a compressed message takes its turn
 * by what it could become, not by its size on the wire.
 */
const MAX_INFLATION = 1032

/**
 * Watches the request's message as it arrives (every method here takes exactly one), and opens
 * `gate` (a compressed message's) to grpc-js once it may be read:
 * - once its prefix is in, a large message (or a compressed one that could inflate to one)
 *   waits for its turn in `bounds.admission`, paused; while it waits it counts in the line as at
 *   least the flow-control window it may fill here. Its turn is given back by `release` (once the
 *   call is answered, or its stream closes), or for any method but ModelInfer (whose tensors live
 *   on through the kernel) once the message is whole. A stream already answered (an unknown
 *   method, say) takes no turn;
 * - a byte past the message is a second one: refused at once, before grpc-js buffers it;
 * - with `divert` (grpc-js's 'data' listeners, taken off an uncompressed ModelInfer stream), a
 *   large message is read into reused memory there once its turn has come, and given back with the turn.
 */
function watchMessage (stream: http2.ServerHttp2Stream, rpc: string, gate: ReadGate | undefined, divert: MessageDiverter | undefined, bounds: ReceiveBounds, deadline: number, answer: (err: LosshubError) => void): { arrived: CallSoFar['arrived'], release: () => void } {
  const { admission } = bounds
  let got = 0
  let head: Buffer | undefined // the prefix's bytes so far, when its first chunk was shorter than it
  let message = Infinity // the message's bytes on the wire, prefix included, once its prefix is in
  let leave: (() => void) | undefined
  const release = (): void => {
    leave?.()
    divert?.release()
  }
  let collectable = false
  // its turn has come (or it needs none): a message is read into memory only then
  let turn = false
  const count = (chunk: Buffer): void => {
    got += chunk.length
    if (message === Infinity) {
      const prefix = head === undefined ? chunk : Buffer.concat([head, chunk])
      if (prefix.length < PREFIX_BYTES) {
        head = prefix
        divert?.chunk(chunk, message, 'no')
        return
      }
      head = undefined
      message = PREFIX_BYTES + prefix.readUInt32BE(1)
      // grpc-js would read a flag past 1 as 0, and a compressed message without an encoding as not compressed
      const flag = prefix[0]
      collectable = flag === 0 && message - PREFIX_BYTES <= bounds.maxMessageBytes && !stream.headersSent && !stream.closed
      if (flag > 1) return answer(new LosshubError('INVALID_REQUEST', `request: the message's compressed flag is ${flag}; gRPC has 0 (not compressed) and 1 (compressed as grpc-encoding says)`))
      if (flag === 1 && gate === undefined) return answer(new LosshubError('INVALID_REQUEST', 'request: the message is flagged compressed, but grpc-encoding is identity or absent: name its encoding (gzip or deflate), or send it uncompressed with flag 0'))
      admit(flag === 1)
    }
    divert?.chunk(chunk, message, !collectable ? 'no' : turn ? 'yes' : 'later')
    if (got > message) return answer(new LosshubError('INVALID_REQUEST', `request: a second request message after the first (${message - PREFIX_BYTES} bytes); ${rpc} takes exactly one`))
    if (got === message && rpc !== 'ModelInfer') release()
  }
  const admit = (compressed: boolean): void => {
    // answered already, or larger than grpc-js takes (it refuses that as the prefix arrives)
    const bytes = compressed ? Math.min(message * MAX_INFLATION, bounds.maxMessageBytes) : message
    if (stream.headersSent || stream.closed || message - PREFIX_BYTES > bounds.maxMessageBytes || bytes < admission.smallest) {
      turn = true
      return gate?.open()
    }
    let started = false
    let queued = false
    const held = Math.max(bytes, FLOW_CONTROL_WINDOW)
    leave = admission.enter(bytes, () => {
      started = true
      turn = true
      gate?.open()
      // what arrived while it waited is read now; the rest follows as the stream resumes
      if (queued) divert?.chunk(NO_BYTES, message, collectable ? 'yes' : 'no')
      stream.resume()
      watchPace(stream, new Pace(message, deadline, Date.now()), () => got, answer)
    }, held)
    if (leave === undefined) return answer(new LosshubError('OVERLOADED', lineFullMessage(admission, bytes, held), 1))
    // grpc-js resumes a stream only once it has a whole message, or the stream closes
    queued = !started
    if (!started) stream.pause()
  }
  stream.on('data', count)
  // a stream that ends before its prefix is whole: grpc-js says what is missing
  if (gate !== undefined) stream.once('end', () => { if (message === Infinity) gate.open() })
  return { arrived: () => ({ got, message }), release }
}

const NO_BYTES = Buffer.alloc(0)

/**
 * Answers a large message that stalls or arrives far too slowly, as HTTP's `watchPace` does a
 * large body; and one that arrives whole but whose stream does not end (grpc-js waits for the
 * end of a unary request before its handler runs) within PACE_STALL_MS.
 */
function watchPace (stream: http2.ServerHttp2Stream, pace: Pace, got: () => number, answer: (err: LosshubError) => void): void {
  let wholeAt: number | undefined
  const timer = setInterval(() => {
    if (stream.headersSent || stream.closed || stream.readableEnded) return clearInterval(timer)
    const now = Date.now()
    const verdict = pace.check(now, got())
    if (verdict === 'ok') return
    if (verdict === 'done') {
      wholeAt ??= now
      if (now - wholeAt < PACE_STALL_MS) return
    }
    clearInterval(timer)
    answer(new LosshubError('RECEIVE_TIMEOUT', verdict === 'done'
      ? `request: the message arrived whole, but its stream did not end (END_STREAM) within ${(PACE_STALL_MS / 1000).toFixed(1)} s`
      : paceMessage('request', verdict, got(), pace, now)))
  }, PACE_CHECK_MS)
  timer.unref()
  stream.once('close', () => clearInterval(timer))
}

/** A trailers-only answer of `failure`, and the stream reset under a client that may still be sending. */
function answerStream (stream: http2.ServerHttp2Stream, failure: grpc.ServiceError & { metadata: grpc.Metadata }): void {
  stream.respond({
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(failure.code),
    'grpc-message': encodeURI(failure.details),
    // as grpc-js's own answers say, and gRPC asks of an answer to a message it cannot read
    'grpc-accept-encoding': ACCEPTED_ENCODINGS.join(','),
    ...failure.metadata.toHttp2Headers()
  }, { endStream: true })
  closeStream(stream)
}

/** Resets a stream under a client that may still be sending (NO_ERROR, as gRPC asks, unless `code` says), and drops what it buffered. */
function closeStream (stream: http2.ServerHttp2Stream, code = http2Constants.NGHTTP2_NO_ERROR): void {
  if (stream.closed) return
  stream.close(code)
  // a paused stream would otherwise keep its buffered bytes, and never be destroyed
  stream.resume()
}

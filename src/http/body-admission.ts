import { Transform } from 'node:stream'
import { type FastifyReply, type FastifyRequest } from 'fastify'
import { LosshubError } from '../errors'

/**
 * Large request bodies are read a few at a time: a body waits, unread, until the large bodies
 * whose requests are still in progress leave room for it within a budget of bytes. Its bytes
 * wait in the connection meanwhile (TCP holds the client back), not in this process.
 *
 * Why: at 64 connections each sending a 2 MB nested body, reading them all at once put some
 * 300 MB of bodies and decoded tensors in flight, far past the reused memory (body-memory.ts),
 * so nearly every buffer was fresh: page faults, a full garbage collection every few requests,
 * and a resident set that stayed high afterwards. The kernels run one call at a time anyway,
 * so a request held back loses only its place in a queue that would have been inside the process.
 *
 * The policy: first come, first served. Bodies smaller than `smallest` are never held back, so
 * small requests do not queue behind large ones. Bodies of unknown length (chunked) go through a
 * line of their own (see `admitBodies`). A body larger than the
 * whole budget is read once nothing else counted is in progress. A body that would take a line
 * of waiting bodies past `maxWaiting` bytes is refused at once (503 OVERLOADED, in `admitBodies`)
 * rather than left to wait past its receive timeout; an empty line takes any body.
 */
export class BodyAdmission {
  private inProgress = 0
  private waitingBytes = 0
  private readonly waiting: Array<{ bytes: number, held: number, start: () => void }> = []

  constructor (readonly budget: number, readonly smallest: number, readonly maxWaiting = Infinity) {}

  /**
   * Calls `start` once a body of `bytes` may be read (at once when it may now). Returns the
   * function to call when its request ends, answered or abandoned: it gives the bytes back, or
   * takes the body out of the line if it never started; calling it again does nothing.
   * Undefined (and `start` never called): the line is full. `held`: what it counts in the line
   * while it waits (its bytes, unless it may hold more than that here meanwhile).
   */
  enter (bytes: number, start: () => void, held = bytes): (() => void) | undefined {
    if (!(bytes >= this.smallest)) {
      start()
      return () => {}
    }
    let state: 'waiting' | 'started' | 'left' = 'waiting'
    const entry = { bytes, held, start: () => { state = 'started'; start() } }
    if (!this.mayStart(bytes) || this.waiting.length > 0) {
      // an empty line takes any body, whatever its size (as the batcher's queue does)
      if (this.waiting.length > 0 && this.waitingBytes + held > this.maxWaiting) return undefined
      this.waiting.push(entry)
      this.waitingBytes += held
    } else {
      this.inProgress += bytes
      entry.start()
    }
    return () => {
      if (state === 'started') {
        this.inProgress -= bytes
        this.next()
      } else if (state === 'waiting') {
        this.waiting.splice(this.waiting.indexOf(entry), 1)
        this.waitingBytes -= held
        this.next() // it may have held up the bodies behind it
      }
      state = 'left'
    }
  }

  /** Bytes of the large bodies in progress, and of those waiting to be read. */
  get bytes (): { inProgress: number, waiting: number } {
    return { inProgress: this.inProgress, waiting: this.waitingBytes }
  }

  private mayStart (bytes: number): boolean {
    return this.inProgress === 0 || this.inProgress + bytes <= this.budget
  }

  /** Starts the bodies at the head of the line while they fit. */
  private next (): void {
    for (let head = this.waiting[0]; head !== undefined && this.mayStart(head.bytes); head = this.waiting[0]) {
      this.waiting.shift()
      this.waitingBytes -= head.held
      this.inProgress += head.bytes
      head.start()
    }
  }
}

/** Requests answered while their bodies still arrived (see `watchPace`): their body's parser answers nothing more. */
const answeredEarly = new WeakSet<FastifyRequest>()

/** Whether `request` was answered while its body still arrived (too slow to arrive in time). */
export function answeredWhileReceiving (request: FastifyRequest): boolean { return answeredEarly.has(request) }

/**
 * Answers `err` (with `status`) to a request whose body still arrives, and closes its
 * connection: the body's parser, when it ends, answers nothing more.
 */
export function answerWhileReceiving (request: FastifyRequest, reply: FastifyReply, status: number, err: LosshubError): void {
  answeredEarly.add(request)
  void reply.code(status).header('connection', 'close').send(err)
}

/** How long a large body arrives before its pace is judged, and how often it is judged then. */
export const PACE_GRACE_MS = 1000
export const PACE_CHECK_MS = 250
/** A large body that gains no byte for this long, with bytes still missing, has stalled. */
export const PACE_STALL_MS = 2000
/** The pace a body is judged by: its better pace (so far, or over the last second) times this, for a pace still rising. */
export const PACE_SLACK = 2

/**
 * A Fastify `preParsing` hook that holds a request's body back until `admission` lets it be
 * read, by its Content-Length; its bytes count until the reply is done or the connection closes.
 * Once it may be read, its pace is watched (`watchPace`) against the request's receive deadline,
 * `receiveTimeoutMs` after the request began. A body of unknown length goes through
 * `admitUnknownLength` and the line `unknownLength`, whose budget is the body limit (one at a
 * time): each counts as the most it may become, and would otherwise hold up every body that
 * declares its length.
 */
export function admitBodies (admission: BodyAdmission, unknownLength: BodyAdmission, receiveTimeoutMs: number) {
  return async function admitBody (request: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
    const began = Date.now()
    if (request.headers['content-length'] === undefined && request.headers['transfer-encoding'] !== undefined) {
      return admitUnknownLength(unknownLength, request, reply, payload, began + receiveTimeoutMs)
    }
    const bytes = Number(request.headers['content-length'])
    // a body over the limit is refused as soon as it is read: it takes no turn
    if (!(bytes >= admission.smallest) || bytes > (request.routeOptions.bodyLimit ?? Infinity)) return payload
    // gone already: its reply would never close to give its turn back
    if (request.raw.socket?.destroyed !== false) return payload
    await new Promise<void>((resolve, reject) => {
      const leave = admission.enter(bytes, resolve)
      if (leave === undefined) return reject(new LosshubError('OVERLOADED', lineFullMessage(admission, bytes), 1))
      // a request whose client goes away while it waits never starts (nothing refers to it then)
      reply.raw.once('close', leave)
    })
    watchPace(request, reply, bytes, began + receiveTimeoutMs)
    return payload
  }
}

/**
 * A body of unknown length (chunked), passed on as it arrives until `admission.smallest` of it
 * has: then it waits for its turn (its stream paused, the rest held back by TCP), counted in
 * progress as the route's body limit, the most it may become, and while it waits as the bytes it
 * holds here (`smallest`); a full line refuses it (503 OVERLOADED). Once it may be read, a stall
 * is cut as for a body of known length (`watchPace`; its pace cannot be judged against a length
 * it does not declare).
 */
function admitUnknownLength (admission: BodyAdmission, request: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream, deadline: number): NodeJS.ReadableStream {
  const limit = request.routeOptions.bodyLimit ?? Infinity
  let got = 0
  let admitted = false
  const admit = new Transform({
    transform (chunk: Buffer, _encoding, passOn) {
      got += chunk.length
      // too large already: the body's reader refuses it as it reads this
      if (admitted || got < admission.smallest || got > limit) return passOn(null, chunk)
      admitted = true
      const leave = admission.enter(limit, () => {
        watchPace(request, reply, undefined, deadline)
        passOn(null, chunk)
      }, got)
      if (leave === undefined) return passOn(new LosshubError('OVERLOADED', lineFullMessage(admission, got), 1))
      reply.raw.once('close', leave)
    }
  })
  // the client gone or the body cut short: the reader hears of it from this stream (once it
  // listens: before, the request is gone with its connection, and nothing is left to tell)
  admit.on('error', () => {})
  payload.on('error', err => admit.destroy(err))
  payload.once('close', () => { if (!admit.writableEnded) admit.destroy() })
  payload.pipe(admit)
  return admit
}

/** Why a body of `bytes` (that would count as `held` while it waits) was refused a place in `admission`'s line. */
export function lineFullMessage (admission: BodyAdmission, bytes: number, held = bytes): string {
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1)
  const holding = held > bytes ? ` (${mib(held)} MiB while it waits: the HTTP/2 window it may fill here)` : ''
  return `overloaded: ${mib(admission.bytes.waiting)} MiB of request bodies wait to be read and this one brings ${mib(bytes)} MiB${holding} (QUEUE_MAX_MB); retry`
}

/** Why a body (`what`: the argument named in the message) judged at `now` with `got` bytes in was cut (its length unknown: `pace.bytes` Infinity). */
export function paceMessage (what: string, verdict: 'slow' | 'stalled', got: number, pace: Pace, now: number): string {
  const arrived = `${what}: ${got}${pace.bytes === Infinity ? '' : ` of ${pace.bytes}`} bytes arrived in ${(pace.watchedMs / 1000).toFixed(1)} s`
  return verdict === 'stalled'
    ? `${arrived}, none in the last ${(PACE_STALL_MS / 1000).toFixed(1)} s or more: the upload stalled`
    : `${arrived}; at this pace the rest would not arrive within the ${((pace.deadline - now) / 1000).toFixed(1)} s left of RECEIVE_TIMEOUT_MS`
}

/**
 * The judgement of a large body's pace, from the moment it may be read, at each check with the
 * bytes in so far:
 * - 'stalled': no byte for PACE_STALL_MS (or none at all after PACE_GRACE_MS) with bytes missing;
 * - 'slow': even at PACE_SLACK times its better pace, so far or over the last second (a pace
 *   still rising, as TCP's does, is judged by its latest), the rest would come past `deadline`;
 * - 'ok', or 'done' once every byte is in.
 * The time counted is the time the body had to arrive: while the event loop stalls nothing is
 * read, whatever the client sends, so a check that comes late counts as no more than two checks'.
 */
export class Pace {
  private watched = 0
  private progressAt = 0
  /** (watched ms, bytes) at the checks of about the last second. */
  private readonly recent: Array<{ at: number, got: number }> = [{ at: 0, got: 0 }]

  constructor (readonly bytes: number, readonly deadline: number, private last: number) {}

  /** Milliseconds the body has had to arrive so far. */
  get watchedMs (): number { return this.watched }

  check (now: number, got: number): 'done' | 'ok' | 'slow' | 'stalled' {
    this.watched += Math.min(now - this.last, 2 * PACE_CHECK_MS)
    this.last = now
    if (got >= this.bytes) return 'done'
    // the latest check is always among the recent ones
    if (got > this.recent[this.recent.length - 1].got) this.progressAt = this.watched
    this.recent.push({ at: this.watched, got })
    while (this.recent[0].at < this.watched - 1000) this.recent.shift()
    if (this.watched < PACE_GRACE_MS) return 'ok'
    if (got === 0 || this.watched - this.progressAt >= PACE_STALL_MS) return 'stalled'
    const since = this.recent[0]
    const pace = Math.max(got / this.watched, (got - since.got) / Math.max(this.watched - since.at, 1))
    return now + (this.bytes - got) / (PACE_SLACK * pace) <= this.deadline ? 'ok' : 'slow'
  }
}

/**
 * Watches a large body from the moment it may be read (`Pace`): one that stalls, or arrives far
 * too slowly to be complete by `deadline`, is answered 408 RECEIVE_TIMEOUT at once and its
 * connection closed, instead of holding its place among the bodies in progress until Node's
 * receive timeout. So a connection that declares a large body and sends nothing, or stops
 * before its end, holds up the bodies behind it for a second or two, not RECEIVE_TIMEOUT_MS.
 * Bytes are counted on the socket (the body's parser reads them as they come).
 */
function watchPace (request: FastifyRequest, reply: FastifyReply, bytes: number | undefined, deadline: number): void {
  const socket = request.raw.socket
  // the body's bytes that came with its headers wait, read, in the request stream
  const from = socket.bytesRead - request.raw.readableLength
  const pace = new Pace(bytes ?? Infinity, deadline, Date.now())
  const timer = setInterval(() => {
    if (reply.sent || socket.destroyed || request.raw.complete) return clearInterval(timer)
    const now = Date.now()
    const got = socket.bytesRead - from
    const verdict = pace.check(now, got)
    if (verdict === 'done') return clearInterval(timer)
    // of unknown length (bytes undefined): only a stall is judged
    if (verdict === 'ok' || (verdict === 'slow' && bytes === undefined)) return
    clearInterval(timer)
    answerWhileReceiving(request, reply, 408, new LosshubError('RECEIVE_TIMEOUT', paceMessage('body', verdict, got, pace, now)))
  }, PACE_CHECK_MS)
  timer.unref()
  reply.raw.once('close', () => clearInterval(timer))
}

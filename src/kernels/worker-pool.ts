import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { LosshubError } from '../errors'
import { type Executor, type KernelStats, KernelTimeout, type Lane, type RunCost, type RunOptions, toOrt } from './executor'
import { IdleCores } from './idle-cores'
import { SessionCache, type SessionSettings } from './session-cache'
import { bare, fromOrt, type KernelTensor, type KernelTensors, movable, restore, tensorBytes } from './tensors'
import { type WorkerData, type WorkerReply, type WorkerRequest, type WorkerStats } from './worker'

/** Kernel worker threads per lane; with no long workers, long calls share the short ones. */
export interface LaneSizes { short: number, long: number }

/** Injection points: how a worker thread starts and how a run's time limit is timed (tests), and a log hook. */
export interface WorkerPoolOptions {
  startWorker?: (workerData: unknown) => Worker
  setTimer?: (fn: () => void, ms: number) => () => void
  /** Told whenever a worker is lost (its thread died, or its kernel overran) and replaced. */
  onWorkerLost?: (lane: Lane, reason: string) => void
  /**
   * A call of one step whose cost is at most this many elements runs on the event loop, on
   * sessions of its own, skipping the hop to a worker (it still takes an idle worker's place
   * while it runs); 0: never.
   */
  inlineElements?: number
  /**
   * A call of at least `elements` elements runs on a session of `threads` intra-op threads
   * when no other kernel of the pool runs or waits (`queued`) and other processes leave that
   * many cores free (`freeCores`, by default sampled by IdleCores): a lone large kernel
   * takes the idle cores.
   */
  wide?: { threads: number, elements: number, freeCores?: () => number }
  /** Calls waiting in front of the pool (the batcher's queue). */
  queued?: () => number
}

/** What a run waits for: the worker's reply, or word that its worker is gone. */
type Reply = WorkerReply | { ok: false, lost: string }

/** Wide sessions kept per worker (each holds its own intra-op threads): large calls are few. */
export const WIDE_SESSIONS = 4

/** How the pool tells a wide session from the ordinary one of the same kernel in a worker's `knows`. */
const WIDE = '\u0000wide'

interface Slot {
  worker: Worker
  lane: Lane
  busy: boolean
  knows: Set<string>
  pending: Map<number, (r: Reply) => void>
  /** Set once the thread has loaded and said so: a worker takes kernels from then on. */
  ready: boolean
  /**
   * live: serving. overrun: its kernel was abandoned at its time limit but still computes
   * (no longer a worker of the pool; closed once the kernel returns). gone: dead or closed.
   */
  state: 'live' | 'overrun' | 'gone'
  /** The worker that took its place when it died while running: kept for that run's retry. */
  replacement?: Slot
  /** What the worker said it holds, with its last answer. */
  stats?: WorkerStats
}

/** Attempts of one run: the first, and one retry on a fresh worker when the first worker died. */
const ATTEMPTS = 2

/**
 * A fixed pool of kernel worker threads in two lanes, one kernel at a time each. Models are
 * built on the main thread and sent to a worker the first time it runs that kernel (and again
 * if it has evicted the session).
 *
 * Inputs move to the worker as transferred buffers, not copies (`movable`: arrays spanning an
 * ArrayBuffer of their own, and views into a buffer that holds one request only; any other view
 * is copied, SharedArrayBuffers are shared). When the run fails, the worker hands them back
 * with its answer, so that the caller's feeds (and the request arguments they lend) are whole
 * again for a retry: a failed batch rerun member by member, or a resend with the model. After
 * a success they stay behind: nothing reads them again. Outputs come back transferred. A worker that dies keeps the
 * buffers it was given: the run is retried on feeds made anew (`RunOptions.rebuild`), unless
 * they held a request's own arrays, which are gone (503 WORKER_FAILED: the client retries).
 *
 * A tiny call (`inlineElements`) runs on the event loop instead, where it is done sooner than
 * a hop to a worker and back; a large one runs on a wide session (`wide`) while nothing else runs.
 *
 * A worker takes kernels once it has said it is ready (until then its lane's calls wait in the
 * batcher's queue, where their deadlines run, not inside a kernel's time limit).
 * A worker that dies ('error', 'exit' or 'messageerror') is replaced at once and its run is
 * retried once on the fresh worker. A run past its `timeoutMs` is abandoned: it throws
 * KernelTimeout at once and a fresh worker takes the lane's place, while the old thread is
 * terminated as soon as its kernel returns. It cannot be sooner: ONNX Runtime's native code
 * does not stop for Worker.terminate(), and onnxruntime-node aborts the whole process when a
 * kernel returns into a terminated thread. So that abandoned kernels cannot multiply the CPU
 * in use, a lane has at most as many of them finishing as it has workers; past that, the
 * fresh worker starts only when one of them ends.
 */
export class WorkerPool implements Executor {
  private readonly slots: Slot[]
  private readonly overrun = new Set<Slot>()
  private readonly vacancies: Record<Lane, number> = { short: 0, long: 0 }
  private readonly ending = new Set<Promise<unknown>>()
  private readonly capacityListeners: Array<() => void> = []
  private nextId = 0
  private closing = false
  private inFlight = 0
  private readonly lost = { abandoned: 0, died: 0 }
  private inlineSessions?: SessionCache
  private readonly idleCores?: IdleCores
  private readonly freeCores: () => number
  private readonly start: (workerData: unknown) => Worker
  private readonly setTimer: (fn: () => void, ms: number) => () => void

  constructor (private readonly sizes: LaneSizes, private readonly settings: SessionSettings, private readonly capacity: number, private readonly options: WorkerPoolOptions = {}) {
    this.start = options.startWorker ?? startWorker
    this.setTimer = options.setTimer ?? ((fn, ms) => {
      const t = setTimeout(fn, ms)
      return () => clearTimeout(t)
    })
    const { wide } = options
    // wide runs and work lent to a worker (`lend`) both go by the cores other processes leave free
    if (wide?.freeCores === undefined) this.idleCores = new IdleCores()
    this.freeCores = wide?.freeCores ?? (() => this.idleCores?.cores ?? 0)
    this.slots = [
      ...Array.from({ length: sizes.short }, () => this.spawn('short')),
      ...Array.from({ length: sizes.long }, () => this.spawn('long'))
    ]
  }

  available (lane: Lane = 'short'): number {
    const served = this.servedBy(lane)
    return this.slots.filter(s => s.lane === served && s.ready && !s.busy).length
  }

  /** `listener` runs whenever a worker becomes ready: a new one, or a replacement. */
  onCapacity (listener: () => void): void { this.capacityListeners.push(listener) }

  /**
   * Posts `message` to an idle worker of the short lane, for work beside the kernels (the second
   * half of a large body, read ahead: src/tensor/rows-ahead.ts), when nothing waits for a worker
   * and other processes leave a core free for it (as for wide runs); false when none can take
   * it now. The worker answers through shared memory, not by a reply.
   */
  lend (message: unknown): boolean {
    const slot = this.lendable()
    slot?.worker.postMessage(message)
    return slot !== undefined
  }

  /** Whether `lend` would post a message now. */
  canLend (): boolean { return this.lendable() !== undefined }

  private lendable (): Slot | undefined {
    if (this.closing || this.overrun.size > 0 || (this.options.queued?.() ?? 0) > 0 || this.freeCores() < 1.5) return undefined
    return this.slots.find(s => s.lane === 'short' && s.ready && !s.busy && s.state === 'live')
  }

  /** Threads still computing an abandoned kernel. */
  get overrunning (): number { return this.overrun.size }

  threadsInKernels (): number {
    return this.slots.filter(s => s.busy && s.state === 'live').length + this.overrun.size
  }

  async run (key: string, model: () => Uint8Array, feeds: KernelTensors, options: RunOptions = {}): Promise<KernelTensors> {
    const lane = this.servedBy(options.lane ?? 'short')
    const idle = this.slots.filter(s => s.lane === lane && s.ready && !s.busy)
    let slot = idle.find(s => s.knows.has(key)) ?? idle[0]
    if (slot === undefined) throw new Error(`no idle kernel worker in the ${lane} lane (the batcher checks available() first)`)
    slot.busy = true
    const bytes = tensorBytes(feeds)
    this.inFlight += bytes
    if (this.runsInline(options.cost) && this.inlineBuilt(key, model)) {
      // the call holds the worker's place, so that calls arriving meanwhile queue (and batch)
      try { return await this.runInline(key, model, feeds) } finally {
        latest(slot).busy = false
        this.inFlight -= bytes
      }
    }
    const wide = this.runsWide(options.cost, slot)
    let timedOut = false
    const { timeoutMs } = options
    const cancel = timeoutMs !== undefined && Number.isFinite(timeoutMs)
      ? this.setTimer(() => {
        timedOut = true
        this.abandon(latest(slot as Slot), `a kernel ran past its time limit of ${Math.round(timeoutMs)} ms`)
      }, Math.max(0, timeoutMs))
      : () => {}
    let sent = feeds
    try {
      for (let attempt = 1; ; attempt++) {
        const reply = await this.runOn(slot, key, model, sent, wide)
        if (reply.ok) {
          slot.knows.add(wide ? key + WIDE : key)
          return reply.outputs
        }
        if (!('lost' in reply)) throw new Error(reply.message)
        if (timedOut) throw new KernelTimeout(timeoutMs as number)
        if (slot.replacement === undefined) throw new LosshubError('WORKER_FAILED', `kernel worker failed: ${reply.lost}; retry`, 1)
        if (attempt === ATTEMPTS) throw new LosshubError('WORKER_FAILED', `kernel worker failed: ${reply.lost}, on a fresh worker too; retry`, 1)
        const gone = Object.values(sent).filter(t => !holds(t))
        if (gone.length > 0) {
          // its buffers went with the dead worker: make the feeds again, if they were not a request's own arrays
          if (options.rebuild === undefined || gone.some(t => t.source !== undefined)) {
            throw new LosshubError('WORKER_FAILED', `kernel worker failed: ${reply.lost}; the request's tensors went with it; retry`, 1)
          }
          sent = options.rebuild()
        }
        // the replacement was born reserved for this retry (see replace)
        slot = slot.replacement
      }
    } finally {
      cancel()
      latest(slot).busy = false
      this.inFlight -= bytes
    }
  }

  stats (): KernelStats {
    const index: Record<Lane, number> = { short: 0, long: 0 }
    const workers: KernelStats['workers'] = this.slots.map(s => {
      const name = `${s.lane}-${index[s.lane]++}`
      return s.stats === undefined
        ? { name, sessions: 0 }
        : { name, sessions: s.stats.sessions, heapUsedBytes: s.stats.heapUsedBytes, heapTotalBytes: s.stats.heapTotalBytes, externalBytes: s.stats.externalBytes }
    })
    if (this.inlineSessions !== undefined) workers.push({ name: 'inline', sessions: this.inlineSessions.size })
    return {
      workers,
      inFlightBytes: this.inFlight,
      abandoned: this.lost.abandoned,
      replaced: { died: this.lost.died, overran: this.lost.abandoned },
      overrunning: this.overrun.size
    }
  }

  async close (): Promise<void> {
    this.closing = true
    const grace = async (p: Promise<unknown>): Promise<void> => { await Promise.race([p, new Promise(resolve => setTimeout(resolve, 2000))]) }
    await Promise.all(this.slots.map(async s => {
      const closed = new Promise<void>(resolve => s.worker.on('message', (m: unknown) => { if (m === 'closed') resolve() }))
      s.worker.postMessage('close')
      await grace(closed)
      await s.worker.terminate()
    }))
    // an overrun thread closes itself when its kernel returns, and must not be terminated (nor
    // the process exit) before: wait for it (SHUTDOWN_TIMEOUT_MS bounds the whole shutdown)
    await Promise.all(this.ending)
    await this.inlineSessions?.close()
    this.idleCores?.close()
  }

  /** Whether wide sessions have more threads than the ordinary ones. */
  private widens (): boolean { return (this.options.wide?.threads ?? 0) > this.settings.intraOpNumThreads }

  /** Whether a call is tiny enough to run on the event loop: sooner than the hop to a worker, too short to hold up other requests. */
  private runsInline (cost: RunCost | undefined): boolean {
    const bound = this.options.inlineElements ?? 0
    return bound > 0 && cost !== undefined && cost.steps <= 1 && cost.elements <= bound
  }

  /**
   * Whether the event loop has its session for `key` built. The first tiny call of a kernel
   * starts building it and takes the hop meanwhile: the event loop holds sessions only for the
   * kernels that are called tiny, not a second copy of every kernel the workers hold.
   */
  private inlineBuilt (key: string, model: () => Uint8Array): boolean {
    // one thread: a tiny kernel gains nothing from more, and the event loop's process has no pool to spare
    this.inlineSessions ??= new SessionCache({ intraOpNumThreads: 1, interOpNumThreads: 1 }, this.capacity)
    if (this.inlineSessions.built(key)) return true
    // after this call is on its way: building a session takes the event loop for a moment
    setImmediate(() => this.inlineSessions?.load(key, model))
    return false
  }

  private async runInline (key: string, model: () => Uint8Array, feeds: KernelTensors): Promise<KernelTensors> {
    return fromOrt(await (this.inlineSessions as SessionCache).run(key, model, toOrt(feeds)))
  }

  /**
   * Whether a call runs on its kernel's wide session: it is large, the pool otherwise idle (no
   * other worker busy, no abandoned kernel still computing, nothing queued), and other
   * processes leave the cores free (more threads than free cores make a kernel slower, not
   * faster). Work that arrives while it runs shares the cores with it until it ends.
   */
  private runsWide (cost: RunCost | undefined, slot: Slot): boolean {
    const wide = this.options.wide
    if (wide === undefined || !this.widens() || cost === undefined || cost.elements < wide.elements) return false
    if (this.overrun.size > 0 || (this.options.queued?.() ?? 0) > 0 || this.slots.some(s => s !== slot && s.busy)) return false
    return this.freeCores() >= wide.threads - 0.5
  }

  /** The lane whose workers serve `lane`: long calls share the short workers when there are no long ones. */
  private servedBy (lane: Lane): Lane {
    return lane === 'long' && this.sizes.long > 0 ? 'long' : 'short'
  }

  private async runOn (slot: Slot, key: string, model: () => Uint8Array, feeds: KernelTensors, wide: boolean): Promise<Reply> {
    const reply = await this.send(slot, key, slot.knows.has(wide ? key + WIDE : key) ? undefined : model(), feeds, wide)
    // the worker handed the feeds back with its answer: they can go again
    if (!reply.ok && 'missingModel' in reply && reply.missingModel) return await this.send(slot, key, model(), feeds, wide)
    return reply
  }

  private async send (slot: Slot, key: string, model: Uint8Array | undefined, feeds: KernelTensors, wide: boolean): Promise<Reply> {
    if (slot.state !== 'live') return { ok: false, lost: 'the kernel worker is gone' }
    const id = this.nextId++
    const transfer = movable(feeds)
    const moving = new Set<ArrayBufferLike>(transfer)
    const handBack = Object.keys(feeds).filter(name => moving.has(feeds[name].data.buffer))
    const msg: WorkerRequest = { id, key, model, feeds: bare(feeds), handBack }
    if (wide) msg.wide = true
    return await new Promise<Reply>(resolve => {
      slot.pending.set(id, reply => {
        if ('inputs' in reply && reply.inputs !== undefined) restore(feeds, reply.inputs)
        resolve(reply)
      })
      try {
        slot.worker.postMessage(msg, transfer)
      } catch (err) {
        // nothing was sent (an array that cannot be cloned): the run's own failure
        slot.pending.delete(id)
        resolve({ id, ok: false, missingModel: false, message: `kernel inputs could not be sent to the worker: ${(err as Error).message}` })
      }
    })
  }

  private spawn (lane: Lane): Slot {
    const { wide } = this.options
    const data: WorkerData = { settings: this.settings, capacity: this.capacity }
    if (wide !== undefined && this.widens()) data.wide = { settings: { intraOpNumThreads: wide.threads, interOpNumThreads: 1, spin: false }, capacity: WIDE_SESSIONS }
    const slot: Slot = { worker: this.start(data), lane, busy: false, knows: new Set(), pending: new Map(), ready: false, state: 'live' }
    slot.worker.on('message', (reply: WorkerReply | 'closed' | 'ready') => {
      if (slot.state === 'overrun') {
        // the abandoned kernel has returned: the thread is back in JavaScript and may now end
        if (reply === 'closed') void slot.worker.terminate()
        else slot.worker.postMessage('close')
        return
      }
      if (reply === 'ready' && slot.state === 'live') {
        // kernels wait for a starting worker in the queue, where their deadlines keep running
        slot.ready = true
        this.capacityReturned()
        return
      }
      if (reply === 'closed' || reply === 'ready' || slot.state === 'gone') return
      if (reply.stats !== undefined) slot.stats = reply.stats
      slot.pending.get(reply.id)?.(reply)
      slot.pending.delete(reply.id)
    })
    // all three leave the thread dead or its replies unreadable: replace it
    slot.worker.on('error', err => this.replace(slot, `kernel worker thread failed (${err.message})`))
    slot.worker.on('messageerror', err => this.replace(slot, `a kernel worker reply could not be read (${err.message})`))
    slot.worker.on('exit', code => this.replace(slot, `kernel worker thread exited with code ${code}`))
    return slot
  }

  /**
   * Replaces a worker whose thread died (or whose reply could not be read, leaving it idle):
   * a fresh one takes its place, reserved for the retry of the run it carried, if any.
   */
  private replace (slot: Slot, reason: string): void {
    if (slot.state === 'gone') return
    if (slot.state === 'overrun') {
      // an abandoned kernel's thread has ended: its lane may take a worker it had to wait for
      slot.state = 'gone'
      this.overrun.delete(slot)
      this.fillVacancy(slot.lane)
      return
    }
    slot.state = 'gone'
    if (!this.closing) {
      this.lost.died++
      const fresh = this.spawn(slot.lane)
      fresh.busy = slot.busy
      slot.replacement = fresh
      this.slots[this.slots.indexOf(slot)] = fresh
      this.options.onWorkerLost?.(slot.lane, reason)
    }
    this.answerLost(slot, reason)
    this.end(slot.worker.terminate())
  }

  /** Gives up on a worker whose kernel overran: its run is answered now, its lane gets a fresh worker. */
  private abandon (slot: Slot, reason: string): void {
    if (slot.state !== 'live') return
    slot.state = 'overrun'
    this.lost.abandoned++
    this.overrun.add(slot)
    const i = this.slots.indexOf(slot)
    const finishing = [...this.overrun].filter(s => s.lane === slot.lane).length
    if (this.closing) this.slots.splice(i, 1)
    else if (finishing <= this.sizes[slot.lane]) this.slots[i] = this.spawn(slot.lane)
    else {
      this.slots.splice(i, 1)
      this.vacancies[slot.lane]++
    }
    this.options.onWorkerLost?.(slot.lane, reason)
    this.answerLost(slot, reason)
    this.end(new Promise(resolve => slot.worker.once('exit', resolve)))
  }

  private fillVacancy (lane: Lane): void {
    if (this.closing || this.vacancies[lane] === 0) return
    this.vacancies[lane]--
    this.slots.push(this.spawn(lane))
  }

  private capacityReturned (): void {
    if (!this.closing) for (const listener of this.capacityListeners) listener()
  }

  private answerLost (slot: Slot, reason: string): void {
    const waiting = [...slot.pending.values()]
    slot.pending.clear()
    for (const resolve of waiting) resolve({ ok: false, lost: reason })
  }

  /** Tracks a thread's end, for close(). */
  private end (ended: Promise<unknown>): void {
    const p = ended.catch(() => {})
    this.ending.add(p)
    void p.then(() => this.ending.delete(p))
  }
}

/** Whether a tensor's array holds its elements (it was not moved to a worker and lost with it). */
function holds (t: KernelTensor): boolean {
  return t.data.length === t.dims.reduce((n, d) => n * d, 1)
}

/** The slot that now stands where `slot` stood (itself while it lives). */
function latest (slot: Slot): Slot {
  let s = slot
  while (s.replacement !== undefined) s = s.replacement
  return s
}

/** Starts worker.js; from TypeScript sources (tests, scripts) through ts-node. */
function startWorker (workerData: unknown): Worker {
  const js = path.join(__dirname, 'worker.js')
  // execArgv []: a worker needs none of the parent's loaders or flags
  if (fs.existsSync(js)) return new Worker(js, { workerData, execArgv: [] })
  const ts = path.join(__dirname, 'worker.ts')
  return new Worker(`require('ts-node').register({ transpileOnly: true }); require(${JSON.stringify(ts)})`, { eval: true, workerData, execArgv: [] })
}

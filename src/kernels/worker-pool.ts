import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { LosshubError } from '../errors'
import { type Executor, KernelTimeout, type Lane, type RunOptions } from './executor'
import { type SessionSettings } from './session-cache'
import { type KernelTensors } from './tensors'
import { type WorkerReply, type WorkerRequest } from './worker'

/** Kernel worker threads per lane; with no long workers, long calls share the short ones. */
export interface LaneSizes { short: number, long: number }

/** Injection points: how a worker thread starts and how a run's time limit is timed (tests), and a log hook. */
export interface WorkerPoolOptions {
  startWorker?: (workerData: unknown) => Worker
  setTimer?: (fn: () => void, ms: number) => () => void
  /** Told whenever a worker is lost (its thread died, or its kernel overran) and replaced. */
  onWorkerLost?: (lane: Lane, reason: string) => void
}

/** What a run waits for: the worker's reply, or word that its worker is gone. */
type Reply = WorkerReply | { ok: false, lost: string }

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
}

/** Attempts of one run: the first, and one retry on a fresh worker when the first worker died. */
const ATTEMPTS = 2

/**
 * A fixed pool of kernel worker threads in two lanes, one kernel at a time each. Models are
 * built on the main thread and sent to a worker the first time it runs that kernel (and again
 * if it has evicted the session); inputs and outputs move as transferred buffers.
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
  private readonly start: (workerData: unknown) => Worker
  private readonly setTimer: (fn: () => void, ms: number) => () => void

  constructor (private readonly sizes: LaneSizes, private readonly settings: SessionSettings, private readonly capacity: number, private readonly options: WorkerPoolOptions = {}) {
    this.start = options.startWorker ?? startWorker
    this.setTimer = options.setTimer ?? ((fn, ms) => {
      const t = setTimeout(fn, ms)
      return () => clearTimeout(t)
    })
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

  /** Threads still computing an abandoned kernel. */
  get overrunning (): number { return this.overrun.size }

  async run (key: string, model: () => Uint8Array, feeds: KernelTensors, options: RunOptions = {}): Promise<KernelTensors> {
    const lane = this.servedBy(options.lane ?? 'short')
    const idle = this.slots.filter(s => s.lane === lane && s.ready && !s.busy)
    let slot = idle.find(s => s.knows.has(key)) ?? idle[0]
    if (slot === undefined) throw new Error(`no idle kernel worker in the ${lane} lane (the batcher checks available() first)`)
    slot.busy = true
    let timedOut = false
    const { timeoutMs } = options
    const cancel = timeoutMs !== undefined && Number.isFinite(timeoutMs)
      ? this.setTimer(() => {
        timedOut = true
        this.abandon(latest(slot as Slot), `a kernel ran past its time limit of ${Math.round(timeoutMs)} ms`)
      }, Math.max(0, timeoutMs))
      : () => {}
    try {
      for (let attempt = 1; ; attempt++) {
        const reply = await this.runOn(slot, key, model, feeds)
        if (reply.ok) {
          slot.knows.add(key)
          return reply.outputs
        }
        if (!('lost' in reply)) throw new Error(reply.message)
        if (timedOut) throw new KernelTimeout(timeoutMs as number)
        if (slot.replacement === undefined) throw new LosshubError('WORKER_FAILED', `kernel worker failed: ${reply.lost}; retry`, 1)
        if (attempt === ATTEMPTS) throw new LosshubError('WORKER_FAILED', `kernel worker failed: ${reply.lost}, on a fresh worker too; retry`, 1)
        // the replacement was born reserved for this retry (see replace)
        slot = slot.replacement
      }
    } finally {
      cancel()
      latest(slot).busy = false
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
  }

  /** The lane whose workers serve `lane`: long calls share the short workers when there are no long ones. */
  private servedBy (lane: Lane): Lane {
    return lane === 'long' && this.sizes.long > 0 ? 'long' : 'short'
  }

  private async runOn (slot: Slot, key: string, model: () => Uint8Array, feeds: KernelTensors): Promise<Reply> {
    const reply = await this.send(slot, key, slot.knows.has(key) ? undefined : model(), feeds)
    if (!reply.ok && 'missingModel' in reply && reply.missingModel) return await this.send(slot, key, model(), feeds)
    return reply
  }

  private async send (slot: Slot, key: string, model: Uint8Array | undefined, feeds: KernelTensors): Promise<Reply> {
    if (slot.state !== 'live') return { ok: false, lost: 'the kernel worker is gone' }
    const id = this.nextId++
    const msg: WorkerRequest = { id, key, model, feeds }
    // inputs are copied, not transferred: they may alias a request's decoded arguments,
    // which a retry (model missing, a dead worker, or a failed batch run member by member) needs again
    return await new Promise<Reply>(resolve => {
      slot.pending.set(id, resolve)
      slot.worker.postMessage(msg)
    })
  }

  private spawn (lane: Lane): Slot {
    const slot: Slot = { worker: this.start({ settings: this.settings, capacity: this.capacity }), lane, busy: false, knows: new Set(), pending: new Map(), ready: false, state: 'live' }
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

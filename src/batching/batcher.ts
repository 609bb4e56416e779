import { LosshubError } from '../errors'
import { batchFeeds, batchPlan, splitOutputs } from '../kernels/batch'
import { type Executor } from '../kernels/executor'
import { buildFeeds, buildModel, kernelKey } from '../kernels/kernel'
import { type PreparedCall } from '../kernels/prepare'
import { type KernelTensors } from '../kernels/tensors'
import { type BatchPolicy, decide } from './policy'

interface Pending {
  call: PreparedCall
  group: string
  elements: number
  arrivedUs: number
  resolve: (out: KernelTensors) => void
  reject: (err: Error) => void
  detach: () => void
}

/** What the batcher has done, for tests, logs and metrics. */
export interface BatchStats {
  runs: number
  requests: number
  /** Kernel runs by batch size. */
  sizes: Map<number, number>
  /** Requests dropped from the queue because their client went away. */
  abandoned: number
}

/** Called after every kernel run: its size, each member's queue wait, the run's duration. */
export type BatchObserver = (size: number, waitsSeconds: number[], runSeconds: number, kernel: string) => void

/** Injection points: the clock and timers (tests drive them by hand), and the observer. */
export interface BatcherOptions {
  clockUs?: () => number
  setTimer?: (fn: () => void, us: number) => () => void
  observer?: BatchObserver
}

/**
 * The dynamic batcher in front of the executor. Requests of the same batch group queue
 * together; whenever the executor has room, `decide` picks what runs (oldest ready group
 * first). A batch that fails is retried member by member, so one bad request fails alone.
 */
export class Batcher {
  readonly stats: BatchStats = { runs: 0, requests: 0, sizes: new Map(), abandoned: 0 }
  private readonly groups = new Map<string, Pending[]>()
  private waiting = 0
  private inFlight = 0
  private draining = false
  private idleWaiters: Array<() => void> = []
  private soloIds = 0

  private readonly clockUs: () => number
  private readonly setTimer: (fn: () => void, us: number) => () => void
  private readonly observer?: BatchObserver
  private cancelTimer: () => void = () => {}

  constructor (private readonly executor: Executor, private readonly policy: BatchPolicy, options: BatcherOptions = {}) {
    this.clockUs = options.clockUs ?? (() => performance.now() * 1000)
    this.setTimer = options.setTimer ?? ((fn, us) => {
      const t = setTimeout(fn, us / 1000)
      return () => clearTimeout(t)
    })
    this.observer = options.observer
  }

  /** Requests waiting in the queues. */
  get queued (): number { return this.waiting }

  /** Nothing queued and nothing running. */
  get idle (): boolean { return this.waiting === 0 && this.inFlight === 0 }

  /** Queues a call; resolves with its own outputs. Refuses at once when the queue is full. */
  async submit (call: PreparedCall, signal?: AbortSignal): Promise<KernelTensors> {
    if (this.draining) throw new LosshubError('SHUTTING_DOWN', 'draining: this instance is shutting down; retry', 1)
    if (this.waiting >= this.policy.maxQueue) {
      throw new LosshubError('OVERLOADED', `overloaded: ${this.waiting} requests are queued (QUEUE_MAX_REQUESTS); retry`, 1)
    }
    // nothing queued, a worker free and no delay to wait out: run at once, without even
    // working out a batch plan (a lone client pays nothing for batching)
    const alone = this.waiting === 0 && this.executor.available() > 0 && this.policy.maxDelayUs === 0
    const plan = this.policy.maxSize > 1 && !alone ? batchPlan(call) : undefined
    return await new Promise<KernelTensors>((resolve, reject) => {
      const item: Pending = {
        call,
        group: plan?.group ?? `solo:${this.soloIds++}`,
        elements: plan?.elements ?? 0,
        arrivedUs: this.clockUs(),
        resolve,
        reject,
        detach: () => {}
      }
      if (signal !== undefined) {
        const onAbort = (): void => this.abandon(item)
        signal.addEventListener('abort', onAbort, { once: true })
        item.detach = () => signal.removeEventListener('abort', onAbort)
      }
      this.enqueue(item, false)
      this.pump()
    })
  }

  /** Stops taking requests and resolves once every queued and running one is answered. */
  async drain (): Promise<void> {
    this.draining = true
    if (this.waiting === 0 && this.inFlight === 0) return
    await new Promise<void>(resolve => this.idleWaiters.push(resolve))
  }

  private enqueue (item: Pending, front: boolean): void {
    const q = this.groups.get(item.group) ?? []
    if (front) q.unshift(item)
    else q.push(item)
    this.groups.set(item.group, q)
    this.waiting++
  }

  private abandon (item: Pending): void {
    const q = this.groups.get(item.group)
    const i = q?.indexOf(item) ?? -1
    if (q === undefined || i < 0) return // already running: its answer is simply not read
    q.splice(i, 1)
    if (q.length === 0) this.groups.delete(item.group)
    this.waiting--
    this.stats.abandoned++
    item.reject(new LosshubError('INVALID_REQUEST', 'client went away before its turn'))
    this.settle()
  }

  /** Starts every run the policy allows while the executor has room. */
  private pump (): void {
    this.cancelTimer()
    while (this.executor.available() > 0 && this.waiting > 0) {
      const now = this.clockUs()
      let best: { group: string, count: number, oldest: number } | undefined
      let soonest = Infinity
      for (const [group, q] of this.groups) {
        const d = decide({ elements: q.map(p => p.elements), oldestUs: q[0].arrivedUs }, now, this.policy)
        if (!d.run) soonest = Math.min(soonest, d.waitUs)
        else if (best === undefined || q[0].arrivedUs < best.oldest) best = { group, count: d.count, oldest: q[0].arrivedUs }
      }
      if (best === undefined) {
        if (Number.isFinite(soonest)) this.cancelTimer = this.setTimer(() => this.pump(), Math.max(0, soonest))
        return
      }
      const q = this.groups.get(best.group) as Pending[]
      const items = q.splice(0, best.count)
      if (q.length === 0) this.groups.delete(best.group)
      this.waiting -= items.length
      void this.launch(items)
    }
  }

  private async launch (items: Pending[]): Promise<void> {
    this.inFlight++
    const start = this.clockUs()
    const calls = items.map(p => p.call)
    const batched = items.length > 1
    const key = kernelKey(calls[0], batched)
    try {
      const out = await this.executor.run(key, () => buildModel(calls[0], batched), batched ? batchFeeds(calls) : buildFeeds(calls[0]))
      const shares = batched ? splitOutputs(calls, out) : [out]
      items.forEach((p, i) => { p.detach(); p.resolve(shares[i]) })
    } catch (err) {
      if (batched) {
        // retry each member alone, ahead of newer requests: only a bad one fails
        for (const p of items.reverse()) {
          p.group = `solo:${this.soloIds++}`
          this.enqueue(p, true)
        }
      } else {
        items[0].detach()
        items[0].reject(err as Error)
      }
    } finally {
      this.inFlight--
      const end = this.clockUs()
      this.stats.runs++
      this.stats.requests += items.length
      this.stats.sizes.set(items.length, (this.stats.sizes.get(items.length) ?? 0) + 1)
      this.observer?.(items.length, items.map(p => (start - p.arrivedUs) / 1e6), (end - start) / 1e6, calls[0].def.name)
      this.pump()
      this.settle()
    }
  }

  private settle (): void {
    if (this.waiting === 0 && this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
  }
}

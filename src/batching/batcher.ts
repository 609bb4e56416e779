import { LosshubError } from '../errors'
import { type Executor, KernelTimeout, type Lane } from '../kernels/executor'
import { type PreparedCall } from '../kernels/prepare'
import { type KernelTensors } from '../kernels/tensors'
import { type Departure } from './departure'
import { type BatchKernels, preparedKernels } from './kernels'
import { admitsBytes, type BatchPolicy, decide, laneOf } from './policy'

interface Pending<C> {
  call: C
  group: string
  lane: Lane
  elements: number
  /** Decoded argument bytes it holds while queued. */
  bytes: number
  arrivedUs: number
  /** When it must have been answered (arrival + the policy's timeout; Infinity: never). */
  deadlineUs: number
  /** What set the deadline, for the DEADLINE_EXCEEDED message. */
  deadlineName: string
  resolve: (out: KernelTensors) => void
  reject: (err: Error) => void
  detach: () => void
  /** Answered while its kernel still runs (past its deadline, or refused at shutdown). */
  answered?: boolean
}

/** A request's own deadline, `us` after it is queued, and what set it (a setting, a parameter). */
export interface Deadline { us: number, name: string }

/** What the batcher has done, for tests, logs and metrics. */
export interface BatchStats {
  runs: number
  requests: number
  /** Kernel runs by batch size. */
  sizes: Map<number, number>
  /** Requests dropped from the queue because their client went away. */
  abandoned: number
  /** Requests answered DEADLINE_EXCEEDED, in the queue or in a kernel abandoned at their deadline. */
  timedOut: number
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
 * The dynamic batcher in front of the executor, for calls of type `C` whose kernels it reaches
 * through `kernels`. Requests of the same batch group queue together; whenever the executor
 * has room in a group's lane, `decide` picks what runs (oldest ready group first). A batch that
 * fails is retried member by member, so one bad request fails alone. Every request has a
 * deadline (`timeoutUs` after submission): past it, it leaves the queue, or is answered while
 * its kernel runs on for its batch mates, with DEADLINE_EXCEEDED; a kernel is abandoned once
 * every member of its batch is past its deadline.
 */
export class DynamicBatcher<C> {
  readonly stats: BatchStats = { runs: 0, requests: 0, sizes: new Map(), abandoned: 0, timedOut: 0 }
  private readonly groups = new Map<string, Array<Pending<C>>>()
  private waiting = 0
  private queuedBytes = 0
  private inFlight = 0
  private draining = false
  private idleWaiters: Array<() => void> = []
  private soloIds = 0
  /** What answers the members of each batch running now (one function a batch: a set of the members themselves cost some 40 MiB of resident memory under load). */
  private readonly running = new Set<(err: LosshubError) => void>()

  private readonly clockUs: () => number
  private readonly setTimer: (fn: () => void, us: number) => () => void
  private readonly observer?: BatchObserver
  private cancelTimer: () => void = () => {}

  constructor (private readonly executor: Executor, private readonly policy: BatchPolicy, private readonly kernels: BatchKernels<C>, options: BatcherOptions = {}) {
    this.clockUs = options.clockUs ?? (() => performance.now() * 1000)
    this.setTimer = options.setTimer ?? ((fn, us) => {
      const t = setTimeout(fn, us / 1000)
      return () => clearTimeout(t)
    })
    this.observer = options.observer
    executor.onCapacity?.(() => this.pump())
  }

  /** Requests waiting in the queues. */
  get queued (): number { return this.waiting }

  /** Nothing queued and nothing running. */
  get idle (): boolean { return this.waiting === 0 && this.inFlight === 0 }

  /** Bytes of decoded arguments waiting in the queues. */
  get queuedArgumentBytes (): number { return this.queuedBytes }

  /**
   * Queues a call; resolves with its own outputs. Refuses at once when the queue is full.
   * `deadline` overrides the policy's (REQUEST_TIMEOUT_MS): a shorter one the client asked for,
   * named for the message when it passes; Infinity for the warm-up, which starts the workers.
   */
  async submit (call: C, signal?: Departure, deadline?: Deadline): Promise<KernelTensors> {
    const timeoutUs = deadline?.us ?? this.policy.timeoutUs ?? Infinity
    const deadlineName = deadline?.name ?? 'REQUEST_TIMEOUT_MS'
    if (this.draining) throw new LosshubError('SHUTTING_DOWN', 'draining: this instance is shutting down; retry', 1)
    if (this.waiting >= this.policy.maxQueue) {
      throw new LosshubError('OVERLOADED', `overloaded: ${this.waiting} requests are queued (QUEUE_MAX_REQUESTS); retry`, 1)
    }
    const cost = this.kernels.cost(call)
    const bytes = cost?.bytes ?? 0
    if (!admitsBytes(this.waiting, this.queuedBytes, bytes, this.policy)) {
      throw new LosshubError('OVERLOADED', `overloaded: ${mib(this.queuedBytes)} MiB of arguments are queued and this request brings ${mib(bytes)} MiB (QUEUE_MAX_MB); retry`, 1)
    }
    const lane = laneOf(cost, this.policy.lanes)
    // nothing queued, a worker free and no delay to wait out: run at once, without even
    // working out a batch plan (a lone client pays nothing for batching)
    const alone = this.waiting === 0 && this.executor.available(lane) > 0 && this.policy.maxDelayUs === 0
    const plan = this.policy.maxSize > 1 && !alone ? this.kernels.plan(call) : undefined
    const arrivedUs = this.clockUs()
    return await new Promise<KernelTensors>((resolve, reject) => {
      const item: Pending<C> = {
        call,
        // a group is one lane's: calls of one kernel may differ in size, and so in lane
        group: plan !== undefined ? `${lane}|${plan.group}` : `solo:${this.soloIds++}`,
        lane,
        elements: plan?.elements ?? 0,
        bytes,
        arrivedUs,
        deadlineUs: arrivedUs + timeoutUs,
        deadlineName,
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

  /**
   * Answers `err` to every request queued or running (their kernels run on, unread): the last
   * word of a shutdown that ran out of time, so that no client is left without an answer.
   */
  refuseAll (err: LosshubError): void {
    for (const group of [...this.groups.keys()]) {
      for (const p of this.dequeue(group, Infinity)) {
        p.detach()
        p.reject(err)
      }
    }
    for (const refuse of [...this.running]) refuse(err)
    this.settle()
  }

  private enqueue (item: Pending<C>, front: boolean): void {
    const q = this.groups.get(item.group) ?? []
    if (front) q.unshift(item)
    else q.push(item)
    this.groups.set(item.group, q)
    this.waiting++
    this.queuedBytes += item.bytes
  }

  /** Takes the first `count` requests of a group's queue out of the queues. */
  private dequeue (group: string, count: number): Array<Pending<C>> {
    const q = this.groups.get(group) as Array<Pending<C>>
    const items = q.splice(0, count)
    if (q.length === 0) this.groups.delete(group)
    this.waiting -= items.length
    for (const p of items) this.queuedBytes -= p.bytes
    return items
  }

  private abandon (item: Pending<C>): void {
    const q = this.groups.get(item.group)
    const i = q?.indexOf(item) ?? -1
    if (q === undefined || i < 0) return // already running: its answer is simply not read
    q.splice(i, 1)
    if (q.length === 0) this.groups.delete(item.group)
    this.waiting--
    this.queuedBytes -= item.bytes
    this.stats.abandoned++
    item.reject(new LosshubError('INVALID_REQUEST', 'client went away before its turn'))
    this.settle()
  }

  /** Answers DEADLINE_EXCEEDED to every queued request past its deadline; returns the next deadline. */
  private expire (now: number): number {
    let next = Infinity
    for (const [group, q] of [...this.groups]) {
      for (const p of q) if (p.deadlineUs > now) next = Math.min(next, p.deadlineUs)
      const overdue = q.filter(p => p.deadlineUs <= now)
      if (overdue.length === 0) continue
      this.groups.set(group, q.filter(p => p.deadlineUs > now))
      if (this.groups.get(group)?.length === 0) this.groups.delete(group)
      this.waiting -= overdue.length
      for (const p of overdue) {
        this.queuedBytes -= p.bytes
        this.stats.timedOut++
        p.detach()
        p.reject(new LosshubError('DEADLINE_EXCEEDED', `deadline exceeded: waited ${ms(now - p.arrivedUs)} ms in the queue, past ${p.deadlineName} (${ms(p.deadlineUs - p.arrivedUs)} ms); the service is busy, retry later`))
      }
    }
    this.settle()
    return next
  }

  /**
   * Starts every run the policy allows while the executor has room in the group's lane, and
   * sets a timer for the next thing due: a batch delay running out or a queued deadline.
   */
  private pump (): void {
    this.cancelTimer()
    const nextDeadline = this.expire(this.clockUs())
    while (this.waiting > 0) {
      const now = this.clockUs()
      let best: { group: string, count: number, oldest: number } | undefined
      let soonest = nextDeadline - now
      for (const [group, q] of this.groups) {
        if (this.executor.available(q[0].lane) === 0) continue // its lane's workers are busy: a run ending pumps again
        const d = decide({ elements: q.map(p => p.elements), oldestUs: q[0].arrivedUs }, now, this.policy)
        if (!d.run) soonest = Math.min(soonest, d.waitUs)
        else if (best === undefined || q[0].arrivedUs < best.oldest) best = { group, count: d.count, oldest: q[0].arrivedUs }
      }
      if (best === undefined) {
        if (Number.isFinite(soonest)) this.cancelTimer = this.setTimer(() => this.pump(), Math.max(0, soonest))
        return
      }
      void this.launch(this.dequeue(best.group, best.count))
    }
  }

  private async launch (items: Array<Pending<C>>): Promise<void> {
    this.inFlight++
    const start = this.clockUs()
    const calls = items.map(p => p.call)
    const batched = items.length > 1
    const run = this.kernels.run(calls)
    // the run may last until its last member's deadline (the queue let none through past its
    // own); a member due sooner is answered at its deadline while the kernel runs on for the
    // others: one client's short deadline abandons no other client's work
    let deadlineUs = -Infinity
    for (const p of items) deadlineUs = Math.max(deadlineUs, p.deadlineUs)
    const timeoutMs = Number.isFinite(deadlineUs) ? Math.max(0, deadlineUs - start) / 1000 : undefined
    const refuse = (err: LosshubError): void => {
      for (const p of items) {
        if (p.answered === true) continue
        p.answered = true
        p.detach()
        p.reject(err)
      }
    }
    this.running.add(refuse)
    const overdue = (p: Pending<C>, abandoned: boolean): void => {
      p.answered = true
      p.detach()
      this.stats.timedOut++
      p.reject(new LosshubError('DEADLINE_EXCEEDED', `deadline exceeded: ${p.deadlineName} (${ms(p.deadlineUs - p.arrivedUs)} ms) passed after ${ms(start - p.arrivedUs)} ms in the queue and ${ms(this.clockUs() - start)} ms in the kernel${abandoned ? ', which was abandoned' : ''}; a smaller request (fewer frames or elements) takes less`))
    }
    // one timer a batch, at the soonest deadline of a member still waiting (before the run's own)
    let cancelTimer = (): void => {}
    const armTimer = (): void => {
      let due = Infinity
      for (const p of items) if (p.answered !== true && p.deadlineUs < Math.min(due, deadlineUs)) due = p.deadlineUs
      if (due === Infinity) return
      cancelTimer = this.setTimer(() => {
        const now = this.clockUs()
        for (const p of items) if (p.answered !== true && p.deadlineUs <= now) overdue(p, false)
        armTimer()
      }, Math.max(0, due - this.clockUs()))
    }
    armTimer()
    try {
      const out = await this.executor.run(run.key, run.model, run.feeds(), { lane: items[0].lane, timeoutMs, cost: run.cost, rebuild: run.feeds })
      const shares = batched ? this.kernels.split(calls, out) : [out]
      items.forEach((p, i) => { if (p.answered !== true) { p.detach(); p.resolve(shares[i]) } })
    } catch (err) {
      if (err instanceof KernelTimeout) {
        // abandoned at the last member's deadline: every member still waiting is past its own
        for (const p of items) if (p.answered !== true) overdue(p, true)
      } else if (batched) {
        // retry each member still waiting alone, ahead of newer requests: only a bad one fails
        for (const p of items.reverse()) {
          if (p.answered === true) continue
          p.group = `solo:${this.soloIds++}`
          this.enqueue(p, true)
        }
      } else if (items[0].answered !== true) {
        items[0].detach()
        items[0].reject(err as Error)
      }
    } finally {
      cancelTimer()
      this.running.delete(refuse)
      this.inFlight--
      const end = this.clockUs()
      this.stats.runs++
      this.stats.requests += items.length
      this.stats.sizes.set(items.length, (this.stats.sizes.get(items.length) ?? 0) + 1)
      this.observer?.(items.length, items.map(p => (start - p.arrivedUs) / 1e6), (end - start) / 1e6, run.name)
      this.pump()
      this.settle()
    }
  }

  private settle (): void {
    if (this.waiting === 0 && this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve()
  }
}

/** The service's batcher: of prepared loss calls, whose kernels src/kernels builds and runs. */
export class Batcher extends DynamicBatcher<PreparedCall> {
  constructor (executor: Executor, policy: BatchPolicy, options: BatcherOptions = {}) {
    super(executor, policy, preparedKernels, options)
  }
}

const ms = (us: number): number => Math.round(us / 1000)
const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)

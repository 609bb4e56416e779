import { type Lane } from '../kernels/executor'
import { type Cost } from '../kernels/prepare'

/** The dynamic batcher's policy, as data (Triton's dynamic_batching, plus an element cap). */
export interface BatchPolicy {
  /** Most requests in one kernel run; 1 turns batching off. */
  maxSize: number
  /** Most elements in one kernel run, each member counted by its working size (a large request still runs, alone). */
  maxElements: number
  /** How long the oldest request may wait for others while a kernel worker is free; 0: never wait. */
  maxDelayUs: number
  /** Most requests waiting in all queues; past it a request is refused at once (503). */
  maxQueue: number
  /**
   * Most bytes of decoded arguments waiting in all queues; past it a request is refused at
   * once (503), unless nothing waits (a request is never refused for its size alone). Absent: no bound.
   */
  maxQueueBytes?: number
  /** How long a request may take from submission to answer, queueing plus kernel; absent: no limit. */
  timeoutUs?: number
  /** Which kernel worker lane each call runs in; absent: all in the short lane. */
  lanes?: LanePolicy
}

/**
 * When a call is long: it then runs in the long lane (its own kernel worker), so that it never
 * holds the worker small requests wait for. Either measure alone makes a call long; 0 turns
 * that measure off. Sequential steps are what makes ctc slow (tens of microseconds per frame
 * whatever its size), elements what makes a plain elementwise loss slow.
 * The lanes are strict both ways: short calls do not borrow an idle long worker either, so a
 * long call never waits for them, and the short lane batches as it did alone (more threads than
 * CPUs would add no throughput, only split batches).
 */
export interface LanePolicy {
  /** Sequential steps (a Scan's iterations: ctc's T) from which a call is long. */
  longSteps: number
  /** Elements of the call's largest tensor from which a call is long. */
  longElements: number
}

/** The lane of a call by its cost; a call without a cost (built by hand) is short. */
export function laneOf (cost: Partial<Cost> | undefined, policy: LanePolicy | undefined): Lane {
  if (policy === undefined || cost === undefined) return 'short'
  const over = (value: number | undefined, threshold: number): boolean => threshold > 0 && value !== undefined && value >= threshold
  return over(cost.steps, policy.longSteps) || over(cost.elements, policy.longElements) ? 'long' : 'short'
}

/** What one group's queue looks like to the policy. */
export interface QueueView {
  /** Elements of each waiting request, oldest first. */
  elements: readonly number[]
  /** When the oldest request arrived (microseconds, the batcher's clock). */
  oldestUs: number
}

/** Run the first `count` requests now, or look again in `waitUs`. */
export type Decision = { run: true, count: number } | { run: false, waitUs: number }

/**
 * The whole flush decision: run now if the batch is full (by count or elements), if the next
 * request cannot join, or if the oldest request has waited `maxDelayUs`; else wait the rest.
 */
export function decide (queue: QueueView, nowUs: number, policy: BatchPolicy): Decision {
  let count = 0
  let elements = 0
  for (const e of queue.elements) {
    if (count === policy.maxSize || (count > 0 && elements + e > policy.maxElements)) break
    count++
    elements += e
  }
  if (count === 0) return { run: false, waitUs: Infinity }
  const full = count === policy.maxSize || count < queue.elements.length || elements >= policy.maxElements
  const waited = nowUs - queue.oldestUs
  if (full || waited >= policy.maxDelayUs) return { run: true, count }
  return { run: false, waitUs: policy.maxDelayUs - waited }
}

/** Whether a request of `bytes` may join a queue holding `queuedBytes` in `waiting` requests. */
export function admitsBytes (waiting: number, queuedBytes: number, bytes: number, policy: BatchPolicy): boolean {
  return waiting === 0 || queuedBytes + bytes <= (policy.maxQueueBytes ?? Infinity)
}

/** The dynamic batcher's policy, as data (Triton's dynamic_batching, plus an element cap). */
export interface BatchPolicy {
  /** Most requests in one kernel run; 1 turns batching off. */
  maxSize: number
  /** Most batch-argument elements in one kernel run (a large request still runs, alone). */
  maxElements: number
  /** How long the oldest request may wait for others while a kernel worker is free; 0: never wait. */
  maxDelayUs: number
  /** Most requests waiting in all queues; past it a request is refused at once (503). */
  maxQueue: number
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

import client from 'prom-client'
import { type KernelStats } from './executor'

/** What the kernel metrics read at scrape time. */
export interface KernelMetricsSource {
  /** The executor's sessions, memory and losses (undefined: an executor that keeps none). */
  executor: () => KernelStats | undefined
  /** Requests answered DEADLINE_EXCEEDED so far, in the queue or in an abandoned kernel. */
  deadlineExceeded: () => number
  /** Bytes of decoded arguments waiting in the queue. */
  queuedBytes: () => number
}

/**
 * Registers the kernels' memory and losses on `registry`: sessions and V8 heap per kernel
 * worker, bytes queued and in kernels, deadline-exceeded requests, abandoned kernels and
 * replaced workers. All are read from `source` when scraped.
 */
export function registerKernelMetrics (registry: client.Registry, source: KernelMetricsSource): void {
  const registers = [registry]
  const stats = (): KernelStats => source.executor() ?? { workers: [], inFlightBytes: 0, abandoned: 0, replaced: { died: 0, overran: 0 }, overrunning: 0 }
  /* eslint-disable no-new */
  new client.Gauge({
    name: 'losshub_kernel_sessions',
    help: 'ONNX Runtime sessions cached, by kernel worker (short-0, long-0, ...; inline: on the event loop); a worker tells its count with each answer.',
    labelNames: ['worker'] as const,
    registers,
    collect () {
      this.reset()
      for (const w of stats().workers) this.set({ worker: w.name }, w.sessions)
    }
  })
  new client.Gauge({
    name: 'losshub_kernel_worker_heap_bytes',
    help: 'V8 heap of each kernel worker thread as of its last answer: used, total (reserved) and external (ArrayBuffers and other memory V8 is told of; ONNX Runtime\'s own is only in the process resident set).',
    labelNames: ['worker', 'kind'] as const,
    registers,
    collect () {
      this.reset()
      for (const w of stats().workers) {
        if (w.heapUsedBytes !== undefined) this.set({ worker: w.name, kind: 'used' }, w.heapUsedBytes)
        if (w.heapTotalBytes !== undefined) this.set({ worker: w.name, kind: 'total' }, w.heapTotalBytes)
        if (w.externalBytes !== undefined) this.set({ worker: w.name, kind: 'external' }, w.externalBytes)
      }
    }
  })
  new client.Gauge({ name: 'losshub_kernel_inflight_bytes', help: 'Bytes of the inputs of the kernels running now.', registers, collect () { this.set(stats().inFlightBytes) } })
  new client.Gauge({ name: 'losshub_queue_bytes', help: 'Bytes of decoded arguments waiting in the batcher (bounded by QUEUE_MAX_MB).', registers, collect () { this.set(source.queuedBytes()) } })
  new client.Gauge({ name: 'losshub_kernel_overrunning', help: 'Threads still computing a kernel abandoned at its time limit.', registers, collect () { this.set(stats().overrunning) } })
  // totals kept by the batcher and the pool, copied in at each scrape
  new client.Counter({ name: 'losshub_deadline_exceeded_total', help: 'Requests answered 504 DEADLINE_EXCEEDED, in the queue or in a kernel abandoned at their deadline.', registers, collect () { setTotal(this, source.deadlineExceeded()) } })
  new client.Counter({ name: 'losshub_kernels_abandoned_total', help: 'Kernels abandoned at their time limit (each one\'s worker was replaced).', registers, collect () { setTotal(this, stats().abandoned) } })
  new client.Counter({
    name: 'losshub_kernel_workers_replaced_total',
    help: 'Kernel workers replaced, by reason: died (the thread failed or exited) or overran (its kernel was abandoned).',
    labelNames: ['reason'] as const,
    registers,
    collect () {
      const { died, overran } = stats().replaced
      this.reset()
      this.inc({ reason: 'died' }, died)
      this.inc({ reason: 'overran' }, overran)
    }
  })
  /* eslint-enable no-new */
}

/** Sets a counter to a total counted elsewhere. */
function setTotal (counter: client.Counter, total: number): void {
  counter.reset()
  counter.inc(total)
}

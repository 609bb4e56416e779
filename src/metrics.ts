import client from 'prom-client'
import { type BatchObserver } from './batching/batcher'
import { type KernelMetricsSource, registerKernelMetrics } from './kernels/kernel-metrics'
import { KEPT_BODY_BYTES, keptMemoryBytes, SHARED_BODY_BYTES } from './http/body-memory'
import { type RowsAside } from './tensor/rows-ahead'

/**
 * The front door a loss evaluation came through: `loss` (POST /loss/{name}), `v2` (the Open
 * Inference Protocol over REST) or `grpc` (the Open Inference Protocol over gRPC).
 */
export type Protocol = 'loss' | 'v2' | 'grpc'

/** The service's Prometheus metrics, on a registry of its own (one per app). */
export interface Metrics {
  registry: client.Registry
  /** By protocol, loss and HTTP status (for gRPC, the HTTP status of the answer's error code: 200 when OK). */
  requests: client.Counter<'protocol' | 'loss' | 'status'>
  duration: client.Histogram<'protocol' | 'loss'>
  /** Feeds the batch, queue-wait and kernel-run histograms from the batcher. */
  observeBatch: BatchObserver
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Creates the metrics; `queueDepth`, `kernels` (memory, sessions and losses of the kernels) and `largeBodies` (src/http/body-admission.ts) are read at scrape time. */
export function createMetrics (
  queueDepth: () => number, kernels?: KernelMetricsSource, largeBodies?: () => { inProgress: number, waiting: number }, splitReads?: RowsAside['outcomes']
): Metrics {
  const registry = new client.Registry()
  client.collectDefaultMetrics({ register: registry })
  if (kernels !== undefined) registerKernelMetrics(registry, kernels)
  const requests = new client.Counter({
    name: 'losshub_requests_total',
    help: 'Loss evaluations answered, by protocol (loss: POST /loss, v2: Open Inference Protocol REST, grpc: its gRPC), loss and HTTP status (gRPC: the HTTP status of its error code).',
    labelNames: ['protocol', 'loss', 'status'] as const,
    registers: [registry]
  })
  const duration = new client.Histogram({ name: 'losshub_request_duration_seconds', help: 'Time from request received to response sent, by protocol and loss.', labelNames: ['protocol', 'loss'] as const, buckets: LATENCY_BUCKETS, registers: [registry] })
  const batchSize = new client.Histogram({ name: 'losshub_batch_size', help: 'Requests per kernel run.', buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [registry] })
  const queueWait = new client.Histogram({ name: 'losshub_queue_wait_seconds', help: 'Time a request waited in the batcher before its kernel run started.', buckets: LATENCY_BUCKETS, registers: [registry] })
  const kernelRun = new client.Histogram({ name: 'losshub_onnx_run_duration_seconds', help: 'Duration of one ONNX Runtime kernel run (one batch), by loss.', labelNames: ['loss'] as const, buckets: LATENCY_BUCKETS, registers: [registry] })
  // eslint-disable-next-line no-new
  new client.Gauge({ name: 'losshub_queue_depth', help: 'Requests waiting in the batcher.', registers: [registry], collect () { this.set(queueDepth()) } })
  // eslint-disable-next-line no-new
  new client.Gauge({
    name: 'losshub_body_memory_kept_bytes',
    help: `Memory of request bodies kept for the next ones, by pool (local: JSON bodies, at most ${KEPT_BODY_BYTES} bytes; shared: binary bodies and large decoded tensors, read in place by kernel workers; shared_in_use: shared memory held by requests now; shared and shared_in_use together at most ${SHARED_BODY_BYTES} bytes).`,
    labelNames: ['pool'] as const,
    registers: [registry],
    collect () {
      const kept = keptMemoryBytes()
      this.set({ pool: 'local' }, kept.local)
      this.set({ pool: 'shared' }, kept.shared)
      this.set({ pool: 'shared_in_use' }, kept.sharedInUse)
    }
  })
  if (splitReads !== undefined) {
    // eslint-disable-next-line no-new
    new client.Counter({
      name: 'losshub_body_split_reads_total',
      help: 'Large tensors of JSON numbers (nested or flat) offered to be read on two threads (an idle kernel worker reads the second half), by outcome: read_ahead (its rows were taken in), read_here (the event loop read them after all: the worker had not begun or failed), declined (no idle worker or free core).',
      labelNames: ['outcome'] as const,
      registers: [registry],
      collect () {
        this.reset()
        this.inc({ outcome: 'read_ahead' }, splitReads.readAhead)
        this.inc({ outcome: 'read_here' }, splitReads.readHere)
        this.inc({ outcome: 'declined' }, splitReads.declined)
      }
    })
  }
  if (largeBodies !== undefined) {
    // eslint-disable-next-line no-new
    new client.Gauge({
      name: 'losshub_large_body_bytes',
      help: 'Bytes of large request bodies and gRPC messages (256 KiB or more) by state: in_progress (read, queued or evaluated; bounded by BODIES_IN_PROGRESS_MB) and waiting (not yet read, in their connections).',
      labelNames: ['state'] as const,
      registers: [registry],
      collect () {
        const bytes = largeBodies()
        this.set({ state: 'in_progress' }, bytes.inProgress)
        this.set({ state: 'waiting' }, bytes.waiting)
      }
    })
  }
  return {
    registry,
    requests,
    duration,
    observeBatch: (size, waits, runSeconds, loss) => {
      batchSize.observe(size)
      for (const w of waits) queueWait.observe(w)
      kernelRun.observe({ loss }, runSeconds)
    }
  }
}

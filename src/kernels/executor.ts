import * as ort from 'onnxruntime-node'
import { type PreparedCall } from './prepare'
import { type SessionCache } from './session-cache'
import { fromOrt, type KernelTensor, type KernelTensors, tensorBytes } from './tensors'
import { bytesOf, copyBytes } from '../tensor/copy-bytes'
import { type MemoryPool } from '../tensor/memory-pool'

/**
 * A class of kernel workers: `short` serves ordinary calls, `long` the calls whose cost marks
 * them as slow (src/batching/policy.ts, `laneOf`), so that a minute-long kernel never holds
 * the worker small requests wait for. An executor without long workers serves both on one.
 */
export type Lane = 'short' | 'long'

/** What one kernel run costs: its largest tensor's elements (summed over a batch's members) and its sequential steps. */
export interface RunCost { elements: number, steps: number }

/** How one kernel run is to be made: its lane, how long it may take before it is abandoned, what it costs. */
export interface RunOptions {
  lane?: Lane
  /** Milliseconds the run may take; past them the executor abandons it and throws KernelTimeout. */
  timeoutMs?: number
  /** The run's cost: whether it may skip the worker hop (tiny) or take idle cores (large). Unknown: neither. */
  cost?: RunCost
  /**
   * Makes the feeds again, for a retry on a fresh worker when the one holding the feeds died
   * (their buffers were moved to it, and went with it). Without it such a run is not retried.
   */
  rebuild?: () => KernelTensors
}

/** Memory and work of an executor, for GET /metrics. */
export interface KernelStats {
  /** Per kernel worker (`short-0`, `long-0`; `inline`: sessions on the event loop): cached sessions and the thread's V8 heap as of its last kernel. */
  workers: Array<{ name: string, sessions: number, heapUsedBytes?: number, heapTotalBytes?: number, externalBytes?: number }>
  /** Bytes of the inputs of the kernels running now. */
  inFlightBytes: number
  /** Kernels abandoned at their time limit (their workers replaced). */
  abandoned: number
  /** Workers replaced, by why: `died` (the thread failed or exited) or `overran` (its kernel was abandoned). */
  replaced: { died: number, overran: number }
  /** Threads still computing an abandoned kernel. */
  overrunning: number
}

/**
 * Where kernels run. The batcher hands a kernel over only while `available(lane)` is positive,
 * so an executor never queues: queueing (and batching) happens in front of it.
 */
export interface Executor {
  /** How many more kernels it can start now in `lane` (default short). */
  available: (lane?: Lane) => number
  /**
   * Runs kernel `key` (building its session from `model()` when it is new). The feeds' buffers
   * may be moved to another thread while it runs; they are readable again once it settles,
   * unless the worker died with them.
   */
  run: (key: string, model: () => Uint8Array, feeds: KernelTensors, options?: RunOptions) => Promise<KernelTensors>
  /** Subscribes to capacity coming back other than by a run ending (a worker started late). */
  onCapacity?: (listener: () => void) => void
  /** Its sessions, memory and losses so far. */
  stats?: () => KernelStats
  /**
   * Worker threads inside a kernel now (serving or abandoned). The process must not exit
   * through Node's teardown while any is: it stops worker threads, and onnxruntime-node aborts
   * the process when a kernel returns into a stopped one.
   */
  threadsInKernels?: () => number
  close: () => Promise<void>
}

/** A run abandoned at its `timeoutMs`: its worker was replaced (the thread ends once the kernel returns). */
export class KernelTimeout extends Error {
  constructor (readonly timeoutMs: number) {
    super(`kernel run abandoned after ${timeoutMs} ms`)
    this.name = 'KernelTimeout'
  }
}

/** The cost of running `calls` as one kernel: their elements summed, their steps at most; unknown if any call's is. */
export function runCost (calls: readonly PreparedCall[]): RunCost | undefined {
  let elements = 0
  let steps = 0
  for (const c of calls) {
    const cost = (c as { cost?: RunCost }).cost // calls built by hand (tests, tools) may have none
    if (cost === undefined) return undefined
    elements += cost.elements
    steps = Math.max(steps, cost.steps)
  }
  return { elements, steps }
}

/**
 * ORT input tensors from plain kernel tensors. onnxruntime-node refuses arrays over a
 * SharedArrayBuffer ("Invalid argument"): those are copied into memory of their own, from
 * `staging` when given (the caller gives it back after the run: see `stagedMemory`).
 */
export function toOrt (feeds: KernelTensors, staging?: MemoryPool<ArrayBuffer>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {}
  for (const [name, t] of Object.entries(feeds)) {
    const data = t.data.buffer instanceof SharedArrayBuffer ? copyOut(t.data, staging) : t.data
    out[name] = new ort.Tensor(t.type, data, t.dims)
  }
  return out
}

/** The memory `toOrt` took from its staging pool for `feeds`' shared arrays, to give back after the run. */
export function stagedMemory (feeds: KernelTensors, tensors: Record<string, ort.Tensor>): ArrayBuffer[] {
  return Object.keys(feeds).filter(name => feeds[name].data.buffer instanceof SharedArrayBuffer && name in tensors).map(name => (tensors[name].data as KernelTensor['data']).buffer as ArrayBuffer)
}

function copyOut (data: KernelTensor['data'], staging: MemoryPool<ArrayBuffer> | undefined): KernelTensor['data'] {
  if (staging === undefined) return data.slice()
  const Arr = data.constructor as new (memory: ArrayBuffer, offset: number, length: number) => KernelTensor['data']
  const copy = new Arr(staging.take(data.byteLength), 0, data.length)
  copyBytes(bytesOf(data), bytesOf(copy), 0)
  return copy
}

/**
 * Runs kernels on the event-loop thread, one at a time (ORT's `run` computes synchronously
 * there). For tests and KERNEL_WORKERS=0; the server default is the worker pool. It has one
 * slot for both lanes, and cannot abandon a kernel: a timeout is enforced only in the queue.
 */
export class InProcessExecutor implements Executor {
  private running = 0
  private inFlight = 0
  constructor (private readonly sessions: SessionCache) {}
  available (): number { return this.running === 0 ? 1 : 0 }
  async run (key: string, model: () => Uint8Array, feeds: KernelTensors): Promise<KernelTensors> {
    this.running++
    const bytes = tensorBytes(feeds)
    this.inFlight += bytes
    try { return fromOrt(await this.sessions.run(key, model, toOrt(feeds))) } finally {
      this.running--
      this.inFlight -= bytes
    }
  }

  stats (): KernelStats {
    return { workers: [{ name: 'inline', sessions: this.sessions.size }], inFlightBytes: this.inFlight, abandoned: 0, replaced: { died: 0, overran: 0 }, overrunning: 0 }
  }

  async close (): Promise<void> { await this.sessions.close() }
}

/**
 * A kernel worker thread: its own ONNX sessions, fed plain tensors by the pool in
 * worker-pool.ts (moved to it, not copied, and handed back when the run fails), so that kernels
 * never block the HTTP event loop.
 */
import { getHeapStatistics } from 'node:v8'
import { parentPort, workerData } from 'node:worker_threads'
import { SessionCache, type SessionSettings } from './session-cache'
import { stagedMemory, toOrt } from './executor'
import { fromOrt, type KernelTensors, movable } from './tensors'
import { ownMemory } from '../tensor/tensor'
import { MemoryPool } from '../tensor/memory-pool'
import { collectSoon, KEPT_IDLE_MS } from '../tensor/release-memory'
import { type RowsJob, runRowsJob } from '../tensor/rows-ahead'

/**
 * A kernel to run. `wide`: on the session with more intra-op threads (a large call while the
 * pool is otherwise idle). `handBack`: the feeds moved here, to be moved back if the run fails.
 */
export interface WorkerRequest { id: number, key: string, model?: Uint8Array, feeds: KernelTensors, wide?: boolean, handBack?: string[] }

/** What a worker holds, sent with every answer. */
export interface WorkerStats { sessions: number, heapUsedBytes: number, heapTotalBytes: number, externalBytes: number }

/** The answer to a request, with the inputs it hands back and the worker's stats. */
export type WorkerReply = (
  | { id: number, ok: true, outputs: KernelTensors }
  | { id: number, ok: false, missingModel: boolean, message: string }
) & { inputs?: KernelTensors, stats?: WorkerStats }

/** What a worker is started with: the sessions' settings, and the wide sessions' (absent: none). */
export interface WorkerData { settings: SessionSettings, capacity: number, wide?: { settings: SessionSettings, capacity: number } }

const { settings, capacity, wide } = workerData as WorkerData
const sessions = new SessionCache(settings, capacity)
const wideSessions = wide !== undefined ? new SessionCache(wide.settings, wide.capacity) : undefined
/**
 * Where inputs in shared memory (binary bodies, large decoded tensors) are copied for ORT, which
 * refuses them: memory reused from run to run (src/tensor/memory-pool.ts says why), up to 32 MiB.
 */
const staging = new MemoryPool<ArrayBuffer>(size => new ArrayBuffer(size), 32 * 2 ** 20, 256 * 2 ** 10).forgetWhenIdle(KEPT_IDLE_MS, collectSoon)

parentPort?.on('message', (msg: WorkerRequest | { rows: RowsJob } | 'close') => {
  if (msg === 'close') {
    void Promise.all([sessions.close(), wideSessions?.close()]).then(() => parentPort?.postMessage('closed'))
    return
  }
  // a body's rows read ahead while the event loop reads the rest (answered in shared memory)
  if ('rows' in msg) return runRowsJob(msg.rows)
  void handle(msg)
})
// a request that cannot be read cannot be answered (its id is in it): exit, and the pool
// answers the run it carried (src/kernels/worker-pool.ts retries it on a fresh worker)
parentPort?.on('messageerror', () => process.exit(1))
// ONNX Runtime is loaded: the pool may send kernels now
parentPort?.postMessage('ready')

async function handle ({ id, key, model, feeds, wide, handBack = [] }: WorkerRequest): Promise<void> {
  const cache = wide === true && wideSessions !== undefined ? wideSessions : sessions
  const inputs: KernelTensors = {}
  for (const name of handBack) {
    inputs[name] = feeds[name]
    // it came here whole (moved), views and all: it goes back the same way
    if (feeds[name].data.buffer instanceof ArrayBuffer) ownMemory(feeds[name].data.buffer)
  }
  // inputs go back only with a failure, which the pool may retry; after a success nothing
  // reads them, and sending them back would hand the event loop's heap a new allocation of
  // their size (for a large body, a garbage collection per request)
  const answer = (reply: WorkerReply, outputs: KernelTensors = {}): void => {
    const back = reply.ok ? {} : inputs
    reply.inputs = back
    reply.stats = stats()
    parentPort?.postMessage(reply, [...new Set([...movable(outputs), ...movable(back)])])
  }
  if (model === undefined && !cache.has(key)) {
    answer({ id, ok: false, missingModel: true, message: 'model needed' })
    return
  }
  let tensors: ReturnType<typeof toOrt> = {}
  try {
    tensors = toOrt(feeds, staging)
    const outputs = fromOrt(await cache.run(key, () => model as Uint8Array, tensors))
    answer({ id, ok: true, outputs }, outputs)
  } catch (err) {
    answer({ id, ok: false, missingModel: false, message: (err as Error).message })
  } finally {
    for (const memory of stagedMemory(feeds, tensors)) staging.give(memory)
  }
}

function stats (): WorkerStats {
  const heap = getHeapStatistics()
  return { sessions: sessions.size + (wideSessions?.size ?? 0), heapUsedBytes: heap.used_heap_size, heapTotalBytes: heap.total_heap_size, externalBytes: heap.external_memory }
}

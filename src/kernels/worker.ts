/**
 * A kernel worker thread: its own ONNX sessions, fed plain tensors (transferred, not
 * copied) by the pool in worker-pool.ts, so that kernels never block the HTTP event loop.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { SessionCache, type SessionSettings } from './session-cache'
import { toOrt } from './executor'
import { fromOrt, type KernelTensors } from './tensors'

export interface WorkerRequest { id: number, key: string, model?: Uint8Array, feeds: KernelTensors }
export type WorkerReply = { id: number, ok: true, outputs: KernelTensors } | { id: number, ok: false, missingModel: boolean, message: string }

const { settings, capacity } = workerData as { settings: SessionSettings, capacity: number }
const sessions = new SessionCache(settings, capacity)

parentPort?.on('message', (msg: WorkerRequest | 'close') => {
  if (msg === 'close') {
    void sessions.close().then(() => parentPort?.postMessage('closed'))
    return
  }
  void handle(msg)
})
// a request that cannot be read cannot be answered (its id is in it): exit, and the pool
// answers the run it carried (src/kernels/worker-pool.ts retries it on a fresh worker)
parentPort?.on('messageerror', () => process.exit(1))
// ONNX Runtime is loaded: the pool may send kernels now
parentPort?.postMessage('ready')

async function handle ({ id, key, model, feeds }: WorkerRequest): Promise<void> {
  if (model === undefined && !sessions.has(key)) {
    parentPort?.postMessage({ id, ok: false, missingModel: true, message: 'model needed' } satisfies WorkerReply)
    return
  }
  try {
    const outputs = fromOrt(await sessions.run(key, () => model as Uint8Array, toOrt(feeds)))
    const transfer = Object.values(outputs).map(t => t.data.buffer as ArrayBuffer)
    parentPort?.postMessage({ id, ok: true, outputs } satisfies WorkerReply, transfer)
  } catch (err) {
    parentPort?.postMessage({ id, ok: false, missingModel: false, message: (err as Error).message } satisfies WorkerReply)
  }
}

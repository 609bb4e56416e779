import fs from 'node:fs'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { type Executor } from './executor'
import { type SessionSettings } from './session-cache'
import { type KernelTensors } from './tensors'
import { type WorkerReply, type WorkerRequest } from './worker'

interface Slot { worker: Worker, busy: boolean, knows: Set<string>, pending: Map<number, (r: WorkerReply) => void> }

/**
 * A fixed pool of kernel worker threads, one kernel at a time each. Models are built on the
 * main thread and sent to a worker the first time it runs that kernel (and again if it has
 * evicted the session); inputs and outputs move as transferred buffers.
 */
export class WorkerPool implements Executor {
  private readonly slots: Slot[]
  private nextId = 0

  constructor (size: number, settings: SessionSettings, private readonly capacity: number) {
    this.slots = Array.from({ length: size }, () => this.spawn(settings))
  }

  available (): number { return this.slots.filter(s => !s.busy).length }

  async run (key: string, model: () => Uint8Array, feeds: KernelTensors): Promise<KernelTensors> {
    const slot = this.slots.find(s => !s.busy && s.knows.has(key)) ?? this.slots.find(s => !s.busy)
    if (slot === undefined) throw new Error('no idle kernel worker (the batcher checks available() first)')
    slot.busy = true
    try {
      let reply = await this.send(slot, key, slot.knows.has(key) ? undefined : model(), feeds)
      if (!reply.ok && reply.missingModel) reply = await this.send(slot, key, model(), feeds)
      if (!reply.ok) throw new Error(reply.message)
      slot.knows.add(key)
      return reply.outputs
    } finally {
      slot.busy = false
    }
  }

  async close (): Promise<void> {
    await Promise.all(this.slots.map(async s => {
      const closed = new Promise<void>(resolve => s.worker.once('message', () => resolve()))
      s.worker.postMessage('close')
      await Promise.race([closed, new Promise(resolve => setTimeout(resolve, 2000))])
      await s.worker.terminate()
    }))
  }

  private async send (slot: Slot, key: string, model: Uint8Array | undefined, feeds: KernelTensors): Promise<WorkerReply> {
    const id = this.nextId++
    const msg: WorkerRequest = { id, key, model, feeds }
    // inputs are copied, not transferred: they may alias a request's decoded arguments,
    // which a retry (model missing, or a failed batch run member by member) needs again
    return await new Promise<WorkerReply>(resolve => {
      slot.pending.set(id, resolve)
      slot.worker.postMessage(msg)
    })
  }

  private spawn (settings: SessionSettings): Slot {
    const slot: Slot = { worker: startWorker({ settings, capacity: this.capacity }), busy: false, knows: new Set(), pending: new Map() }
    slot.worker.on('message', (reply: WorkerReply | 'closed') => {
      if (reply === 'closed') return
      slot.pending.get(reply.id)?.(reply)
      slot.pending.delete(reply.id)
    })
    slot.worker.on('error', err => {
      // fail what it was doing; a fresh worker takes its place
      for (const resolve of slot.pending.values()) resolve({ id: -1, ok: false, missingModel: false, message: `kernel worker failed: ${err.message}` })
      slot.pending.clear()
      const fresh = this.spawn(settings)
      this.slots[this.slots.indexOf(slot)] = fresh
    })
    return slot
  }
}

/** Starts worker.js; from TypeScript sources (tests, scripts) through ts-node. */
function startWorker (workerData: unknown): Worker {
  const js = path.join(__dirname, 'worker.js')
  // execArgv []: a worker needs none of the parent's loaders or flags
  if (fs.existsSync(js)) return new Worker(js, { workerData, execArgv: [] })
  const ts = path.join(__dirname, 'worker.ts')
  return new Worker(`require('ts-node').register({ transpileOnly: true }); require(${JSON.stringify(ts)})`, { eval: true, workerData, execArgv: [] })
}

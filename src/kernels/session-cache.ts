import * as ort from 'onnxruntime-node'

/** ORT session options; threads are set per process by the config (see README). */
export interface SessionSettings {
  intraOpNumThreads: number
  interOpNumThreads: number
  /** Whether ORT's intra-op threads spin while they wait for work (its default); threads that share cores with other kernels should not. */
  spin?: boolean
}

interface Entry { session: Promise<ort.InferenceSession>, running: number, evicted: boolean, built: boolean }

/**
 * Sessions built once per kernel key and kept in LRU order, at most `capacity` of them, so
 * that odd requests (many ranks, many option combinations) cannot grow memory without bound.
 * An evicted session is released once its last run has finished.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>()
  constructor (private readonly settings: SessionSettings, private readonly capacity = 512) {}

  get size (): number { return this.entries.size }

  /** Whether a session for `key` is cached. */
  has (key: string): boolean { return this.entries.has(key) }

  /** Whether the session for `key` is built and ready to run. */
  built (key: string): boolean { return this.entries.get(key)?.built === true }

  /** Starts building the session for `key` from `model()`, unless it is cached or being built. */
  load (key: string, model: () => Uint8Array): void { this.acquire(key, model) }

  /** Runs the kernel `key`, building its session from `model()` on first use. */
  async run (key: string, model: () => Uint8Array, feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.OnnxValueMapType> {
    const entry = this.acquire(key, model)
    entry.running++
    try {
      const session = await entry.session
      return await session.run(feeds)
    } finally {
      entry.running--
      if (entry.evicted && entry.running === 0) void this.release(entry)
    }
  }

  /** Releases every session (shutdown). */
  async close (): Promise<void> {
    const all = [...this.entries.values()]
    this.entries.clear()
    await Promise.all(all.map(async e => await this.release(e)))
  }

  private acquire (key: string, model: () => Uint8Array): Entry {
    let entry = this.entries.get(key)
    if (entry !== undefined) {
      this.entries.delete(key) // re-insert: most recently used last
      this.entries.set(key, entry)
      return entry
    }
    const session = ort.InferenceSession.create(model(), {
      intraOpNumThreads: this.settings.intraOpNumThreads,
      interOpNumThreads: this.settings.interOpNumThreads,
      executionMode: 'sequential',
      // no arena and no per-shape memory plan: a large request's buffers go back to the
      // allocator when it ends, instead of staying reserved for a shape that may never return
      enableCpuMemArena: false,
      enableMemPattern: false,
      graphOptimizationLevel: 'all',
      ...(this.settings.spin === false ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {})
    })
    entry = { session, running: 0, evicted: false, built: false }
    const built = entry
    session.then(() => { built.built = true }, () => {})
    // a failed build is retried next time; by then an evicted entry's key may hold a newer one
    session.catch(() => { if (this.entries.get(key) === entry) this.entries.delete(key) })
    this.entries.set(key, entry)
    while (this.entries.size > this.capacity) {
      const [oldKey, old] = this.entries.entries().next().value as [string, Entry]
      this.entries.delete(oldKey)
      old.evicted = true
      if (old.running === 0) void this.release(old)
    }
    return entry
  }

  private async release (entry: Entry): Promise<void> {
    try { await (await entry.session).release() } catch { /* a session that failed to build has nothing to release */ }
  }
}

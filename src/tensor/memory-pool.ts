/**
 * Large buffers kept for reuse, up to a bound. On this project's VMs fresh memory pays a page
 * fault per 4 KiB touched (a 22 MB body took 13 ms to copy into fresh memory, under 2 ms into
 * memory touched before), and every fresh buffer counts towards the external memory that makes
 * V8 run a full garbage collection.
 */
export class MemoryPool<M extends ArrayBuffer | SharedArrayBuffer> {
  private readonly kept: M[] = []
  private keptBytes = 0
  private lastUse = 0
  private idle?: { ms: number, forgotten: (bytes: number) => void, timer?: NodeJS.Timeout }

  /**
   * @param allocate makes fresh memory of a size
   * @param bound most bytes kept; past it the oldest kept memory is left to the garbage collector
   * @param smallest smaller buffers are neither kept nor looked for: their pages are few
   */
  constructor (private readonly allocate: (size: number) => M, readonly bound: number, readonly smallest: number) {}

  /**
   * Forgets every kept buffer once `ms` pass with none taken or given back, and calls
   * `forgotten` with their bytes (release-memory.ts says why). One timer per idle spell, not per use.
   */
  forgetWhenIdle (ms: number, forgotten: (bytes: number) => void): this {
    this.idle = { ms, forgotten }
    return this
  }

  /** Memory of at least `size` bytes (uninitialised): the smallest kept buffer no more than twice as large, or a fresh one. */
  take (size: number): M {
    return this.find(size) ?? this.allocate(size)
  }

  /** The smallest kept buffer of at least `size` bytes and no more than twice that, taken out of the pool; undefined when none is. */
  find (size: number): M | undefined {
    if (size < this.smallest) return undefined
    this.lastUse = performance.now()
    let best = -1
    // of equally small ones, the latest given: its pages are the likeliest to be in cache
    for (let i = this.kept.length - 1; i >= 0; i--) {
      const n = this.kept[i].byteLength
      if (n >= size && n <= 2 * size && (best < 0 || n < this.kept[best].byteLength)) best = i
    }
    if (best < 0) return undefined
    const [memory] = this.kept.splice(best, 1)
    this.keptBytes -= memory.byteLength
    return memory
  }

  /** Forgets every kept buffer (left to the garbage collector); returns their bytes. */
  clear (): number {
    const bytes = this.keptBytes
    this.kept.length = 0
    this.keptBytes = 0
    return bytes
  }

  /**
   * Gives `memory` back for reuse; nothing may read or write it after this. The latest given
   * are kept: past the bound, the buffers given longest ago make room (left to the garbage
   * collector), so that when traffic changes size the pool follows it instead of staying full
   * of the old size while every new buffer is fresh. Returns the bytes forgotten: those made
   * room, or `memory` itself when it is not kept.
   */
  give (memory: M): number {
    if (this.kept.includes(memory)) return 0
    if (memory.byteLength < this.smallest || memory.byteLength > this.bound) return memory.byteLength
    let forgotten = 0
    while (this.keptBytes + memory.byteLength > this.bound) {
      const old = this.kept.shift() as M
      this.keptBytes -= old.byteLength
      forgotten += old.byteLength
    }
    this.kept.push(memory)
    this.keptBytes += memory.byteLength
    this.lastUse = performance.now()
    this.watchIdle()
    return forgotten
  }

  private watchIdle (): void {
    const idle = this.idle
    if (idle === undefined || idle.timer !== undefined) return
    const check = (): void => {
      const quiet = performance.now() - this.lastUse
      idle.timer = undefined
      if (this.keptBytes === 0) return
      if (quiet < idle.ms) {
        idle.timer = setTimeout(check, idle.ms - quiet).unref()
        return
      }
      idle.forgotten(this.clear())
    }
    idle.timer = setTimeout(check, idle.ms).unref()
  }

  /** Bytes kept for reuse now. */
  get bytes (): number { return this.keptBytes }
}

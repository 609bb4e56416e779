/**
 * Event-loop lag, measured by how late a periodic timer fires, averaged over consecutive
 * windows. The timer's own tick records a sample and then closes the window, so every window
 * holds at least one sample: a stall shows up as one sample as long as the stall, never as an
 * empty window. (A `monitorEventLoopDelay` histogram drops the first interval after each
 * reset, so a stall that starts just after a reset leaves the window empty, which
 * @fastify/under-pressure reads as an infinite delay.) The clock is passed in: tests drive it.
 */
export class EventLoopLag {
  private sum = 0
  private count = 0
  private windowStart: number
  private last: number
  /** Mean lag in ms over the last complete window; 0 until the first window closes. */
  delayMs = 0

  constructor (readonly periodMs: number, readonly windowMs: number, now: number) {
    this.windowStart = now
    this.last = now
  }

  /** Records the timer's tick at `now` (due `periodMs` after the previous one); returns true when it closed a window. */
  tick (now: number): boolean {
    this.sum += Math.max(0, now - this.last - this.periodMs)
    this.count++
    this.last = now
    if (now - this.windowStart < this.windowMs) return false
    this.delayMs = this.sum / this.count
    this.sum = 0
    this.count = 0
    this.windowStart = now
    return true
  }
}

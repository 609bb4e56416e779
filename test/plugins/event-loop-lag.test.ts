import t from 'tap'
import { EventLoopLag } from '../../src/plugins/event-loop-lag'

/** Ticks `lag` at each time in `times` and returns the delay after the last one. */
const run = (lag: EventLoopLag, times: number[]): number => { for (const now of times) lag.tick(now); return lag.delayMs }

t.test('a timer that fires on time: no lag; the delay is 0 until a window has closed', async t => {
  const lag = new EventLoopLag(10, 100, 0)
  t.equal(run(lag, [10, 20, 30]), 0)
  t.equal(lag.tick(95), false, 'not closed before the window has lasted 100 ms (this tick is 55 ms late)')
  t.equal(lag.delayMs, 0)
  t.equal(lag.tick(105), true, 'closed by the first tick at or after 100 ms past its start')
  t.equal(lag.delayMs, 55 / 5, 'the mean of the window\'s five samples (0, 0, 0, 55, 0)')
})

t.test('a stall longer than the window is one sample as long as the stall, not an infinite delay', async t => {
  const lag = new EventLoopLag(10, 1000, 0)
  // on time until 1000 (window closes), then a 1500 ms stall straight after the window closed
  run(lag, Array.from({ length: 100 }, (_, i) => (i + 1) * 10))
  t.equal(lag.delayMs, 0)
  t.equal(lag.tick(2510), true, 'the tick after the stall closes the window')
  t.equal(lag.delayMs, 1500, 'the window held that one sample: 1500 ms late')
  t.ok(Number.isFinite(lag.delayMs))
})

t.test('the delay is per window: once the loop keeps time again, the next window reads 0', async t => {
  const lag = new EventLoopLag(10, 100, 0)
  run(lag, [10, 20, 30, 40, 50, 60, 70, 80, 90, 300])
  t.equal(lag.delayMs, 200 / 10)
  t.equal(run(lag, Array.from({ length: 10 }, (_, i) => 310 + i * 10)), 0)
})

t.test('a short stall inside a long window is averaged with the window\'s other samples', async t => {
  const lag = new EventLoopLag(10, 1000, 0)
  // 50 ticks on time, then a 500 ms stall; the tick after it closes the window
  run(lag, [...Array.from({ length: 50 }, (_, i) => (i + 1) * 10), 1010])
  t.equal(lag.delayMs, 500 / 51, 'one sample of 500 among 51')
})

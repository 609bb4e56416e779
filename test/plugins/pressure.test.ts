import t from 'tap'
import { build, postLoss } from '../helpers/app'

const block = (ms: number): void => { const end = Date.now() + ms; while (Date.now() < end) { /* a stalled event loop */ } }

t.test('an event loop lagging past MAX_EVENT_LOOP_DELAY_MS sheds loss requests with 503 OVERLOADED; probes still answer', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 20 })
  t.equal((await postLoss(app, 'mse', { input: [1], target: [0] })).status, 200, 'served while healthy')
  let shed: Awaited<ReturnType<typeof postLoss>> | undefined
  for (let i = 0; i < 20 && shed?.status !== 503; i++) {
    block(300)
    await new Promise(resolve => setTimeout(resolve, 5))
    shed = await postLoss(app, 'mse', { input: [1], target: [0] })
  }
  t.equal(shed?.status, 503)
  t.equal(shed?.body.code, 'OVERLOADED')
  t.equal(shed?.headers['retry-after'], '1')
  t.match(shed?.body.message, /^overloaded \(eventLoopDelay at \d+\); retry/)
  t.equal((await app.inject('/healthz')).statusCode, 200, 'liveness is not shed')
})

t.test('bounds of 0 turn load shedding off', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0, maxRssMb: 0 })
  block(300)
  await new Promise(resolve => setTimeout(resolve, 5))
  t.equal((await postLoss(app, 'mse', { input: [1], target: [0] })).status, 200)
})

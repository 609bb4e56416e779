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
  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 503, 'readiness fails while shedding')
  t.equal(ready.json().code, 'OVERLOADED')
})

t.test('stalls shorter than the bound never shed, even when one fills a whole sampling window', async t => {
  // each stall outlasts the one-second window and starts just after the previous one ended, so
  // a window can hold no sample but the stall's own: that is a lag of ~1.5 s, not an infinite one
  const app = await build(t, { maxEventLoopDelayMs: 5000 })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    block(1500)
    await new Promise(resolve => setTimeout(resolve, 5))
    const r = await postLoss(app, 'mse', { input: [1], target: [0] })
    statuses.push(r.status)
    if (r.status !== 200) t.comment(r.body.message)
  }
  t.same(statuses, [200, 200, 200, 200])
  t.equal((await app.inject('/readyz')).statusCode, 200, 'and the instance stays ready')
})

t.test('a resident set above MAX_RSS_MB sheds POST loss requests only, with 503 OVERLOADED and Retry-After', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0, maxRssMb: 1 }) // any Node process is larger than 1 MiB
  const r = await postLoss(app, 'mse', { input: [1], target: [0] })
  t.equal(r.status, 503)
  t.equal(r.body.code, 'OVERLOADED')
  t.equal(r.headers['retry-after'], '1')
  t.match(r.body.message, /^overloaded \(rssBytes at \d+\); retry/)
  t.equal((await app.inject('/loss')).statusCode, 200, 'the catalog (GET) is answered')
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).json().code, 'OVERLOADED', 'readiness fails while shedding')
})

t.test('bounds of 0 turn load shedding off', async t => {
  const app = await build(t, { maxEventLoopDelayMs: 0, maxRssMb: 0 })
  block(300)
  await new Promise(resolve => setTimeout(resolve, 5))
  t.equal((await postLoss(app, 'mse', { input: [1], target: [0] })).status, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
})

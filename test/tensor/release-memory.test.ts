import path from 'node:path'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { collectSoon, collectWhenIdle } from '../../src/tensor/release-memory'

t.test('collectSoon runs a full garbage collection: memory nothing refers to is freed without other allocation', async t => {
  const freed = { yes: false }
  const registry = new FinalizationRegistry(() => { freed.yes = true })
  // old enough to need a full collection: it survives the young generation's
  ;(() => { registry.register(new ArrayBuffer(1 << 20), 'buffer') })()
  collectSoon()
  collectSoon() // several calls in one turn make one collection
  for (let i = 0; i < 100 && !freed.yes; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.ok(freed.yes, 'the dropped buffer was collected')
})

t.test('on a thread with nothing else to do (a kernel worker between requests) the collection runs all the same', async t => {
  const source = path.join(__dirname, '..', '..', 'src', 'tensor', 'release-memory.ts')
  // the thread waits for messages only: no timer or request of its own wakes its event loop
  const worker = new Worker(`
    require('ts-node').register({ transpileOnly: true })
    const { parentPort } = require('node:worker_threads')
    const { collectSoon } = require(${JSON.stringify(source)})
    const registry = new FinalizationRegistry(() => parentPort.postMessage('freed'))
    ;(() => { registry.register(new ArrayBuffer(1 << 20), 'buffer') })()
    parentPort.on('message', () => {})
    setTimeout(() => { collectSoon(); parentPort.postMessage('asked') }, 50).unref()
  `, { eval: true })
  t.teardown(async () => { await worker.terminate() })
  const said: string[] = []
  const freed = new Promise<void>(resolve => worker.on('message', (msg: string) => { said.push(msg); if (msg === 'freed') resolve() }))
  await Promise.race([freed, new Promise(resolve => setTimeout(resolve, 5000))])
  t.same(said, ['asked', 'freed'])
})

t.test('collectWhenIdle: one collection once no request has come for the idle spell, and none while they come', async t => {
  // the clock is the test's; the checks run on their own timer, several times within each wait
  const ticks = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 100)) }
  let clock = 1000
  let last = clock
  let collections = 0
  const stop = collectWhenIdle(() => last, 40, () => { collections++ }, () => clock)
  t.teardown(stop)
  clock = last + 39
  await ticks()
  t.equal(collections, 0, 'none before 40 ms without a request')
  clock = last + 40
  await ticks()
  t.equal(collections, 1, 'one after 40 ms without a request')
  clock += 1000
  await ticks()
  t.equal(collections, 1, 'and no more in the same idle spell')
  last = clock
  await ticks()
  t.equal(collections, 1, 'none right after the next request')
  clock += 40
  await ticks()
  t.equal(collections, 2, 'one after its idle spell')
})

import t from 'tap'
import { collectSoon } from '../../src/tensor/release-memory'

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

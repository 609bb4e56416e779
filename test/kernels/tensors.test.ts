import t from 'tap'
import { movable, restore, type KernelTensors } from '../../src/kernels/tensors'
import { isOwnMemory, ownMemory } from '../../src/tensor/tensor'

t.test('movable: whole arrays, and views into a buffer that holds one request only', async t => {
  const whole = new Float32Array(4)
  const body = new ArrayBuffer(64)
  ownMemory(body)
  const shared = new ArrayBuffer(64) // e.g. Node's pool behind small Buffers
  const feeds: KernelTensors = {
    whole: { type: 'float32', dims: [4], data: whole },
    input: { type: 'float32', dims: [2], data: new Float32Array(body, 8, 2) },
    target: { type: 'int64', dims: [1], data: new BigInt64Array(body, 16, 1) },
    pooled: { type: 'float32', dims: [2], data: new Float32Array(shared, 8, 2) }
  }
  t.same(movable(feeds), [whole.buffer, body], 'each movable buffer once; the pooled view is copied instead')
})

t.test('restore: arrays handed back replace the moved ones, and stay movable', async t => {
  const body = new ArrayBuffer(16)
  ownMemory(body)
  const feeds: KernelTensors = { input: { type: 'float32', dims: [2], data: new Float32Array(body, 8, 2) } }
  const back = structuredClone(feeds.input.data) // what arrives from the worker: a view in a buffer of its own
  restore(feeds, { input: { type: 'float32', dims: [2], data: back } })
  t.equal(feeds.input.data, back)
  t.ok(isOwnMemory(back.buffer), 'the returned buffer is marked as the request\'s own, so a retry moves it again')
})

/**
 * raw_input_contents left in the message's memory (src/protocols/v2/grpc-raw.ts): moved in place
 * to aligned offsets, or left alone when that is not safe; and large raw tensors through a real
 * gRPC server, at every alignment, element for element, both in messages left to grpc-js and in
 * those read into shared memory (grpc-collected.ts).
 */
import t from 'tap'
import { SMALLEST_KEPT_BODY, keptMemoryBytes } from '../../../src/http/body-memory'
import { LOSSES } from '../../../src/losses'
import { alignedInPlace } from '../../../src/protocols/v2/grpc-raw'
import { HEADER_SCAN_BYTES } from '../../../src/protocols/v2/grpc-collected'
import { isOwnMemory } from '../../../src/tensor/tensor'
import { mismatch } from '../../helpers/tensors'
import { grpcApp, outputsOf, params } from './grpc'
import { NO_SHEDDING } from './v2'

/** A float32 array's bytes, as raw_input_contents carries them. */
const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** A message as grpc-js hands it over: 5 frame bytes, then `size` bytes, in a buffer of its own; byte i is i * 7 mod 251. */
function framedMessage (size: number): Buffer {
  const framed = Buffer.allocUnsafeSlow(size + 5)
  for (let i = 0; i < framed.length; i++) framed[i] = (i * 7) % 251
  return framed.subarray(5)
}

t.test('contents move to 16-byte aligned places from the start of the buffer, in order, their bytes unchanged', async t => {
  const message = framedMessage(SMALLEST_KEPT_BODY + 100)
  // two contents at odd places, with a few header bytes between them (as tags and lengths lie there)
  const a = message.subarray(37, 37 + 1001)
  const b = message.subarray(37 + 1001 + 3, 37 + 1001 + 3 + SMALLEST_KEPT_BODY)
  const want = [Buffer.from(a), Buffer.from(b)]
  const moved = alignedInPlace(message, [a, b])
  if (moved === undefined) return t.fail('not moved')
  t.same(moved.map(m => m.byteOffset), [0, 1008], 'from byte 0 of the buffer (over the frame header), each 16-byte aligned')
  t.ok(moved.every(m => m.buffer === message.buffer), 'in the message\'s own buffer')
  t.same(moved.map(m => Buffer.from(m)), want, 'the same bytes')
  t.ok(isOwnMemory(message.buffer), 'the buffer is marked as the request\'s own: it moves to the kernel worker')
})

t.test('contents already aligned stay where they are', async t => {
  const message = framedMessage(SMALLEST_KEPT_BODY + 64)
  const a = message.subarray(27, 27 + SMALLEST_KEPT_BODY) // byte 32 of the buffer
  const before = Buffer.from(message)
  const moved = alignedInPlace(message, [a])
  t.same(moved?.map(m => m.byteOffset), [32])
  t.same(message, before, 'nothing written')
})

t.test('nothing is moved or marked when that is not safe', async t => {
  const cases: Array<[string, () => [Buffer, Buffer[]]]> = [
    ['a small message (shared memory serves it)', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY - 1)
      return [m, [m.subarray(13, 113)]]
    }],
    ['a buffer that holds more than the message', () => {
      const m = Buffer.allocUnsafeSlow(SMALLEST_KEPT_BODY + 100).subarray(50, 50 + SMALLEST_KEPT_BODY)
      return [m, [m.subarray(13, 1013)]]
    }],
    ['contents elsewhere (a message decoded from joined parts)', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY)
      return [m, [Buffer.alloc(100)]]
    }],
    ['contents out of order', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY)
      return [m, [m.subarray(2000, 3000), m.subarray(100, 200)]]
    }],
    ['contents that overlap', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY)
      return [m, [m.subarray(100, 300), m.subarray(200, 400)]]
    }],
    ['a content that would have to move towards the end (too little room before it)', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY)
      // the first (1001 bytes) goes to byte 0, so the second's place is byte 1008 of the buffer, past where it starts (1006)
      return [m, [m.subarray(0, 1001), m.subarray(1001, 2000)]]
    }],
    ['a content 8 bytes off the alignment, its aligned place after its start', () => {
      const m = framedMessage(SMALLEST_KEPT_BODY)
      // the first (1011 bytes) goes to byte 0, so the second's place is byte 1024; it starts at 1016 (8-byte aligned, not 16)
      return [m, [m.subarray(0, 1011), m.subarray(1011, 2000)]]
    }]
  ]
  for (const [name, make] of cases) {
    const [message, contents] = make()
    const before = Buffer.from(new Uint8Array(message.buffer))
    t.equal(alignedInPlace(message, contents), undefined, name)
    t.same(Buffer.from(new Uint8Array(message.buffer)), before, `${name}: nothing written`)
    t.notOk(isOwnMemory(message.buffer), `${name}: not marked`)
  }
})

let s: Awaited<ReturnType<typeof grpcApp>>
t.before(async () => { s = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => ['mse', 'l1', 'categorical_crossentropy'].includes(d.name)) }) })

t.test('large raw tensors at every alignment in a message left to grpc-js: every element reaches the kernel, in the message\'s memory, not shared memory', async t => {
  const n = 40_000 // 160 kB a tensor: a message over the smallest kept size
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 3)
  const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11))
  let sum = 0
  const grad: number[] = []
  for (let i = 0; i < n; i++) {
    const d = Math.fround(x[i] - y[i])
    sum += d * d
    grad.push(2 * d)
  }
  // a header longer than grpc-collected.ts looks through leaves the message to grpc-js; an id
  // of 0 to 7 characters more shifts every raw content by as many bytes
  for (let shift = 0; shift < 8; shift++) {
    const r = await s.call('ModelInfer', {
      model_name: 'mse',
      id: 'x'.repeat(HEADER_SCAN_BYTES + shift),
      parameters: params({ reduction: 'sum', grad: true, binary_data_output: true }),
      inputs: [{ name: 'input', datatype: 'FP32', shape: [n] }, { name: 'target', datatype: 'FP32', shape: [n] }],
      raw_input_contents: [bytes(x), bytes(y)]
    })
    if (!r.ok) {
      t.fail(`shift ${shift}: ${r.error.details}`)
      continue
    }
    const out = outputsOf(r.value)
    t.equal(mismatch(out.get('loss')?.data ?? [], [sum], 1e-5, 0), undefined, `shift ${shift}: the loss`)
    t.equal(mismatch(out.get('grad_input')?.data ?? [], grad, 1e-6, 0), undefined, `shift ${shift}: every element of the gradient`)
  }
  // a composite reads both tensors in each of its terms: one kernel, which takes the message's memory once
  const terms = [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'l1', weight: 0.5, args: { input: 'x', target: 'y' }, name: 'l1' }]
  let l1 = 0
  for (let i = 0; i < n; i++) l1 += Math.abs(Math.fround(x[i] - y[i]))
  const r = await s.call('ModelInfer', {
    model_name: 'composite',
    id: 'x'.repeat(HEADER_SCAN_BYTES),
    parameters: params({ terms: JSON.stringify(terms), grad: true }),
    inputs: [{ name: 'x', datatype: 'FP32', shape: [n] }, { name: 'y', datatype: 'FP32', shape: [n] }],
    raw_input_contents: [bytes(x), bytes(y)]
  })
  if (!r.ok) t.fail(`composite: ${r.error.details}`)
  else {
    const out = outputsOf(r.value)
    t.equal(mismatch(out.get('total')?.data ?? [], [sum / n + 0.5 * l1 / n], 1e-5, 0), undefined, 'composite: the total of both terms')
    const gradX = Array.from(x, (xi, i) => { const d = Math.fround(xi - y[i]); return 2 * d / n + 0.5 * Math.sign(d) / n })
    t.equal(mismatch(out.get('grad_x')?.data ?? [], gradX, 1e-5, 1e-12), undefined, 'composite: every element of the gradient')
  }
  t.same(keptMemoryBytes(), { local: 0, shared: 0, sharedInUse: 0 }, 'no shared memory taken for the tensors')
})

t.test('a large message at every offset answers bit for bit what /loss answers (read into shared memory, its tensors 16-byte aligned)', async t => {
  // categorical_crossentropy over probabilities: ONNX Runtime gave elements another last bit 8 bytes off a 16-byte boundary
  const rows = 70
  const classes = 1000 // 280 kB a tensor: the message is moved in place
  // rows of probabilities (softmax of random-looking logits), as a model would give them
  const softmax = (f: (i: number) => number): Float32Array => {
    const out = new Float32Array(rows * classes)
    for (let r = 0; r < rows; r++) {
      let sum = 0
      for (let c = 0; c < classes; c++) sum += Math.exp(f(r * classes + c))
      for (let c = 0; c < classes; c++) out[r * classes + c] = Math.exp(f(r * classes + c)) / sum
    }
    return out
  }
  const input = softmax(i => 2 * Math.sin(i * 0.91) + Math.cos(i * 0.37))
  const target = softmax(i => 3 * Math.sin(i * 1.71 + 0.5))
  const tensor = (a: Float32Array): object => ({ dtype: 'float32', shape: [rows, classes], data: bytes(a).toString('base64') })
  const solo = await s.app.inject({ method: 'POST', url: '/loss/categorical_crossentropy', payload: { input: tensor(input), target: tensor(target), from_logits: false, grad: true } })
  t.equal(solo.statusCode, 200)
  const want = [Buffer.from(solo.json().loss.data, 'base64'), Buffer.from(solo.json().grad.input.data, 'base64')]
  // an id of 0 to 15 characters puts the contents at every offset modulo 16
  for (let shift = 0; shift < 16; shift++) {
    const r = await s.call('ModelInfer', {
      model_name: 'categorical_crossentropy',
      id: 'x'.repeat(shift),
      parameters: params({ from_logits: false, grad: true }),
      inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, classes] }, { name: 'target', datatype: 'FP32', shape: [rows, classes] }],
      raw_input_contents: [bytes(input), bytes(target)]
    })
    if (!r.ok) {
      t.fail(`shift ${shift}: ${r.error.details}`)
      continue
    }
    const got: Buffer[] = r.value.raw_output_contents
    t.ok(got.length === 2 && got[0].equals(want[0]) && got[1].equals(want[1]), `shift ${shift}: the loss and every gradient element, bit for bit`)
  }
  t.equal(keptMemoryBytes().sharedInUse, 0, 'the messages\' shared memory given back')
})

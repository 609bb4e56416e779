import t, { type Test } from 'tap'
import { type FastifyInstance } from 'fastify'
import { build } from '../helpers/app'
import { fromForm } from '../helpers/tensors'
import { nominalSize } from '../../src/kernels/admission'

const b64 = (a: ArrayBufferView): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')
const typed = (dtype: string, shape: number[], data: ArrayBufferView | number[]): unknown =>
  ({ dtype, shape, data: Array.isArray(data) ? data : b64(data) })

async function post (app: FastifyInstance, name: string, body: unknown): Promise<{ status: number, body: any }> {
  const r = await app.inject({ method: 'POST', url: `/loss/${name}`, headers: { 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) })
  return { status: r.statusCode, body: r.json() }
}

function refused (t: Test, r: { status: number, body: any }, code: string, message: RegExp): void {
  t.equal(r.status, 400, `${code}: status`)
  t.equal(r.body.code, code)
  t.match(r.body.message, message)
}

t.test('a zero-size dim does not make the others free', async t => {
  t.equal(nominalSize([1e9, 0]), 1e9)
  t.equal(nominalSize([0, 0]), 1)
  t.equal(nominalSize([]), 1)
})

t.test('sizes past MAX_ELEMENTS are refused before anything is allocated, naming the argument', async t => {
  const app = await build(t)
  refused(t, await post(app, 'mse', { input: [], target: typed('float32', [1e9, 0], []), reduction: 'none' }),
    'TOO_LARGE', /^target \[1000000000,0\]: needs 1000000000 elements, more than the 4194304 .*MAX_ELEMENTS/)
  for (const [name, extra] of [['multi_margin', { target: typed('int64', [0], []) }], ['multilabel_margin', { target: typed('int64', [0, 1e8], []) }],
    ['dice', { target: typed('float32', [0, 1e8], []), mode: 'multilabel' }], ['lovasz_softmax', { target: typed('int64', [0], []) }]] as const) {
    refused(t, await post(app, name, { input: typed('float32', [0, 1e8], []), ...extra }), 'TOO_LARGE', /^input \[0,100000000\]: needs 100000000 elements/)
  }
  // a 700 KB body asking for a 16 GiB broadcast
  const n = 65536
  refused(t, await post(app, 'mse', { input: typed('float32', [n, 1], new Float32Array(n)), target: typed('float32', [1, n], new Float32Array(n)) }),
    'TOO_LARGE', /^the broadcast of input, target \[65536,65536\]: needs 4294967296 elements/)
  refused(t, await post(app, 'multilabel_margin', { input: typed('float32', [1, 8192], new Float32Array(8192)), target: typed('int64', [1, 8192], new BigInt64Array(8192)) }),
    'TOO_LARGE', /N\*C\*C.*needs 67108864 elements/)
  refused(t, await post(app, 'ctc', {
    log_probs: typed('float32', [4096, 1, 2], new Float32Array(8192)),
    targets: typed('int64', [1, 4096], new BigInt64Array(4096).fill(1n)),
    input_lengths: [4096],
    target_lengths: [1]
  }), 'TOO_LARGE', /CTC lattice \[T,N,2S\+1\] = \[4096,1,8193\]/)
})

t.test('MAX_ELEMENTS is configurable; the bound is inclusive', async t => {
  const app = await build(t, { maxElements: 100 })
  const ok = await post(app, 'mse', { input: typed('float32', [10, 10], new Float32Array(100)), target: 0, reduction: 'sum' })
  t.equal(ok.status, 200)
  t.same(fromForm(ok.body.loss).data, [0])
  refused(t, await post(app, 'mse', { input: typed('float32', [10, 1], new Float32Array(10)), target: typed('float32', [1, 11], new Float32Array(11)) }),
    'TOO_LARGE', /\[10,11\]: needs 110 elements, more than the 100/)
})

t.test('MAX_STEPS bounds the sequential steps (ctc\'s frames) before a kernel runs; the bound is inclusive', async t => {
  // a kernel runs to its end once started (one past its deadline computes on), so T is checked first
  const ctc = (T: number): unknown => ({
    log_probs: typed('float32', [T, 1, 2], new Float32Array(2 * T).fill(Math.log(0.5))), targets: [[1]], input_lengths: [T], target_lengths: [1]
  })
  const app = await build(t, { maxSteps: 12 })
  const ok = await post(app, 'ctc', ctc(12))
  t.equal(ok.status, 200)
  // 12 frames of p = 1/2 each; the label is one run of 1 to 12 frames among blanks, 12 * 13 / 2 = 78
  // alignments: -log(78 / 2^12) = 12 log 2 - log 78
  t.ok(Math.abs(fromForm(ok.body.loss).data[0] - (12 * Math.log(2) - Math.log(78))) < 1e-5, `ctc of 12 frames: ${JSON.stringify(ok.body.loss)}`)
  refused(t, await post(app, 'ctc', ctc(13)), 'TOO_LARGE', /^log_probs \[13,1,2\]: needs 13 sequential steps, more than the 12 one request may take \(MAX_STEPS\); split the request/)
  const byDefault = await build(t)
  refused(t, await post(byDefault, 'ctc', ctc(100_001)), 'TOO_LARGE', /^log_probs \[100001,1,2\]: needs 100001 sequential steps, more than the 100000/)
})

t.test('an empty loss of a shape within bounds is answered, with its shape', async t => {
  const app = await build(t)
  const r = await post(app, 'mse', { input: [], target: typed('float32', [1000, 0], []), reduction: 'none' })
  t.equal(r.status, 200)
  t.equal(r.body.loss.length, 1000)
  t.ok(r.body.loss.every((row: unknown[]) => Array.isArray(row) && row.length === 0))
})

t.test('dims are integers below 2^31', async t => {
  const app = await build(t)
  refused(t, await post(app, 'mse', { input: typed('float32', [0, 1e300], []), target: typed('float32', [0, 1e300], []) }),
    'INVALID_TENSOR', /^input\.shape: expected an array of at most 8 integers in \[0, 2147483647\]/)
  refused(t, await post(app, 'mse', { input: typed('float32', [0, 2 ** 31], []), target: 1 }), 'INVALID_TENSOR', /^input\.shape/)
})

t.test('int64 values JSON cannot carry exactly are refused; base64 ones are compared exactly', async t => {
  const app = await build(t)
  refused(t, await post(app, 'cross_entropy', '{"input":[[1,2],[3,4]],"target":{"dtype":"int64","shape":[2],"data":[18446744073709551616,1]}}'),
    'INVALID_TENSOR', /^target\.data\[0\]: .* is not an integer JSON carries exactly/)
  refused(t, await post(app, 'cross_entropy', '{"input":[[1,2],[3,4]],"target":[9007199254740993,1]}'),
    'INVALID_TENSOR', /^target: 9007199254740992 at flat position 0 is not an integer JSON carries exactly/)
  refused(t, await post(app, 'cross_entropy', '{"input":[[1,2],[3,4]],"target":[0,1],"ignore_index":18446744073709551616}'),
    'INVALID_OPTION', /^ignore_index: .* is not an integer JSON carries exactly/)
  refused(t, await post(app, 'ctc', { ...ctcExample(), blank: 2 ** 53 }), 'INVALID_OPTION', /^blank: /)
  // 2^53 + 1 rounds to 2^53 as a double; as a BigInt it stays itself, out of range
  refused(t, await post(app, 'cross_entropy', { input: [[1, 2], [3, 4]], target: typed('int64', [2], BigInt64Array.of(2n ** 53n + 1n, 1n)) }),
    'INDEX_OUT_OF_RANGE', /^target: class index 9007199254740993 at flat position 0 is out of range \[0, 2\)/)
  refused(t, await post(app, 'cross_entropy', { input: [[1, 2], [3, 4]], target: typed('int64', [2], BigInt64Array.of(-(2n ** 63n), 1n)) }),
    'INDEX_OUT_OF_RANGE', /class index -9223372036854775808/)
  // the message shows the value sent, not its nearest double
  refused(t, await post(app, 'multilabel_margin', { input: [[1, 2, 3]], target: typed('int64', [1, 3], BigInt64Array.of(0n, 2n ** 53n + 1n, -1n)) }),
    'INDEX_OUT_OF_RANGE', /^target: entry 9007199254740993 at flat position 1 is out of range \[-1, 3\)/)
  refused(t, await post(app, 'ctc', { ...ctcExample(), targets: typed('int64', [1, 1], BigInt64Array.of(-(2n ** 53n) - 1n)) }),
    'INDEX_OUT_OF_RANGE', /^targets: label -9007199254740993 at flat position 0 is out of range \[0, 2\)/)
  // the largest exact value still passes as itself (here, as an ignored index)
  const ok = await post(app, 'cross_entropy', { input: [[1, 2], [3, 4]], target: [0, 2 ** 53 - 1], ignore_index: 2 ** 53 - 1 })
  t.equal(ok.status, 200)
  t.ok(Math.abs(ok.body.loss - Math.log(1 + Math.exp(1))) < 1e-5, 'only the first sample counts')
})

t.test('a zero-width class axis is a 400, not a kernel failure', async t => {
  const app = await build(t)
  refused(t, await post(app, 'cross_entropy', { input: typed('float32', [2, 0], []), target: [-100, -100] }), 'SHAPE_MISMATCH', /^input: the class dim of \[2,0\] is empty/)
  refused(t, await post(app, 'nll', { input: typed('float32', [2, 0], []), target: [-100, -100] }), 'SHAPE_MISMATCH', /class dim/)
})

t.test('ctc checks 100,000 samples in linear time and answers them', async t => {
  const app = await build(t)
  const N = 100000
  const started = Date.now()
  const r = await post(app, 'ctc', {
    log_probs: typed('float32', [1, N, 2], new Float32Array(2 * N).fill(Math.log(0.5))),
    targets: typed('int64', [0], []),
    input_lengths: typed('int64', [N], new BigInt64Array(N).fill(1n)),
    target_lengths: typed('int64', [N], new BigInt64Array(N)),
    reduction: 'sum'
  })
  t.equal(r.status, 200)
  // every sample is one blank frame: -log 0.5 each
  t.ok(Math.abs(fromForm(r.body.loss).data[0] - N * Math.log(2)) / (N * Math.log(2)) < 1e-5, `sum ${JSON.stringify(r.body.loss)}`)
  t.comment(`answered in ${Date.now() - started} ms`)
})

t.test('a mean over 2^24 elements matches a float64 reference (float32 in, float64 accumulation)', async t => {
  const app = await build(t, { maxElements: 2 ** 24 })
  const n = 4096
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3)
  const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7) * 2 + 1)
  let ref = 0
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) ref += (x[i] - y[j]) ** 2
  for (const reduction of ['mean', 'sum'] as const) {
    const r = await post(app, 'mse', { input: typed('float32', [n, 1], x), target: typed('float32', [1, n], y), reduction })
    t.equal(r.status, 200)
    const want = reduction === 'mean' ? ref / (n * n) : ref
    const got = fromForm(r.body.loss).data[0]
    t.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want), `${reduction}: ${got} against ${want}`)
  }
})

function ctcExample (): Record<string, unknown> {
  return { log_probs: [[[-0.7, -0.7]], [[-0.7, -0.7]]], targets: [[1]], input_lengths: [2], target_lengths: [1] }
}

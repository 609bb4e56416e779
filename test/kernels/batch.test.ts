import t from 'tap'
import { batchFeeds, batchPlan, splitOutputs } from '../../src/kernels/batch'
import { prepare } from '../../src/kernels/prepare'
import { REGISTRY } from '../../src/losses'

const call = (name: string, body: Record<string, unknown>): ReturnType<typeof prepare> => {
  const def = REGISTRY.get(name)
  if (def === undefined) throw new Error(name)
  const defaults: Record<string, unknown> = { reduction: 'mean', grad: false }
  for (const [k, s] of Object.entries(def.options)) if ('default' in s) defaults[k] = (s as { default: unknown }).default
  return prepare(def, { ...defaults, ...body })
}

t.test('requests batch together when their kernel, trailing dims and shared arguments agree', async t => {
  const a = batchPlan(call('mse', { input: [[1, 2], [3, 4]], target: [[0, 0], [0, 0]] }))
  const b = batchPlan(call('mse', { input: [[1, 2]], target: [[5, 5]] }))
  t.ok(a !== undefined && b !== undefined)
  t.equal(a?.group, b?.group, 'different row counts, same group')
  t.equal(a?.rows, 2)
  t.not(batchPlan(call('mse', { input: [[1, 2, 3]], target: [[0, 0, 0]] }))?.group, a?.group, 'other trailing dims: another group')
  t.not(batchPlan(call('mse', { input: [[1, 2]], target: [[0, 0]], reduction: 'sum' }))?.group, a?.group, 'another reduction: another group')
})

t.test('per-row options may differ within a batch; other options pick the group', async t => {
  const beta = (v: number): string | undefined => batchPlan(call('smooth_l1', { input: [[1, 2]], target: [[0, 0]], beta: v }))?.group
  t.equal(beta(0.5), beta(2), 'smooth_l1 beta is a per-row input')
  const smoothing = (v: number): string | undefined => batchPlan(call('cross_entropy', { input: [[1, 2]], target: [0], label_smoothing: v }))?.group
  t.equal(smoothing(0.1), smoothing(0.2), 'cross_entropy label_smoothing is a per-row input too')
  t.not(smoothing(0), smoothing(0.2), '... but smoothing or not is structural')
  const margin = (v: number): string | undefined => batchPlan(call('cosine_embedding', { input1: [[1, 2]], input2: [[2, 1]], target: [1], margin: v }))?.group
  t.not(margin(0), margin(0.5), 'cosine_embedding margin values group apart')
  const weight = (w: number[]): string | undefined => batchPlan(call('cross_entropy', { input: [[1, 2]], target: [0], weight: w }))?.group
  t.equal(weight([1, 2]), weight([1, 2]))
  t.not(weight([1, 2]), weight([2, 1]), 'a shared argument (weight) must be equal')
})

t.test('requests whose rows the loss cannot keep apart run alone', async t => {
  t.equal(batchPlan(call('cross_entropy', { input: [1, 2, 3], target: 0 })), undefined, 'unbatched [C] input')
  t.equal(batchPlan(call('mse', { input: [[1, 2], [3, 4]], target: [1, 2] })), undefined, 'target broadcast along the batch dim')
  t.equal(batchPlan(call('dice', { input: [[[[0.1, 0.2]]]], target: [[[[0, 1]]]], mode: 'binary' })), undefined, 'a loss that reduces over the whole request')
})

t.test('batch feeds: rows concatenated, segment ids per row, per-row option values, seeds per request; outputs split back', async t => {
  const calls = [
    call('smooth_l1', { input: [[1, 2], [3, 4]], target: [[0, 0], [0, 0]], beta: 0.5, reduction: 'sum', grad: true }),
    call('smooth_l1', { input: [[5, 6]], target: [[0, 0]], beta: 2, reduction: 'sum', grad: true })
  ]
  const feeds = batchFeeds(calls)
  t.same(feeds.input.dims, [3, 2])
  t.same(Array.from(feeds.input.data as Float32Array), [1, 2, 3, 4, 5, 6])
  t.same(Array.from(feeds.segment_ids.data as BigInt64Array), [0n, 0n, 1n])
  t.same(feeds.beta.dims, [3, 1])
  t.same(Array.from(feeds.beta.data as Float32Array), [0.5, 0.5, 2])
  t.same(feeds.grad_output.dims, [2], 'one seed per request for a reduced loss')
  const shares = splitOutputs(calls, {
    loss: { type: 'float32', dims: [2], data: Float32Array.of(10, 20) },
    grad_input: { type: 'float32', dims: [3, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6) }
  })
  t.same(shares.map(s => [s.loss.dims, Array.from(s.loss.data as Float32Array)]), [[[], [10]], [[], [20]]])
  t.same(shares.map(s => Array.from(s.grad_input.data as Float32Array)), [[1, 2, 3, 4], [5, 6]])
})

import t from 'tap'
import { batchFeeds, batchPlan, splitOutputs } from '../../src/kernels/batch'
import { buildFeeds } from '../../src/kernels/kernel'
import { preparedCall } from '../helpers/calls'
import { LOSSES } from '../../src/losses'

const call = preparedCall

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
  t.equal(batchPlan(call('mse', { input: 1, target: 2 })), undefined, '0-d arguments: no rows')
  t.equal(batchPlan(call('mse', { input: { dtype: 'float32', shape: [0, 2], data: [] }, target: { dtype: 'float32', shape: [0, 2], data: [] } })), undefined, '0 rows')
  t.equal(batchPlan(call('mse', { input: [[1, 2]], target: [[[1, 2]]] })), undefined, 'a higher-rank target: its axis 0 is not the rows')
  t.equal(batchPlan(call('mse', { input: [[1, 2], [3, 4]], target: [[1, 2]] })), undefined, 'a target of one row against several')
})

t.test('gaussian_nll: target must have the input\'s rank; var may drop the last dim (the loss lines it up)', async t => {
  // target [2] broadcasts against input [2,1] to [2,2]: its axis 0 is the loss's axis 1
  const crossed = call('gaussian_nll', { input: [[0], [0]], target: [3, 4], var: [[1], [1]], reduction: 'none' })
  t.same(crossed.lossShape, [2, 2])
  t.equal(batchPlan(crossed), undefined, 'target [2] against input [2,1]')
  t.equal(batchPlan(call('gaussian_nll', { input: [[[0]]], target: [[1]], var: [[[1]]], reduction: 'sum' })), undefined, 'target [1,1] against input [1,1,1]')
  t.equal(batchPlan(call('gaussian_nll', { input: [0], target: [[1]], var: [1] })), undefined, 'target [1,1] against input [1]')
  t.equal(batchPlan(call('gaussian_nll', { input: [0, 1], target: [1, 2], var: 1 })), undefined, 'var 0-d')
  t.equal(batchPlan(call('gaussian_nll', { input: [[0, 1], [2, 3]], target: [[1, 2], [3, 4]], var: [1, 2] }))?.rows, 2, 'var [N] for input [N,D]')
  t.equal(batchPlan(call('gaussian_nll', { input: [[0], [2]], target: [[1, 2], [3, 4]], var: [[1], [2]] }))?.rows, 2, 'input [N,1] broadcast against target [N,D]')
  const eps = (v: number): string | undefined => batchPlan(call('gaussian_nll', { input: [[0, 1]], target: [[1, 2]], var: [1], eps: v }))?.group
  t.not(eps(1e-6), eps(0.1), 'eps is not per-row: other values group apart')
})

t.test('a shared argument (not a batch argument) may not reach the rows', async t => {
  const bce = (weight: unknown): ReturnType<typeof batchPlan> => batchPlan(call('bce', { input: [[0.5, 0.5], [0.2, 0.1]], target: [[1, 0], [0, 1]], weight }))
  t.equal(bce([[1, 2], [3, 4]]), undefined, 'weight [N,C]: one weight per row of this request')
  t.equal(bce([[1, 2]])?.rows, 2, 'weight [1,C] is shared by every row')
  t.equal(bce([1, 2])?.rows, 2, 'weight [C]')
  t.equal(batchPlan(call('bce_with_logits', { input: [1, 2], target: [1, 0], pos_weight: [1, 2] })), undefined, 'pos_weight [C] against input [C]')
})

t.test('every batchable loss batches its catalog example', async t => {
  for (const def of LOSSES.filter(d => d.batch !== undefined)) {
    t.not(batchPlan(call(def.name, structuredClone(def.example))), undefined, def.name)
  }
})

t.test('plan.elements: the call\'s working size when it exceeds its batch arguments', async t => {
  // input [2,1,50] and target [2,50,1] broadcast to [2,50,50]: 5000 elements from 200
  const input = { dtype: 'float32', shape: [2, 1, 50], data: Array(100).fill(1) }
  const target = { dtype: 'float32', shape: [2, 50, 1], data: Array(100).fill(0) }
  const wide = call('mse', { input, target })
  t.equal(wide.cost.elements, 5000)
  t.equal(batchPlan(wide)?.elements, 5000)
  t.equal(batchPlan({ ...wide, cost: { ...wide.cost, elements: 10 } })?.elements, 200, 'never less than the batch arguments')
  const { cost: _, ...costless } = wide
  t.equal(batchPlan(costless as typeof wide)?.elements, 200, 'a call without a cost: its batch arguments')
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

t.test('a batched result is split into views over the batch\'s arrays, not copies', async t => {
  const calls = [
    call('mse', { input: [[1, 2], [3, 4]], target: [[0, 0], [0, 0]], reduction: 'none' }),
    call('mse', { input: [[5, 6]], target: [[0, 0]], reduction: 'none' })
  ]
  const loss = Float32Array.of(1, 4, 9, 16, 25, 36)
  const [a, b] = splitOutputs(calls, { loss: { type: 'float32', dims: [3, 2], data: loss } })
  t.equal(a.loss.data.buffer, loss.buffer)
  t.equal(b.loss.data.buffer, loss.buffer)
  t.same([a.loss.dims, b.loss.dims], [[2, 2], [1, 2]])
  t.same([[...a.loss.data], [...b.loss.data]], [[1, 4, 9, 16], [25, 36]])
  t.same([a.loss.data.byteOffset, b.loss.data.byteOffset], [0, 16])
})

t.test('feeds lend a call\'s own arrays when they are of the kernel\'s dtype, and convert the others', async t => {
  const f32 = (xs: number[]): { dtype: 'float32', shape: number[], data: string } => ({ dtype: 'float32', shape: [xs.length], data: Buffer.from(Float32Array.from(xs).buffer).toString('base64') })
  const typed = call('mse', { input: f32([1, 2]), target: f32([0, 0]), grad: true, grad_output: { dtype: 'float32', shape: [], data: [2] } })
  const feeds = buildFeeds(typed)
  t.equal(feeds.input.data, typed.args.input.data, 'float32 input: its own array')
  t.equal(feeds.input.source, typed.args.input, 'lent by the argument')
  t.equal(feeds.grad_output.source, typed.gradOutput, 'the seed too')
  const nested = call('mse', { input: [1, 2], target: [0, 0] })
  t.type(nested.args.input.data, Float32Array, 'nested numbers are float32 arguments (prepare rounds them)')
  t.equal(buildFeeds(nested).input.data, nested.args.input.data, 'and are lent as they are')
  const wide = call('mse', { input: f32([1, 2]), target: { dtype: 'float64', shape: [2], data: [0, 0] } })
  const converted = buildFeeds(wide)
  t.type(converted.input.data, Float64Array)
  t.not(converted.input.data, wide.args.input.data, 'a float32 argument of a float64 call is converted: an array of the feeds\' own')
  t.equal(converted.input.source, undefined)
})

t.test('batch feeds lend nothing: a failed batch\'s members keep their arguments to run alone', async t => {
  const weight = { dtype: 'float32', shape: [2], data: [1, 2] }
  const calls = [
    call('cross_entropy', { input: { dtype: 'float32', shape: [1, 2], data: [1, 2] }, target: [0], weight }),
    call('cross_entropy', { input: { dtype: 'float32', shape: [1, 2], data: [3, 4] }, target: [1], weight })
  ]
  const feeds = batchFeeds(calls)
  t.same(Object.entries(feeds).filter(([, f]) => f.source !== undefined).map(([n]) => n), [])
  for (const c of calls) for (const [name, a] of Object.entries(c.args)) t.not(feeds[name]?.data.buffer, a.data.buffer, `${name} is a copy`)
  t.same(Array.from(feeds.weight.data as Float32Array), [1, 2], 'the shared weight, copied')
})

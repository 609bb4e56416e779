import t from 'tap'
import { argTensor, buildFeeds, kernelKey } from '../../src/kernels/kernel'
import { type Arg } from '../../src/losses/loss'
import { preparedCall } from '../helpers/calls'

const call = preparedCall

const input = [[1, 2, 3], [4, 5, 6]]
const zeros = [[0, 0, 0], [0, 0, 0]]

t.test('the loss checks its unreduced shape; the reduction gives the returned one', async t => {
  for (const [reduction, returned] of [['none', [2, 3]], ['mean', []], ['sum', []]] as const) {
    const c = call('mse', { input, target: zeros, reduction })
    t.same([c.unreducedShape, c.lossShape], [[2, 3], returned], `mse ${reduction}`)
  }
  const kl = call('kl_div', { input, target: zeros, reduction: 'batchmean' })
  t.same([kl.unreducedShape, kl.lossShape], [[2, 3], []], 'kl_div batchmean')
  const ce = call('cross_entropy', { input, target: [0, 2], reduction: 'none' })
  t.same(ce.lossShape, [2], 'cross_entropy: one loss per sample')
  const lovasz = (reduction: string): number[][] => {
    const c = call('lovasz_hinge', { input: [[[1, -1]], [[0.5, 2]]], target: [[[1, 0]], [[0, 1]]], reduction })
    return [c.unreducedShape, c.lossShape]
  }
  t.same(lovasz('none'), [[2], [2]], 'lovasz_hinge per image, none')
  t.same(lovasz('sum'), [[2], []], 'lovasz_hinge per image, sum')
  const dice = call('dice', { input: [[[[1.2, -0.5]]]], target: [[[[1, 0]]]], mode: 'binary' })
  t.same([dice.unreducedShape, dice.lossShape], [[], []], 'dice: one value over the whole batch')
})

t.test('grad_output must have the returned shape', async t => {
  t.throws(() => call('mse', { input, target: zeros, grad: true, grad_output: zeros }), {
    code: 'SHAPE_MISMATCH', message: 'grad_output: must have the loss\'s shape [] (reduction "mean"), got [2,3]'
  })
  t.same(call('mse', { input, target: zeros, reduction: 'none', grad: true, grad_output: zeros }).gradOutput?.shape, [2, 3])
})

t.test('forward is given the structural options only: numeric values stay graph inputs', async t => {
  const smooth = call('smooth_l1', { input, target: zeros, beta: 0.5 })
  t.same(smooth.structural, { reduction: 'mean' }, 'smooth_l1: beta is not there')
  t.same(smooth.numeric, { beta: { kind: 'float', value: 0.5 } })
  t.same(call('binary_crossentropy', { input: [[0.5, 0.5]], target: [[1, 0]], from_logits: true }).structural, { reduction: 'mean', from_logits: true }, 'a boolean option is structural')
  t.same(call('balanced_bce', { input: [[0.5]], target: [[1]] }).structural, { reduction: 'mean', alpha: 'auto' }, 'balanced_bce alpha "auto" is structural')
  const numericAlpha = call('balanced_bce', { input: [[0.5]], target: [[1]], alpha: 0.3 })
  t.same([numericAlpha.structural, numericAlpha.numeric], [{ reduction: 'mean' }, { alpha: { kind: 'float', value: 0.3 } }], '... a numeric one is an input')
  const smoothing = (v: number): ReturnType<typeof call> => call('cross_entropy', { input, target: [0, 2], label_smoothing: v })
  t.same(smoothing(0.2).structural, { reduction: 'mean', smoothed: true }, 'cross_entropy: what it derives from label_smoothing')
  t.same(smoothing(0).structural, { reduction: 'mean', smoothed: false })
})

t.test('the kernel key follows what shapes the graph, not numeric values', async t => {
  const key = (name: string, body: Record<string, unknown>): string => kernelKey(call(name, body))
  t.equal(key('smooth_l1', { input, target: zeros, beta: 0.5 }), key('smooth_l1', { input, target: zeros, beta: 2 }), 'smooth_l1 beta')
  t.not(key('smooth_l1', { input, target: zeros }), key('smooth_l1', { input, target: zeros, reduction: 'sum' }), 'the reduction')
  t.not(key('binary_crossentropy', { input, target: zeros }), key('binary_crossentropy', { input, target: zeros, from_logits: true }), 'a structural option')
  t.equal(key('cross_entropy', { input, target: [0, 2], label_smoothing: 0.1 }), key('cross_entropy', { input, target: [0, 2], label_smoothing: 0.3 }), 'label_smoothing values')
  t.not(key('cross_entropy', { input, target: [0, 2], label_smoothing: 0 }), key('cross_entropy', { input, target: [0, 2], label_smoothing: 0.3 }), 'label_smoothing 0 or not')
  t.not(key('balanced_bce', { input: [[0.5]], target: [[1]] }), key('balanced_bce', { input: [[0.5]], target: [[1]], alpha: 0.3 }), 'balanced_bce alpha "auto" or a number')
  const dice = { input: [[[[1.2, -0.5]]]], target: [[[[1, 0]]]], mode: 'binary' }
  t.equal(key('dice', { ...dice, ignore_index: 0 }), key('dice', { ...dice, ignore_index: 1 }), 'dice ignore_index values')
  t.not(key('dice', dice), key('dice', { ...dice, ignore_index: 1 }), 'dice with ignore_index or without: an input more')
})

t.test('arguments converted to the kernel\'s dtype go into the memory the call provides; those already in it are lent', async t => {
  const b64 = (a: Float32Array | Float64Array): string => Buffer.from(a.buffer).toString('base64')
  const values = (data: unknown): number[] => Array.from(data as Float32Array | Float64Array)
  const given: ArrayBuffer[] = []
  // a pool may hand out more than asked for: the copy takes its own length from the front
  const memory = (bytes: number): ArrayBuffer => { const m = new ArrayBuffer(bytes + 8); given.push(m); return m }
  const body = { input: [[0.1, 2.5]], target: { dtype: 'float32', shape: [1, 2], data: b64(Float32Array.of(1, -3)) } }
  const c = call('mse', body, memory)
  t.equal(c.dtype, 'float32')
  t.equal(c.args.input.data.buffer, given[0], 'nested numbers (read as float64) become float32 in the memory provided')
  t.same([c.args.input.data.length, values(c.args.input.data)], [2, [Math.fround(0.1), 2.5]], 'rounded as float32 stores them')
  const feeds = buildFeeds(c)
  t.equal(feeds.input.data, c.args.input.data, 'and are lent to the kernel as they are')
  t.equal(feeds.target.data, c.args.target.data, 'a float32 argument is lent as it is')
  t.equal(given.length, 1, 'and asks for no memory')
  const own = call('mse', body, () => undefined)
  t.not(own.args.input.data.buffer, given[0], 'no memory provided: a copy of its own')
  t.same(values(own.args.input.data), [Math.fround(0.1), 2.5])

  const wide = call('mse', { input: { dtype: 'float64', shape: [2], data: b64(Float64Array.of(0.1, 7)) }, target: { dtype: 'float32', shape: [2], data: b64(Float32Array.of(0.1, -3)) } })
  t.equal(wide.dtype, 'float64', 'a float64 argument makes the call float64')
  wide.memory = memory
  const f64 = buildFeeds(wide)
  t.equal(f64.target.data.buffer, given[1], 'the float32 target widens into the memory provided')
  t.same(values(f64.target.data), [Math.fround(0.1), -3], 'exactly: every float32 is a float64')
  t.equal(f64.input.data, wide.args.input.data, 'the float64 input is lent')

  // nested floats are float32 even in a float64 call: PyTorch promotes the float32 values
  const mixed = call('mse', { input: [0.1, 2.5], target: { dtype: 'float64', shape: [2], data: b64(Float64Array.of(0.2, 7)) } })
  t.equal(mixed.dtype, 'float64')
  t.same(values(buildFeeds(mixed).input.data), [Math.fround(0.1), 2.5], 'nested numbers widen from their float32 values')
})

t.test('integer arguments become int64 exactly: negative, past 32 bits, up to the largest safe integer', async t => {
  const values = [0, 1, -1, -100, 2 ** 31, -(2 ** 31) - 1, 2 ** 32 + 5, -(2 ** 32) - 5, 2 ** 53 - 1, -(2 ** 53 - 1)]
  for (const data of [Float64Array.from(values), Int32Array.of(-7, 2 ** 31 - 1, -(2 ** 31))]) {
    const arg = { dtype: undefined, shape: [data.length], data, form: 'nested', kind: 'index' } as unknown as Arg
    const got = argTensor(arg, 'float32')
    t.equal(got.type, 'int64')
    t.same(Array.from(got.data as BigInt64Array), Array.from(data, v => BigInt(v)), `from ${data.constructor.name}`)
  }
})

t.test('labels and counts take integer dtypes as floats where PyTorch does; other float arguments refuse them', async t => {
  const int64 = { dtype: 'int64', shape: [2], data: [1, -1] }
  const c = call('hinge_embedding', { input: [0.5, 2.0], target: int64 })
  const target = c.args.target
  t.same([target.kind, target.dtype, target.data instanceof Float32Array, Array.from(target.data as Float32Array)], ['float', undefined, true, [1, -1]], 'as float32 values, like nested numbers')
  t.equal(c.dtype, 'float32', 'float32 computation beside a float32 input, as PyTorch promotes')
  t.equal(call('l1', { input: { dtype: 'float64', shape: [2], data: [1, 2] }, target: { dtype: 'int32', shape: [2], data: [3, 4] } }).dtype, 'float64', 'float64 beside a float64 input')
  // int64 bytes (base64): 7 and -2
  const b64 = Buffer.from(BigInt64Array.of(7n, -2n).buffer).toString('base64')
  t.same(Array.from(call('poisson_nll', { input: [0.1, 0.2], target: { dtype: 'int64', shape: [2], data: b64 } }).args.target.data as Float32Array), [7, -2], 'from base64 bytes')
  t.same(call('hinge_embedding', { input: [0.5, 2.0], target: int64 }).args.target.data, call('hinge_embedding', { input: [0.5, 2.0], target: [1, -1] }).args.target.data, 'as the nested [1, -1]')
  t.throws(() => call('mse', { input: [0.5, 2.0], target: int64 }), { code: 'INVALID_DTYPE', message: 'target: expected float32 or float64 elements, got int64' }, 'mse refuses them, as PyTorch')
})

import t from 'tap'
import * as ort from 'onnxruntime-node'
import { Graph, type Value } from '../../src/onnx/graph'
import * as op from '../../src/onnx/ops'
import { backward } from '../../src/onnx/autodiff'

/** Builds f(x, y), differentiates it w.r.t. x (and y), runs it, returns value and gradients. */
async function run (f: (x: Value, y: Value) => Value, x: number[], xShape: number[], y: number[], yShape: number[]): Promise<{ out: number[], gx: number[], gy: number[] }> {
  const G = new Graph('test', 'float64')
  const dims = (s: number[]): Array<1 | 'n'> => s.map(d => (d === 1 ? 1 : 'n'))
  const X = G.input('x', 'float64', dims(xShape), true)
  const Y = G.input('y', 'float64', dims(yShape), true)
  const out = f(X, Y)
  const [gx, gy] = backward(out, G.constant(1), [X, Y])
  G.output('out', out)
  G.output('gx', gx)
  G.output('gy', gy)
  const s = await ort.InferenceSession.create(G.toModel())
  const r = await s.run({ x: new ort.Tensor('float64', Float64Array.from(x), xShape), y: new ort.Tensor('float64', Float64Array.from(y), yShape) })
  await s.release()
  return { out: Array.from(r.out.data as Float64Array), gx: Array.from(r.gx.data as Float64Array), gy: Array.from(r.gy.data as Float64Array) }
}

t.test('product rule and broadcasting: d/dx sum(x * y) with y broadcast over rows', async t => {
  const r = await run((x, y) => op.sumAll(op.mul(x, y)), [1, 2, 3, 4], [2, 2], [10, 20], [2])
  t.same(r.out, [1 * 10 + 2 * 20 + 3 * 10 + 4 * 20])
  t.same(r.gx, [10, 20, 10, 20])
  t.same(r.gy, [1 + 3, 2 + 4], 'gradient of a broadcast operand is summed over the broadcast axis')
})

t.test('a value used twice accumulates: d/dx sum(x*x + x) = 2x + 1', async t => {
  const r = await run((x, _y) => op.sumAll(op.add(op.mul(x, x), x)), [1, -2], [2], [0], [1])
  t.same(r.gx, [3, -3])
  t.same(r.gy, [0], 'an unused input gets zeros')
})

t.test('PyTorch tie conventions: relu 0 at 0, clamp_min passes at the bound, maximum splits', async t => {
  t.same((await run((x, _y) => op.sumAll(op.relu(x)), [-1, 0, 2], [3], [0], [1])).gx, [0, 0, 1])
  t.same((await run((x, _y) => op.sumAll(op.clampMin(x, 0)), [-1, 0, 2], [3], [0], [1])).gx, [0, 1, 1])
  const m = await run((x, y) => op.sumAll(op.maximum(x, y)), [1, 2, 3], [3], [2, 2, 2], [3])
  t.same(m.gx, [0, 0.5, 1])
  t.same(m.gy, [1, 0.5, 0])
})

t.test('log_softmax gradient: softmax minus one-hot for a picked class', async t => {
  // d/dx of -log_softmax(x)[1] = softmax(x) - e_1
  const r = await run((x, _y) => op.neg(op.reduceSum(op.mul(op.logSoftmax(x, 0), op.oneHot(op.cast(op.sumAll(_y), 'int64'), x, 0)), [0], false)), [1, 2, 3], [3], [1], [1])
  const e = [1, 2, 3].map(Math.exp)
  const z = e[0] + e[1] + e[2]
  t.ok(Math.abs(r.out[0] + Math.log(e[1] / z)) < 1e-12)
  r.gx.forEach((g, i) => t.ok(Math.abs(g - (e[i] / z - (i === 1 ? 1 : 0))) < 1e-12, `component ${i}`))
})

t.test('float64 log_softmax: NaN rows where a row holds NaN or +Infinity, as PyTorch; a finite row whose sum overflows is no such row', async t => {
  // log_softmax(x) of one row at the class y marks (selected, not multiplied: -Infinity * 0 is NaN)
  const picked = async (x: number[], y: number[]): Promise<{ out: number[], gx: number[] }> =>
    await run((x, y) => op.sumAll(op.where(op.greater(y, 0), op.logSoftmax(x, 1), 0)), x, [1, x.length], y, [1, y.length])
  const huge = await picked([1e308, 1e308], [1, 0])
  t.same(huge.out, [-Math.log(2)], 'log_softmax([1e308, 1e308])[0] = -log 2 (its sum, 2e308, overflows)')
  t.same(huge.gx, [0.5, -0.5], 'gradient e_0 - softmax')
  const far = await picked([1e308, 1e308, -1e308], [0, 0, 1])
  t.same(far.out, [-Infinity], 'a class 2e308 below the others: -Infinity')
  t.same(far.gx, [-0.5, -0.5, 1])
  t.same((await picked([NaN, 1], [0, 1])).out, [NaN], 'a NaN in the row')
  t.same((await picked([Infinity, 1], [0, 1])).out, [NaN], '+Infinity in the row')
  const minus = await picked([-Infinity, 1], [0, 1])
  t.same([minus.out, minus.gx], [[0], [0, 0]], '-Infinity is a class of probability 0, no NaN')
})

t.test('softplus and log1p are accurate where the naive formulas are not', async t => {
  const r = await run((x, _y) => op.softplus(x), [-800, -40, 0, 40, 800], [5], [0], [1])
  t.ok(Math.abs(r.out[1] - Math.exp(-40)) / Math.exp(-40) < 1e-12, 'softplus(-40) = e^-40 to full precision')
  t.same([r.out[0], r.out[3], r.out[4]], [0, 40, 800], 'no overflow')
  t.ok(Math.abs(r.out[2] - Math.log(2)) < 1e-15)
  t.ok(Math.abs(r.gx[2] - 0.5) < 1e-15, 'gradient sigmoid(0)')
})

t.test('cumsum: d/dx sum(y * cumsum(x)) is the reversed cumulative sum of y', async t => {
  const r = await run((x, y) => op.sumAll(op.mul(op.cumsum(x, 1), y)), [1, 2, 3, 4, 5, 6], [2, 3], [1, 10, 100], [3])
  t.same(r.out, [1 + 10 * 3 + 100 * 6 + 4 + 10 * 9 + 100 * 15])
  t.same(r.gx, [111, 110, 100, 111, 110, 100])
})

t.test('pow with exponent 0 has gradient 0, also at x = 0 (torch pow_backward, not 0 * 0^-1)', async t => {
  t.same((await run((x, _y) => op.sumAll(op.pow(x, 0)), [0, 2], [2], [0], [1])).gx, [0, 0])
  t.same((await run((x, _y) => op.sumAll(op.pow(x, 2)), [0, 3], [2], [0], [1])).gx, [0, 6])
})

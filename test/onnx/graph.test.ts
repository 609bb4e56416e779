import t, { type Test } from 'tap'
import * as ort from 'onnxruntime-node'
import { type Dim, Graph, Value } from '../../src/onnx/graph'
import * as op from '../../src/onnx/ops'
import { concat, shift } from '../../src/onnx/ops-layout'
import { logSumExp, outer, scan } from '../../src/onnx/ops-scan'
import { backward } from '../../src/onnx/autodiff'

/**
 * The graph builder end to end: small graphs built with it, run by ONNX Runtime, against
 * values worked out by hand; and the checks `toModel` makes before it emits a model.
 */

type Feed = { dtype: 'float64', data: number[], shape: number[] } | { dtype: 'int64', data: number[], shape: number[] }

const dimsOf = (shape: number[]): Dim[] => shape.map(d => (d === 1 ? 1 : 'n'))

/** Runs the graph's model on the feeds; every output back as plain numbers. */
async function run (G: Graph, feeds: Record<string, Feed> = {}): Promise<Record<string, number[]>> {
  const s = await ort.InferenceSession.create(G.toModel())
  const inputs: Record<string, ort.Tensor> = {}
  for (const [name, f] of Object.entries(feeds)) {
    inputs[name] = f.dtype === 'int64'
      ? new ort.Tensor('int64', BigInt64Array.from(f.data, BigInt), f.shape)
      : new ort.Tensor('float64', Float64Array.from(f.data), f.shape)
  }
  const r = await s.run(inputs)
  await s.release()
  const out: Record<string, number[]> = {}
  for (const [name, v] of Object.entries(r)) out[name] = Array.from(v.data as ArrayLike<number | bigint>, Number)
  return out
}

/** Asserts two number lists agree to a relative 1e-12 (float64 throughout). */
function close (t: Test, got: number[], want: number[], what: string): void {
  t.equal(got.length, want.length, `${what}: length`)
  got.forEach((g, i) => t.ok(Math.abs(g - want[i]) <= 1e-12 * Math.max(1, Math.abs(want[i])), `${what}[${i}]: ${g} vs ${want[i]}`))
}

const f64 = (data: number[], shape: number[]): Feed => ({ dtype: 'float64', data, shape })

t.test('elementwise ops broadcast as numpy does', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', dimsOf([2, 3]))
  const y = G.input('y', 'float64', dimsOf([3]))
  // (x - y)^2 / 2 + 1, y broadcast over the rows
  G.output('out', op.add(op.div(op.square(op.sub(x, y)), 2), 1))
  const r = await run(G, { x: f64([1, 2, 3, 4, 5, 6], [2, 3]), y: f64([1, 0, 5], [3]) })
  close(t, r.out, [1, 3, 3, 5.5, 13.5, 1.5], 'out')
})

t.test('reductions, shapes and indexing give the hand-worked values', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', dimsOf([2, 3]))
  const idx = G.input('idx', 'int64', dimsOf([2]))
  G.output('rows', op.reduceSum(x, [1], false))
  G.output('cols', op.reduceSum(x, [0], true))
  G.output('all', op.sumAll(x))
  G.output('max', op.reduceMax(x, [-1], false))
  G.output('n', op.numel(x))
  G.output('d1', op.dimSize(x, -1))
  G.output('d0', op.dimSize(x, 0, 'int64'))
  G.output('range', op.arange(op.dimSize(x, 1, 'int64')))
  G.output('cumsum', op.cumsum(x, 1))
  G.output('exclusive', op.cumsum(x, 1, { exclusive: true, reverse: true }))
  G.output('zeros', op.zerosLike(x))
  G.output('sevens', op.fill(op.shapeOf(idx), 7, 'int64', idx.dims))
  G.output('picked', op.squeeze(op.gatherElements(x, op.unsqueeze(idx, [1]), 1), [1]))
  G.output('onehot', op.oneHot(idx, x, 1))
  G.output('scattered', op.scatterAdd(x, op.unsqueeze(idx, [1]), op.unsqueeze(G.constant([10, 20]), [1]), 1))
  const r = await run(G, { x: f64([1, 2, 3, 4, 5, 6], [2, 3]), idx: { dtype: 'int64', data: [2, 0], shape: [2] } })
  close(t, r.rows, [6, 15], 'rows')
  close(t, r.cols, [5, 7, 9], 'cols')
  close(t, r.all, [21], 'all')
  close(t, r.max, [3, 6], 'max')
  close(t, r.n, [6], 'numel')
  close(t, r.d1, [3], 'dimSize float')
  t.same(r.d0, [2], 'dimSize int64')
  t.same(r.range, [0, 1, 2])
  close(t, r.cumsum, [1, 3, 6, 4, 9, 15], 'cumsum')
  close(t, r.exclusive, [5, 3, 0, 11, 6, 0], 'exclusive reverse cumsum')
  close(t, r.zeros, [0, 0, 0, 0, 0, 0], 'zerosLike')
  t.same(r.sevens, [7, 7])
  close(t, r.picked, [3, 4], 'x[i, idx[i]]')
  close(t, r.onehot, [0, 0, 1, 1, 0, 0], 'oneHot')
  close(t, r.scattered, [0, 0, 10, 20, 0, 0], 'scatterAdd')
})

t.test('constants are shared by value, NaN and the infinities each apart', async t => {
  const G = new Graph('g', 'float64')
  t.equal(G.constant(2), G.constant(2), 'one initializer per value')
  t.not(G.constant(2), G.constant(2, 'int64'), 'and per dtype')
  const specials = [NaN, Infinity, -Infinity].map(v => G.constant(v))
  t.equal(new Set(specials.map(v => v.name)).size, 3, 'NaN, +inf and -inf are three constants')
  G.output('out', concat(specials.map(v => op.unsqueeze(v, [0])), 0))
  t.same((await run(G)).out, [NaN, Infinity, -Infinity])
})

t.test('withFloat types the literals of the part it builds, and only of that part', async t => {
  const G = new Graph('g', 'float32')
  const x = G.input('x', 'float64', [])
  const wide = G.withFloat('float64', () => {
    t.equal(G.float, 'float64', 'inside: float64')
    // 1e8 + 0.5 is no float32: the literal must be float64 for the sum to keep its half
    return op.add(x, 1e8 + 0.5)
  })
  t.equal(G.float, 'float32', 'outside again: the graph\'s own')
  t.equal(G.constant(1).dtype, 'float32', 'a literal after it is float32')
  t.throws(() => G.withFloat('float64', () => { throw new Error('built wrong') }), /built wrong/)
  t.equal(G.float, 'float32', 'a part that throws leaves the graph\'s float as it was')
  G.output('wide', wide)
  t.same((await run(G, { x: f64([0.25], []) })).wide, [1e8 + 0.75])
})

t.test('logSumExp keeps large log-values exact while it exponentiates their differences in float32', async t => {
  const G = new Graph('g', 'float64')
  const a = G.input('a', 'float64', [])
  const b = G.input('b', 'float64', [])
  const negInf = G.constant(-Infinity)
  G.output('near32', logSumExp([a, b], negInf, 'float32'))
  G.output('none', logSumExp([negInf, negInf], negInf, 'float32'))
  // log(e^a + e^b) = a + log(1 + e^(b - a)): only the small log1p term has float32's rounding
  // (some 3e-8 here), where float32 throughout would round a = 1000.000123 by 1e-6 and more
  const r = await run(G, { a: f64([1000.000123], []), b: f64([999.000123], []) })
  t.ok(Math.abs(r.near32[0] - (1000.000123 + Math.log1p(Math.exp(-1)))) < 1e-7, `near32: ${r.near32[0]}`)
  t.same(r.none, [-Infinity], 'every term -inf: -inf')
})

t.test('autodiff matches the hand derivative of f(x, y) = sum(log(x) * y + x / y)', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', dimsOf([3]), true)
  const y = G.input('y', 'float64', dimsOf([3]), true)
  const f = op.sumAll(op.add(op.mul(op.log(x), y), op.div(x, y)))
  const [gx, gy] = backward(f, G.constant(1), [x, y])
  G.output('f', f)
  G.output('gx', gx)
  G.output('gy', gy)
  const xs = [0.5, 2, 3]
  const ys = [4, -1, 0.25]
  const r = await run(G, { x: f64(xs, [3]), y: f64(ys, [3]) })
  close(t, r.f, [xs.reduce((s, xi, i) => s + Math.log(xi) * ys[i] + xi / ys[i], 0)], 'f')
  // df/dx = y / x + 1 / y, df/dy = log(x) - x / y^2
  close(t, r.gx, xs.map((xi, i) => ys[i] / xi + 1 / ys[i]), 'df/dx')
  close(t, r.gy, xs.map((xi, i) => Math.log(xi) - xi / ys[i] ** 2), 'df/dy')
})

t.test('a custom gradient receives the values its forward saved', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', dimsOf([3]), true)
  // e^x with its own gradient g * e^x, reading the forward's e^x instead of building another
  let seen: Value | undefined
  const e = op.custom([x], () => {
    const value = op.exp(x)
    return { value, saved: { value } }
  }, (g, saved) => {
    seen = saved.value
    return [op.mul(g, saved.value)]
  })
  const [gx] = backward(op.sumAll(op.mul(e, 3)), G.constant(1), [x])
  G.output('e', e)
  G.output('gx', gx)
  t.equal(seen?.name, e.name, 'the saved value is the forward output')
  const exps = G.toGraphProto().node?.filter(n => n.opType === 'Exp') ?? []
  t.equal(exps.length, 1, 'the gradient reuses the forward node: one Exp in the model')
  const r = await run(G, { x: f64([0, 1, -2], [3]) })
  close(t, r.e, [1, Math.E, Math.exp(-2)], 'e^x')
  close(t, r.gx, [3, 3 * Math.E, 3 * Math.exp(-2)], '3 e^x')
})

t.test('a custom gradient overrides the derivative of its forward, which is not differentiated', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', dimsOf([3]), true)
  // clamp_min with a straight-through gradient (as gaussian_nll clamps its variance)
  const c = op.custom([x], () => op.clampMin(x, 1), g => [g])
  const [gx] = backward(op.sumAll(op.mul(c, c)), G.constant(1), [x])
  G.output('c', c)
  G.output('gx', gx)
  t.same(G.tape.filter(e => e.inputs.includes(x)).map(e => e.output.name), [c.name], 'x is read on the tape by the custom op alone')
  const r = await run(G, { x: f64([-3, 1, 2], [3]) })
  close(t, r.c, [1, 1, 2], 'clamped')
  close(t, r.gx, [2, 2, 4], '2c, passed straight through the clamp')
})

t.test('a Scan reads outer values through its body and runs a recursion', async t => {
  const G = new Graph('g', 'float64')
  const xs = G.input('xs', 'float64', dimsOf([4, 2]))
  const scale = G.input('scale', 'float64', [])
  const negInf = G.constant(-Infinity)
  // running log-sum-exp of scale * x over the rows, and each row shifted right by one
  const res = scan(G, {
    states: [op.fill(G.constant([2], 'int64'), -Infinity, 'float64', ['n'])],
    inputs: [xs],
    body: (b, [acc], [row]) => {
      const next = logSumExp([acc, op.mul(row, outer(b, scale))], outer(b, negInf))
      return { states: [next], outputs: [next, shift(row, 1, 0, outer(b, G.constant(0)))] }
    }
  })
  G.output('last', res.states[0])
  G.output('running', res.outputs[0])
  G.output('shifted', res.outputs[1])
  const data = [0, 1, 2, -1, 0.5, 3, -2, 0]
  const r = await run(G, { xs: f64(data, [4, 2]), scale: f64([2], []) })
  const running: number[] = []
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0
      for (let k = 0; k <= i; k++) s += Math.exp(2 * data[2 * k + j])
      running.push(Math.log(s))
    }
  }
  close(t, r.running, running, 'running log-sum-exp')
  close(t, r.last, running.slice(6), 'final state')
  close(t, r.shifted, [0, 0, 0, 2, 0, 0.5, 0, -2], 'rows shifted right')
})

t.test('toModel refuses a node input that is not defined', async t => {
  const G = new Graph('g', 'float64')
  const x = G.input('x', 'float64', [])
  const ghost = new Value(G, 'ghost', 'float64', [], false)
  G.output('out', op.add(x, ghost))
  t.throws(() => G.toModel(), { code: 'INTERNAL', message: /graph g: input 1 of node g\/Add_\d+ \(Add\) is ghost, which is not defined before it/ })
})

t.test('toModel refuses a value of another graph', async t => {
  const other = new Graph('other', 'float64')
  const y = other.input('y', 'float64', [])
  const G = new Graph('g', 'float64')
  G.output('out', op.add(G.input('x', 'float64', []), y))
  t.throws(() => G.toModel(), { code: 'INTERNAL', message: /graph g: input 1 of node g\/Add_\d+ \(Add\) is y, which is not defined/ })
  t.ok(other.toModel() instanceof Uint8Array, 'while the graph it belongs to is fine')
})

t.test('toModel refuses a graph output that nothing produces', async t => {
  const G = new Graph('g', 'float64')
  G.input('x', 'float64', [])
  G.output('result', new Value(G, 'result', 'float64', [], false))
  t.throws(() => G.toModel(), { code: 'INTERNAL', message: 'graph g: output result is not produced by any node, input or initializer' })
})

t.test('toModel checks Scan bodies: an outer value must exist in the enclosing graph', async t => {
  const G = new Graph('g', 'float64')
  const xs = G.input('xs', 'float64', dimsOf([3]))
  const missing = new Value(G, 'missing', 'float64', [], false)
  const res = scan(G, {
    states: [G.constant(0)],
    inputs: [xs],
    body: (b, [acc], [x]) => ({ states: [op.add(acc, op.mul(x, outer(b, missing)))], outputs: [] })
  })
  G.output('sum', res.states[0])
  t.throws(() => G.toModel(), { code: 'INTERNAL', message: /graph g\/scan_body_\d+: input 1 of node .*\(Mul\) is missing, which is not defined before it/ })
})

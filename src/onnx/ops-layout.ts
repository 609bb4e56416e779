import { type Dim, type Value } from './graph'
import { axisOf, shapeOf } from './ops'

/**
 * Layout ops: they move, join or repeat elements without arithmetic. Those with a gradient
 * record their VJP; the others (no gradient) serve untracked index plumbing and the insides
 * of `custom` ops.
 */

/** x with its axes permuted (ONNX Transpose). Gradient transposed back. */
export function transpose (x: Value, perm: readonly number[]): Value {
  const G = x.graph
  const out = G.node('Transpose', [x], { perm: [...perm] }, x.dtype, perm.map(p => x.dims[p]))
  return G.record([x], out, g => [transpose(g, perm.map((_, i) => perm.indexOf(i)))])
}

/** x reshaped to a run-time shape (1-D int64, taken literally: zeros are sizes) with the given static dims. Gradient reshaped back. */
export function reshape (x: Value, shape: Value, dims: readonly Dim[]): Value {
  const G = x.graph
  const out = G.node('Reshape', [x, shape], { allowzero: 1 }, x.dtype, dims)
  return G.record([x], out, g => [reshape(g, shapeOf(x), x.dims)])
}

/** x with the axes from `axis` on merged into one: [d0, ..., d(axis-1), rest]; axis 0 gives [1, numel]. Empty tensors allowed. */
export function flattenFrom (x: Value, axis: number): Value {
  const G = x.graph
  const tail: Dim = x.dims.slice(axis).every(d => d === 1) ? 1 : 'n'
  const rest = G.node('ReduceProd', [G.node('Shape', [x], { start: axis }, 'int64', ['n'])], { keepdims: 1 }, 'int64', [1])
  const lead = axis === 0 ? G.constant([1], 'int64') : G.node('Shape', [x], { start: 0, end: axis }, 'int64', [axis === 1 ? 1 : 'n'])
  const shape = G.node('Concat', [lead, rest], { axis: 0 }, 'int64', ['n'])
  return reshape(x, shape, [...(axis === 0 ? [1 as Dim] : x.dims.slice(0, axis)), tail])
}

/** Concatenation along `axis` (no gradient). */
export function concat (xs: Value[], axis: number): Value {
  const ax = axisOf(xs[0], axis)
  const dims = xs[0].dims.map((d, i) => (i === ax && xs.length > 1 ? 'n' : d))
  return xs[0].graph.node('Concat', xs, { axis: ax }, xs[0].dtype, dims)
}

/**
 * x shifted by `by` places along `axis` (to higher indices when positive), keeping its size:
 * the places left empty hold `fill` (a 0-d value of x's type). One Pad with a negative end
 * pad (no gradient).
 */
export function shift (x: Value, by: number, axis: number, fill: Value): Value {
  const G = x.graph
  const pads = new Array<number>(2 * x.rank).fill(0)
  pads[axis] = by
  pads[x.rank + axis] = -by
  return G.node('Pad', [x, G.constant(pads, 'int64'), fill], {}, x.dtype, x.dims)
}

/** x broadcast to a run-time shape (a 1-D int64), with the given static dims (no gradient; `expandAs` has one). */
export function expandTo (x: Value, shape: Value, dims: readonly Dim[]): Value {
  return x.graph.node('Expand', [x, shape], {}, x.dtype, dims)
}

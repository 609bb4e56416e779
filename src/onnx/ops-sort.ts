import { type Dim, type Value } from './graph'
import { gatherElements, shapeOf, zerosLike } from './ops'

/**
 * Sorting, permutation and layout ops, for the sort-based losses (Lovasz). Each records its
 * VJP, so they may sit on a differentiated path or inside untracked weight computations.
 */

function axisOf (x: Value, axis: number): number { return axis < 0 ? axis + x.rank : axis }

/** The permutation that sorts x descending along `axis` (ONNX TopK, k = the axis's size); ties keep ascending index order. No gradient. */
export function argsortDescending (x: Value, axis = -1): Value {
  const G = x.graph
  const ax = axisOf(x, axis)
  return G.untracked(() => {
    const size = G.node('Shape', [x], { start: ax, end: ax + 1 }, 'int64', [1])
    const numel = G.node('Reshape', [G.node('Size', [x], {}, 'int64', []), G.constant([1], 'int64')], {}, 'int64', [1])
    // ORT's TopK dies of SIGFPE on zero rows with k > 0: k = min(size, numel) is 0 then, and
    // the empty result is reshaped to x's shape
    const k = G.node('Min', [size, numel], {}, 'int64', [1])
    const order = G.nodeOutputs('TopK', [x, k], { axis: ax, largest: 1, sorted: 1 }, [{ dtype: x.dtype, dims: x.dims }, { dtype: 'int64', dims: x.dims }])[1]
    return G.node('Reshape', [order, shapeOf(x)], { allowzero: 1 }, 'int64', x.dims)
  })
}

/** x sorted descending along `axis`, and the permutation (values = gather(x, indices)). Gradient of the values scattered back. */
export function sortDescending (x: Value, axis = -1): { values: Value, indices: Value } {
  const indices = argsortDescending(x, axis)
  return { values: gatherElements(x, indices, axisOf(x, axis)), indices }
}

/** The inverse of gather(x, indices) along `axis` for a permutation `indices`: out[indices[i]] = x[i]. Gradient gathered back. */
export function unpermute (x: Value, indices: Value, axis: number): Value {
  const G = x.graph
  const ax = axisOf(x, axis)
  const out = G.node('ScatterElements', [zerosLike(x, x.dtype), indices, x], { axis: ax }, x.dtype, x.dims)
  return G.record([x], out, g => [gatherElements(g, indices, ax)])
}

/** Cumulative sum along `axis`: `exclusive` starts from 0, `reverse` runs from the end. Gradient: the cumulative sum the other way. */
export function cumsum (x: Value, axis: number, opts: { exclusive?: boolean, reverse?: boolean } = {}): Value {
  const G = x.graph
  const ax = axisOf(x, axis)
  const exclusive = opts.exclusive === true
  const reverse = opts.reverse === true
  const out = G.node('CumSum', [x, G.constant(ax, 'int64')], { exclusive: exclusive ? 1 : 0, reverse: reverse ? 1 : 0 }, x.dtype, x.dims)
  return G.record([x], out, g => [cumsum(g, ax, { exclusive, reverse: !reverse })])
}

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

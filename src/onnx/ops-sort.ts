import { type Value } from './graph'
import { axisOf, gatherElements, shapeOf, zerosLike } from './ops'

/**
 * Sorting and permutation ops. Each records its VJP, so they may sit on a differentiated path
 * or inside untracked weight computations.
 */

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

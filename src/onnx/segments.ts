import { type Value } from './graph'
import { cast, custom, expandAs, fill, reduceSum, take, unsqueeze } from './ops'

/**
 * Per-request sums of a batched graph: rows of `x` (axis 0) are summed into the request
 * they belong to (`graph.segments`), giving one value per request. Accumulated in float64, as
 * a request's sum is alone (`accurateSum`): ORT adds float32 one element after another, and a
 * request's rows in a batch are as many as alone. Its gradient gathers each request's upstream
 * gradient back onto the request's rows.
 */
export function segmentSum (x: Value): Value {
  const G = x.graph
  const seg = G.segments
  if (seg === undefined) throw new Error('segmentSum needs a batched graph')
  return custom([x], () => {
    const wide = cast(x, 'float64')
    const rows = x.rank > 1 ? reduceSum(wide, axesAfterFirst(x.rank), false) : wide
    const zeros = fill(seg.count, 0, 'float64', ['n'])
    return cast(G.node('ScatterElements', [zeros, seg.ids, rows], { axis: 0, reduction: 'add' }, 'float64', ['n']), x.dtype)
  }, g => [perRow(g, x)])
}

/** Ones shaped like x (`elements`) or like its first axis (`rows`); constant, no gradient. */
export function onesLike (x: Value, what: 'elements' | 'rows'): Value {
  const G = x.graph
  const shape = G.node('Shape', [x], what === 'rows' ? { start: 0, end: 1 } : {}, 'int64', ['n'])
  return fill(shape, 1, G.float, what === 'rows' ? ['n'] : x.dims.map(() => 'n'))
}

/** Each request's value (one per request) spread onto its rows, broadcastable against `like`. */
export function perRow (perRequest: Value, like: Value): Value {
  const seg = like.graph.segments
  if (seg === undefined) throw new Error('perRow needs a batched graph')
  const rows = take(perRequest, seg.ids)
  const lifted = like.rank > 1 ? unsqueeze(rows, axesAfterFirst(like.rank)) : rows
  return expandAs(lifted, like)
}

/**
 * An option value placed against `like`: alone it is a 0-d input and broadcasts as it is; in a
 * batch it is one value per row ([rows]) and gets `like`'s rank, lined up with its rows.
 */
export function rowValue (option: Value, like: Value): Value {
  if (option.rank === 0 || like.rank <= 1) return option
  return unsqueeze(option, axesAfterFirst(like.rank))
}

/** 1, ..., rank-1: every axis but the rows'. */
function axesAfterFirst (rank: number): number[] { return Array.from({ length: rank - 1 }, (_, i) => i + 1) }

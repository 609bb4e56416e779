import { type Value } from '../onnx/graph'
import { custom, dimSize, div, expandAs, numel, sumAll } from '../onnx/ops'
import { onesLike, perRow, segmentSum } from '../onnx/segments'
import { type Reduction } from './loss'

/**
 * Applies a reduction to an unreduced loss, as PyTorch does: `mean` over every element
 * (NaN for an empty loss), `sum`, `batchmean` (sum over the first dimension of `batchOf`,
 * default the loss itself), or `none`. In a batched graph every reduction is per request.
 */
export function reduce (loss: Value, reduction: Reduction, batchOf: Value = loss): Value {
  if (reduction === 'none') return loss
  if (loss.graph.segments !== undefined) {
    if (reduction === 'sum') return segmentSum(loss)
    // each request's count of elements (mean) or rows (batchmean)
    return div(segmentSum(loss), segmentSum(onesLike(loss, reduction === 'mean' ? 'elements' : 'rows')))
  }
  if (reduction === 'sum') return sumAll(loss)
  if (reduction === 'mean') return div(sumAll(loss), numel(loss))
  return batchOf.rank === 0 ? sumAll(loss) : div(sumAll(loss), dimSize(batchOf, 0))
}

/**
 * A weighted mean, sum(loss) / sum(weights), as PyTorch's weighted nll/cross_entropy. Each
 * sample's gradient is g / sum(weights), Infinity when the weights sum to 0: the caller zeroes
 * its ignored samples by selection (their gradient is then 0, as in PyTorch's kernel, even when
 * every sample is ignored), and a sample of weight 0 that is not ignored gets 0 · Infinity, NaN,
 * as PyTorch's -w[t] · g / total does.
 */
export function reduceWeighted (loss: Value, weights: Value, reduction: Reduction): Value {
  if (reduction !== 'mean') return reduce(loss, reduction)
  const batched = loss.graph.segments !== undefined
  const total = batched ? segmentSum(weights) : sumAll(weights)
  return custom([loss], () => div(batched ? segmentSum(loss) : sumAll(loss), total), g => [batched ? perRow(div(g, total), loss) : expandAs(div(g, total), loss)])
}

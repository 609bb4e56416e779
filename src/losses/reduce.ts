import { type Value } from '../onnx/graph'
import { custom, div, equal, expandAs, numel, sumAll, where } from '../onnx/ops'
import { type Reduction } from './loss'

/**
 * Applies a reduction to an unreduced loss, as PyTorch does: `mean` over every element
 * (NaN for an empty loss), `sum`, or `none`. `batchmean` is kl_div's and handled there.
 */
export function reduce (loss: Value, reduction: Reduction): Value {
  if (reduction === 'sum') return sumAll(loss)
  if (reduction === 'mean') return div(sumAll(loss), numel(loss))
  return loss
}

/**
 * A weighted mean, sum(loss) / sum(weights), as PyTorch's weighted nll/cross_entropy. As in
 * PyTorch's kernel, samples of weight 0 (ignored) get a zero gradient even when every sample
 * is ignored and the mean itself is NaN.
 */
export function reduceWeighted (loss: Value, weights: Value, reduction: Reduction): Value {
  if (reduction !== 'mean') return reduce(loss, reduction)
  const total = sumAll(weights)
  return custom([loss], () => div(sumAll(loss), total), g => [where(equal(weights, 0), 0, expandAs(div(g, total), loss))])
}

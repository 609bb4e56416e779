import { fail } from '../errors'
import { type Value } from '../onnx/graph'
import { add, clampMin, cumsum, dimSize, div, gatherElements, greater, mul, reduceSum, sub, sumAll, where } from '../onnx/ops'
import { argsortDescending, unpermute } from '../onnx/ops-sort'
import { type Reduction } from './loss'
import { reduce } from './reduce'

/**
 * Shared by lovasz_hinge and lovasz_softmax: the Lovasz extension of the Jaccard loss (M.
 * Berman's lovasz_losses.py). Sorting a set's errors descending, the pixel at sorted place i
 * weighs J_i - J_(i-1), where J_i = 1 - (gts - fg_1..i) / (gts + bg_1..i) is the Jaccard loss
 * of predicting the top i pixels (`lovasz_grad`); the set's loss is sum(f(error) * weight).
 * The weights depend only on the order and the labels, so, as autograd through torch.sort
 * gives, the gradient is weight * f'(error): they are computed untracked.
 */

/**
 * The Lovasz weight of every element of `errors`, in its own place. `toSets` lays a tensor
 * out as [..., set] (one set of pixels per row of the last axis) and `fromSets` lays weights
 * back out like `errors`. `fg` is 1 on foreground pixels and 0 on ignored ones; `valid` is 0
 * on ignored pixels, which count in neither cumulative sum and so weigh 0 wherever they sort,
 * exactly as if dropped.
 */
export function lovaszWeights (errors: Value, fg: Value, valid: Value, toSets: (v: Value) => Value, fromSets: (w: Value) => Value): Value {
  return errors.graph.untracked(() => fromSets(setWeights(toSets(errors), toSets(fg), toSets(valid))))
}

function setWeights (errors: Value, fg: Value, valid: Value): Value {
  const axis = errors.rank - 1
  const kept = greater(valid, 0)
  // ignored pixels sort last whatever their error: a NaN there (a NaN or infinite logit) would
  // otherwise take its place in the order and move the valid pixels around it
  const order = argsortDescending(where(kept, errors, -Infinity), axis)
  const fgSorted = gatherElements(fg, order, axis)
  const validSorted = gatherElements(valid, order, axis)
  const bgSorted = mul(sub(1, fgSorted), validSorted)
  const gts = reduceSum(fg, [axis], true)
  // J after the first i pixels (inclusive) or before them (exclusive); an empty union only
  // precedes the first pixel of a set without foreground (J = 0) or lies among ignored pixels
  const jaccard = (exclusive: boolean): Value => {
    const union = add(gts, cumsum(bgSorted, axis, { exclusive }))
    const inter = sub(gts, cumsum(fgSorted, axis, { exclusive }))
    return where(greater(union, 0), sub(1, div(inter, union)), 0)
  }
  const w = where(greater(validSorted, 0), sub(jaccard(false), jaccard(true)), 0)
  return unpermute(w, order, axis)
}

/**
 * The per-image losses [N] reduced: the mean of no image is 0, as the reference's `mean` of an
 * empty list (empty=0), not PyTorch's NaN.
 */
export function reducePerImage (losses: Value, reduction: Reduction): Value {
  return reduction === 'mean' ? div(sumAll(losses), clampMin(dimSize(losses, 0), 1)) : reduce(losses, reduction)
}

/**
 * The API's reductions of a Lovasz loss: one loss over the whole batch (`mean` only), or with
 * per_image one per image, returned (`none`), summed or averaged.
 */
export function checkPerImageReduction (perImage: boolean, reduction: Reduction): void {
  if (!perImage && reduction !== 'mean') {
    fail('INVALID_OPTION', `reduction: "${reduction}" needs per_image: true (one loss per image); with per_image: false the loss is one value over the whole batch and only "mean" is accepted`)
  }
}

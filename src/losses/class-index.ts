import { fail } from '../errors'
import { type Value } from '../onnx/graph'
import { rowValue } from '../onnx/segments'
import { equal, gatherElements, mask, mul, neg, not, squeeze, take, unsqueeze, where } from '../onnx/ops'
import { type Arg } from './loss'
import { expectIndicesInRange } from './checks'
import { fmtShape, sameShape } from '../tensor/tensor'

/** The class axis of a classifier's input: 0 for an unbatched [C], else 1 ([N,C,d1,...]). */
export function classAxis (rank: number): number { return rank === 1 ? 0 : 1 }

/** The input's shape without its class axis: the shape of index targets and per-sample losses. */
export function sampleShape (input: Arg): number[] {
  return input.shape.filter((_, i) => i !== classAxis(input.shape.length))
}

/**
 * Checks an [C] / [N,C] / [N,C,d1,...] input against class-index targets and an optional
 * per-class weight, as nll_loss does; returns the per-sample shape.
 */
export function checkClassIndexArgs (args: Record<string, Arg>, ignoreIndex: number | undefined): number[] {
  const { input, target, weight } = args
  if (input.shape.length === 0) fail('SHAPE_MISMATCH', 'input: expected [C], [N,C] or [N,C,d1,...], got a 0-d tensor')
  const classes = input.shape[classAxis(input.shape.length)]
  // every target would be out of range or ignored; PyTorch answers NaN, the graph has no class to pick
  if (classes === 0) fail('SHAPE_MISMATCH', `input: the class dim of ${fmtShape(input.shape)} is empty; expected at least one class`)
  const samples = sampleShape(input)
  if (!sameShape(target.shape, samples)) {
    fail('SHAPE_MISMATCH', `target: class indices for input ${fmtShape(input.shape)} must have shape ${fmtShape(samples)} (the input's shape without dim C), got ${fmtShape(target.shape)}`)
  }
  if (weight !== undefined && !sameShape(weight.shape, [classes])) {
    fail('SHAPE_MISMATCH', `weight: expected one weight per class, shape [${classes}], got ${fmtShape(weight.shape)}`)
  }
  expectIndicesInRange('target', target, classes, ignoreIndex)
  return samples
}

/**
 * Per-sample -w[t] * logp[t] with ignored samples zeroed, and the per-sample weights w[t]
 * (0 when ignored) that a weighted mean divides by; `valid` marks the samples not ignored.
 * Picks with GatherElements so that -inf log-probabilities of other classes (masked logits)
 * do not turn into NaN, and zeroes ignored samples by selection, not by a product, so that
 * their logits (-inf or NaN at a padded position) or the weight of the class standing in for
 * their target give neither value nor gradient, as in PyTorch.
 */
export function pickedNll (logp: Value, target: Value, weight: Value | undefined, ignoreIndex: Value, axis: number): { loss: Value, weights: Value, valid: Value } {
  const valid = not(equal(target, rowValue(ignoreIndex, target)))
  const safeTarget = where(valid, target, logp.graph.constant(0, 'int64'))
  const picked = squeeze(gatherElements(logp, unsqueeze(safeTarget, [axis]), axis), [axis])
  if (weight === undefined) return { loss: where(valid, neg(picked), 0), weights: mask(valid), valid }
  const weights = where(valid, take(weight, safeTarget), 0)
  return { loss: where(valid, neg(mul(picked, weights)), 0), weights, valid }
}

/** A per-class weight [C] shaped to broadcast along the class axis of a rank-`rank` input. */
export function classWeightAlong (weight: Value, rank: number): Value {
  const axis = classAxis(rank)
  const trailing = rank - axis - 1
  return trailing > 0 ? unsqueeze(weight, Array.from({ length: trailing }, (_, i) => i + 1)) : weight
}

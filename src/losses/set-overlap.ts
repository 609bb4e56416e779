import { fail } from '../errors'
import { type Value } from '../onnx/graph'
import { abs, add, cast, clampMin, div, equal, exp, greater, logSigmoid, mask, mul, not, oneHot, type Operand, reduceSum, softmax, sub, sumAll, unsqueeze } from '../onnx/ops'
import { StringEnum } from '../../schemas/enum'
import { type Arg, type ArgDecl, type Inputs, type Options, type StructuralOptions, Type } from './loss'
import { reduce } from './reduce'
import { expectIndicesInRange, expectShape, expectUnit } from './checks'
import { fmtShape, sameShape } from '../tensor/tensor'

/** The tensor arguments of dice, jaccard and tversky. */
export const OVERLAP_ARGS: ArgDecl[] = [
  { name: 'input', kind: 'float', grad: true, doc: 'Logits (or probabilities with from_logits: false) [N,C,d1,...]; C = 1 for mode "binary".' },
  {
    name: 'target',
    kind: 'float-or-index',
    // a binary target is cast to the input's type whatever its shape: fractional values too
    nestedFloats: options => options.mode === 'binary',
    doc: 'binary: 0/1, the input\'s shape or [N,d1,...]; multiclass: class indices [N,d1,...]; multilabel: 0/1, the input\'s shape.'
  }
]

/**
 * Shared by dice, jaccard and tversky: segmentation_models_pytorch v0.5's DiceLoss,
 * JaccardLoss and TverskyLoss (log_loss=False, classes=None). Per class, sums over the batch
 * and the pixels of p (probabilities), t (0/1 target, one-hot for multiclass) and their
 * products give a score; the loss is the mean over classes of (1 - score), a class absent
 * from the target giving 0 but still counting. ignore_index zeroes p and t at ignored pixels.
 */
export const OVERLAP_OPTIONS = {
  mode: StringEnum(['binary', 'multiclass', 'multilabel'], { description: '"binary": one foreground class; "multiclass": class-index targets, softmax over dim 1; "multilabel": independent 0/1 targets per class.' }),
  from_logits: Type.Boolean({ default: true, description: 'The input holds logits: softmax over dim 1 (multiclass) or sigmoid (binary, multilabel) first.' }),
  smooth: Type.Number({ default: 0.0, minimum: 0, description: 'Added to the numerator and the denominator of each score.' }),
  eps: Type.Number({ default: 1e-7, minimum: 0, description: 'Lower bound of each denominator.' }),
  ignore_index: Type.Optional(Type.Integer({ description: 'Target pixels equal to it are left out (default: none).' }))
}

type OverlapOptions = Options<typeof OVERLAP_OPTIONS>

const EMPTY_REASON = 'segmentation_models_pytorch views the input as (N, C, -1), which PyTorch refuses then'

/** The catalog note on what the reference cannot compute. */
export const OVERLAP_EMPTY_NOTE = 'An empty batch (N = 0), or no classes (C = 0) but in mode "binary", is refused (400 `SHAPE_MISMATCH`): segmentation_models_pytorch reshapes the input to (N, C, -1), and PyTorch raises for that.'

/** Shape, dtype and domain checks of the three modes; the loss is always one value. */
export function checkOverlap (a: Record<string, Arg>, o: OverlapOptions): number[] {
  if (o.reduction !== 'mean') fail('INVALID_OPTION', `reduction: only "mean" is accepted (the loss is one value over the whole batch), got "${o.reduction}"`)
  const { input, target } = a
  if (input.shape.length < 2) fail('SHAPE_MISMATCH', `input: expected [N,C,d1,...] (C = 1 for mode "binary"), got ${fmtShape(input.shape)}`)
  const withoutC = input.shape.filter((_, i) => i !== 1)
  // the reference views the batch as (N, C, -1) (binary: (N, 1, -1)), which PyTorch cannot do
  // with N = 0 or C = 0 (the -1 could be anything): it raises, and so the loss is refused here
  if (input.shape[0] === 0) fail('SHAPE_MISMATCH', `input: an empty batch ${fmtShape(input.shape)} (N = 0) has no loss: ${EMPTY_REASON}`)
  if (o.mode !== 'binary' && input.shape[1] === 0) fail('SHAPE_MISMATCH', `input: no classes ${fmtShape(input.shape)} (C = 0) in mode "${o.mode}": ${EMPTY_REASON}`)
  if (o.mode === 'multiclass') {
    if (target.kind !== 'index') {
      fail('INVALID_DTYPE', `target: mode "multiclass" takes class indices (int32/int64) shaped ${fmtShape(withoutC)}, got ${target.dtype ?? 'floats'} shaped ${fmtShape(target.shape)} (0/1 targets per class, shaped like the input, are mode "multilabel")`)
    }
    expectShape('target', target, withoutC, ` (the input's shape ${fmtShape(input.shape)} without dim C)`)
    expectIndicesInRange('target', target, input.shape[1], o.ignore_index)
  } else if (o.mode === 'binary') {
    if (!sameShape(target.shape, input.shape) && !(input.shape[1] === 1 && sameShape(target.shape, withoutC))) {
      fail('SHAPE_MISMATCH', `target: mode "binary" takes the input's shape ${fmtShape(input.shape)}${input.shape[1] === 1 ? ` or ${fmtShape(withoutC)}` : ''}, got ${fmtShape(target.shape)}`)
    }
    expectUnit('target', target, o.ignore_index)
  } else {
    expectShape('target', target, input.shape, ' (mode "multilabel": one 0/1 target per class and pixel)')
    expectUnit('target', target, o.ignore_index)
  }
  return []
}

/** Probabilities and targets, masked by ignore_index, and the per-class sum over batch and pixels. */
export interface Overlap { p: Value, t: Value, sums: (v: Value) => Value }

export function overlapInputs (x: Inputs, o: StructuralOptions<typeof OVERLAP_OPTIONS>): Overlap {
  const { input, target } = x
  const G = input.graph
  const multiclass = o.mode === 'multiclass'
  let p = !o.from_logits ? input : multiclass ? softmax(input, 1) : exp(logSigmoid(input))
  let t = multiclass ? oneHot(target, input, 1) : cast(target, G.float)
  let valid = x.ignore_index === undefined ? undefined : mask(not(equal(target, target.dtype === 'int64' ? x.ignore_index : cast(x.ignore_index, G.float))))
  // a binary target without the channel axis, or class indices: align with the input's dim 1
  if (t.rank < input.rank) t = unsqueeze(t, [1])
  if (valid !== undefined && valid.rank < input.rank) valid = unsqueeze(valid, [1])
  if (valid !== undefined) {
    p = mul(p, valid)
    t = mul(t, valid)
  }
  const pixelAxes = Array.from({ length: input.rank - 2 }, (_, i) => i + 2)
  // binary mode has one class: every element of the batch is one of its pixels
  const sums = (v: Value): Value => o.mode === 'binary' ? sumAll(v) : reduceSum(v, [0, ...pixelAxes], false)
  return { p, t, sums }
}

/**
 * segmentation_models_pytorch v0.5's soft_tversky_score per class, computed as it does:
 * I = (sum p + sum t - sum |p - t|) / 2, FP = sum p - I, FN = sum t - I, score =
 * (I + smooth) / max(I + alpha FP + beta FN + smooth, eps). I is sum(p t) for 0/1 targets but
 * not for fractional ones, and |p - t| has gradient sign(0) = 0 where p equals t.
 */
export function softTverskyScore ({ p, t, sums }: Overlap, alpha: Operand, beta: Operand, smooth: Operand, eps: Operand): Value {
  const pSum = sums(p)
  const tSum = sums(t)
  const intersection = div(sub(add(pSum, tSum), sums(abs(sub(p, t)))), 2)
  const fp = sub(pSum, intersection)
  const fn = sub(tSum, intersection)
  const denominator = add(add(add(intersection, mul(alpha, fp)), mul(beta, fn)), smooth)
  return div(add(intersection, smooth), clampMin(denominator, eps))
}

/** The mean over classes of (1 - score), classes without a target pixel giving 0. */
export function overlapLoss (score: Value, targetSums: Value): Value {
  return reduce(mul(sub(1, score), mask(greater(targetSums, 0))), 'mean')
}

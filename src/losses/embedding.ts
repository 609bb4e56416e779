import { fail } from '../errors'
import { type Operand, custom, div, equal, mul, reduceSum, sqrt, where, clampMin } from '../onnx/ops'
import { type Value } from '../onnx/graph'
import { type Arg } from './loss'
import { fmtShape, sameShape } from '../tensor/tensor'

/** Shared by the embedding and ranking losses: vector-pair shapes and targets, cosine similarity. */

/**
 * Requires the named arguments to be same-shaped batches of vectors, [N,D] (or one vector
 * [D]); the per-pair loss then has shape [N] (or []).
 */
export function vectorPairs (args: Record<string, Arg>, names: readonly string[]): number[] {
  const first = args[names[0]]
  if (first.shape.length !== 1 && first.shape.length !== 2) {
    fail('SHAPE_MISMATCH', `${names[0]}: expected vectors [N,D] (or one vector [D]), got ${fmtShape(first.shape)}`)
  }
  for (const n of names.slice(1)) {
    if (!sameShape(args[n].shape, first.shape)) fail('SHAPE_MISMATCH', `${n}: expected the shape of ${names[0]} ${fmtShape(first.shape)}, got ${fmtShape(args[n].shape)}`)
  }
  return first.shape.slice(0, -1)
}

/** Requires a per-pair target: shape [N] for inputs [N,D], [] for one vector. */
export function expectPairTarget (name: string, arg: Arg, pairs: readonly number[], input: string, inputShape: readonly number[]): void {
  if (!sameShape(arg.shape, pairs)) fail('SHAPE_MISMATCH', `${name}: expected one value per pair, shape ${fmtShape(pairs)} for ${input} ${fmtShape(inputShape)}, got ${fmtShape(arg.shape)}`)
}

/**
 * torch 1.13's F.cosine_similarity along the last axis: each vector divided by its norm
 * clamped to >= eps, then the dot product. Torch clamps the norms in place under no_grad, so
 * the norm's backward still runs with the clamped value as the norm: d||x||/dx = x / max(||x||, eps).
 */
export function cosineSimilarity (x1: Value, x2: Value, eps: Operand): Value {
  return reduceSum(mul(div(x1, clampedNorm(x1, eps)), div(x2, clampedNorm(x2, eps))), [-1], false)
}

function clampedNorm (x: Value, eps: Operand): Value {
  return custom([x], () => {
    const norm = clampMin(sqrt(reduceSum(mul(x, x), [-1], true)), eps)
    return { value: norm, saved: { norm } }
  }, (g, { norm }) => [mul(x, where(equal(norm, 0), 0, div(g, norm)))])
}

import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { type Value } from '../onnx/graph'
import { abs, add, cast, clampMin, custom, div, equal, maximum, mul, neg, pow, reduceSum, sign, square, sub, unsqueeze, where } from '../onnx/ops'
import { StringEnum } from '../../schemas/enum'
import { reduce } from './reduce'
import { cosineSimilarity, vectorPairs } from './embedding'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `F.triplet_margin_loss` (torch 1.13): max(0, margin + d(a, p) - d(a, n)) per triplet, with
 * d(x, y) = ||x - y + eps||_p; swap replaces d(a, n) by min(d(a, n), d(p, n)) (torch.min: an
 * exact tie splits the gradient in halves); the clamp passes the gradient at exactly 0.
 * distance "squared_euclidean" / "cosine" follow F.triplet_margin_with_distance_loss with
 * sum((x - y)^2) and 1 - F.cosine_similarity(x, y) (eps 1e-8), which sums d_pos - d_neg + margin.
 */
export default defineLoss({
  name: 'triplet_margin',
  summary: 'Triplet margin: the anchor must be closer to the positive than to the negative by a margin.',
  reference: 'torch.nn.functional.triplet_margin_loss',
  category: 'ranking',
  notes: [
    'With `swap`, an exact tie of d(a, n) and d(p, n) splits the gradient in halves, as torch.min does. The clamp passes the gradient at exactly 0.',
    '`distance` "squared_euclidean" and "cosine" follow `F.triplet_margin_with_distance_loss` with sum((x - y)^2) and 1 - `F.cosine_similarity(x, y)` (eps 1e-8); `p` and `eps` apply to "pairwise" only.'
  ],
  args: [
    { name: 'anchor', kind: 'float', grad: true, doc: 'Anchor embeddings [N,D] (or one [D], except with distance "cosine").' },
    { name: 'positive', kind: 'float', grad: true, doc: "Positive embeddings, the anchor's shape." },
    { name: 'negative', kind: 'float', grad: true, doc: "Negative embeddings, the anchor's shape." }
  ],
  options: {
    margin: Type.Number({ default: 1.0, description: 'How much closer the positive must be than the negative.' }),
    p: Type.Number({ default: 2.0, description: 'Norm degree of the pairwise distance (> 0; distance "pairwise" only).' }),
    eps: Type.Number({ default: 1e-6, description: 'Added to the difference before the norm (distance "pairwise" only).' }),
    swap: Type.Boolean({ default: false, description: 'Use min(d(a,n), d(p,n)) as the negative distance (distance swap).' }),
    distance: StringEnum(['pairwise', 'squared_euclidean', 'cosine'], { default: 'pairwise', description: '"pairwise": ||x - y + eps||_p; "squared_euclidean": sum((x - y)^2); "cosine": 1 - cosine similarity.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { anchor: [[0, 0.5], [1, 1]], positive: [[0.1, 0.4], [0.5, 1.5]], negative: [[1, 0], [1, 1.2]] },
  check: (a, o) => {
    const pairs = vectorPairs(a, ['anchor', 'positive', 'negative'])
    if (o.distance === 'pairwise' && !(o.p > 0)) fail('INVALID_OPTION', `p: the norm degree must be positive, got ${o.p}`)
    // F.cosine_similarity's default dim=1 does not exist for single vectors
    if (o.distance === 'cosine' && pairs.length === 0) fail('SHAPE_MISMATCH', `anchor: distance "cosine" takes batches of vectors [N,D], got ${fmtShape(a.anchor.shape)}`)
    return pairs
  },
  forward: (_g, x, o) => {
    const d = (u: Value, v: Value): Value =>
      o.distance === 'pairwise'
        ? pnorm(add(sub(u, v), x.eps), x.p)
        : o.distance === 'squared_euclidean'
          ? reduceSum(square(sub(u, v)), [-1], false)
          : sub(1, cosineSimilarity(u, v, 1e-8))
    const dPos = d(x.anchor, x.positive)
    let dNeg = d(x.anchor, x.negative)
    if (o.swap) dNeg = neg(maximum(neg(dNeg), neg(d(x.positive, x.negative))))
    // the two references add in different orders; kept for bitwise-close values at ties
    const hinge = o.distance === 'pairwise' ? sub(add(x.margin, dPos), dNeg) : add(sub(dPos, dNeg), x.margin)
    return reduce(clampMin(hinge, 0), o.reduction)
  }
})

/**
 * ||x||_p along the last axis, with torch.norm's backward: sgn(x) |x|^(p-1) g / ||x||^(p-1),
 * 0 where x or the norm is 0. torch 1.13's norm kernel holds p as a float32, so in float64 the
 * norm is taken with p rounded to float32 (p = 1.3 is 1.2999999523), while the backward uses
 * p itself: a relative difference of up to some 1e-7, past the float64 tolerance.
 */
function pnorm (x: Value, p: Value): Value {
  const kernelP = cast(cast(p, 'float32'), p.dtype)
  return custom([x], () => {
    const norm = pow(reduceSum(pow(abs(x), kernelP), [-1], false), div(1, kernelP))
    return { value: norm, saved: { norm } }
  }, (g, { norm }) => {
    const scale = where(equal(norm, 0), 0, div(g, pow(norm, sub(p, 1))))
    const slope = where(equal(x, 0), 0, mul(sign(x), pow(abs(x), sub(p, 1))))
    return [mul(slope, unsqueeze(scale, [-1]))]
  })
}

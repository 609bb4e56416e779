import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, clampMin, div, equal, mul, reduceSum, sqrt, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { expectSigns } from './checks'
import { expectPairTarget, vectorPairs } from './embedding'

/**
 * `F.cosine_embedding_loss` (torch 1.13): cos = sum(x1 x2) / sqrt((sum(x1^2) + 1e-12)(sum(x2^2)
 * + 1e-12)) per pair (no clamp: a zero vector gives cos 0 and a large finite gradient);
 * 1 - cos where t = 1, max(0, cos - margin) where t = -1, the clamp passing at exactly 0.
 */
export default defineLoss({
  name: 'cosine_embedding',
  summary: 'Cosine embedding: pulls similar pairs to cosine 1, pushes dissimilar ones below a margin.',
  reference: 'torch.nn.functional.cosine_embedding_loss',
  category: 'ranking',
  notes: [
    'The cosine is torch 1.13\'s sum(x1 x2) / sqrt((sum x1^2 + 1e-12)(sum x2^2 + 1e-12)), without a clamp: a zero vector gives cosine 0 and a large finite gradient. The clamp of dissimilar pairs passes the gradient at exactly 0.'
  ],
  args: [
    { name: 'input1', kind: 'float', grad: true, doc: 'First vectors [N,D] (or one vector [D]).' },
    { name: 'input2', kind: 'float', grad: true, doc: "Second vectors, input1's shape." },
    { name: 'target', kind: 'float', integers: true, doc: '1 for similar pairs, -1 for dissimilar ones: [N] (or [] for one pair).' }
  ],
  options: {
    margin: Type.Number({ default: 0.0, description: 'Dissimilar pairs with cosine above it are penalised; -1 to 1, 0 to 0.5 suggested.' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input1', 'input2', 'target'],
  rowAligned: ['target'],
  example: { input1: [[1, 0, 1], [0.5, 2, 0]], input2: [[1, 1, 0], [-1, 0.5, 1]], target: [1, -1], margin: 0.1 },
  check: a => {
    const pairs = vectorPairs(a, ['input1', 'input2'])
    expectPairTarget('target', a.target, pairs, 'input1', a.input1.shape)
    expectSigns('target', a.target)
    return pairs
  },
  forward: (_g, x, o) => {
    const { input1, input2, target } = x
    const dot = reduceSum(mul(input1, input2), [-1], false)
    const mag1 = add(reduceSum(mul(input1, input1), [-1], false), EPSILON)
    const mag2 = add(reduceSum(mul(input2, input2), [-1], false), EPSILON)
    const cos = div(dot, sqrt(mul(mag1, mag2)))
    const loss = where(equal(target, 1), sub(1, cos), clampMin(sub(cos, x.margin), 0))
    return reduce(loss, o.reduction)
  }
})

// ATen's constant, added inside both squared norms: a float 1e-12 even in float64 (the
// zero-vector fixtures' gradients tell 1e-12 from fround(1e-12) by 2e-9 relative)
const EPSILON = Math.fround(1e-12)

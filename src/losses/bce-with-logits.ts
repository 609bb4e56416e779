import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { type Value } from '../onnx/graph'
import { add, clampMin, custom, div, exp, log, mul, neg, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastsTo, sameShapes } from './shapes'

/**
 * `F.binary_cross_entropy_with_logits`: (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x),
 * times weight: PyTorch's stable form, without exp overflow for large |x|.
 */
export default defineLoss({
  name: 'bce_with_logits',
  summary: 'Binary cross entropy of logits, with per-element weight and per-class pos_weight.',
  reference: 'torch.nn.functional.binary_cross_entropy_with_logits',
  category: 'classification',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits, any shape.' },
    { name: 'target', kind: 'float', doc: "Targets in [0, 1], the input's shape." },
    { name: 'weight', kind: 'float', optional: true, doc: 'Rescales each element; broadcasts to the input.' },
    { name: 'pos_weight', kind: 'float', optional: true, doc: 'Weight of positive examples, broadcast along the last dims (e.g. [C]).' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[1, 2], [2, 2], [3, 4], [4, 5]], target: [[1, 0], [1, 0], [0, 1], [0, 1]], pos_weight: [3] },
  check: a => {
    const shape = sameShapes(a, ['input', 'target'])
    broadcastsTo(a, 'weight', shape)
    broadcastsTo(a, 'pos_weight', shape)
    return shape
  },
  forward: (_g, x, o) => reduce(bceWithLogits(x.input, x.target, x.weight, x.pos_weight), o.reduction)
})

/**
 * The elementwise loss, with PyTorch's own backward formula, (sigmoid(x) - t) · g · w, or with
 * pos_weight ((pw·t + 1 - t) · sigmoid(x) - pw·t) · g · w: the same values as the forward's
 * derivative, but where a weight is infinite it gives what PyTorch gives (Infinity, or
 * Infinity - Infinity = NaN), not the 0 · Infinity that differentiating term by term gives.
 */
function bceWithLogits (input: Value, target: Value, weight: Value | undefined, posWeight: Value | undefined): Value {
  return custom([input], () => {
    const logWeight = posWeight === undefined ? undefined : add(mul(sub(posWeight, 1), target), 1)
    // softplus(-x) written as PyTorch writes it, log(e^-m + e^(-x-m)) + m with m = max(-x, 0):
    // where e^-x is below half an ulp of 1 it is exactly 0, so an infinite weight times it is NaN there too
    const m = clampMin(neg(input), 0)
    const sp = add(log(add(exp(neg(m)), exp(sub(neg(input), m)))), m)
    const loss = add(mul(sub(1, target), input), logWeight === undefined ? sp : mul(logWeight, sp))
    return weight === undefined ? loss : mul(loss, weight)
  }, g => {
    // sigmoid as PyTorch's kernel writes it, 1 / (1 + e^-x): at x = -100 that is 3.7e-44 in
    // float64 (ONNX Runtime's Sigmoid gives 0) and 0 in float32 (e^100 overflows), which an
    // infinite weight then turns into Infinity or NaN, as there
    const s = div(1, add(1, exp(neg(input))))
    const pt = posWeight === undefined ? undefined : mul(posWeight, target)
    const slope = pt === undefined ? sub(s, target) : sub(mul(sub(add(pt, 1), target), s), pt)
    const grad = mul(slope, g)
    return [weight === undefined ? grad : mul(grad, weight)]
  })
}

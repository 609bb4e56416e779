import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, clamp, dimSize, div, log, mul, neg, reduceSum, softplus, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { sameShapes } from './shapes'
import { fail } from '../errors'

/**
 * Keras 3 `binary_crossentropy`, last axis = features: t' = t (1 - ls) + ls / 2; on probabilities
 * -(t' log p + (1 - t') log(1 - p)) with p clipped to [1e-7, 1 - 1e-7] (no gradient outside,
 * bounds in the computation dtype); on logits the stable bce with logits. Mean over the last axis.
 */
export default defineLoss({
  name: 'binary_crossentropy',
  summary: 'Keras binary cross entropy of probabilities (or logits), averaged over the last axis.',
  reference: 'keras.losses.binary_crossentropy',
  category: 'classification',
  notes: [
    'Keras 3\'s: targets smoothed to t (1 - ls) + ls / 2; probabilities clipped to [1e-7, 1 - 1e-7] with the bounds in the computation dtype and no gradient outside the clip; no epsilon inside the log (Keras 2 added one). The mean over the last axis makes `reduction: "none"` one value per sample: the input\'s shape without its last axis.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Probabilities (or logits with from_logits) [..., D].' },
    { name: 'target', kind: 'float', doc: "Targets in [0, 1], the input's shape." }
  ],
  options: {
    from_logits: Type.Boolean({ default: false, description: 'The input holds logits, not probabilities.' }),
    label_smoothing: Type.Number({ default: 0.0, minimum: 0, maximum: 1, description: 'Moves the targets towards 0.5.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.6, 0.4], [0.4, 0.6]], target: [[0, 1], [0, 0]], grad: true },
  check: a => {
    if (a.input.shape.length === 0) fail('SHAPE_MISMATCH', 'input: expected at least one axis (the last is the feature axis), got a 0-d tensor')
    return sameShapes(a, ['input', 'target']).slice(0, -1)
  },
  forward: (_g, x, o) => {
    const { input, label_smoothing: ls } = x
    const t = add(mul(x.target, sub(1, ls)), mul(ls, 0.5))
    let terms
    if (o.from_logits) terms = add(mul(sub(1, t), input), softplus(neg(input)))
    else {
      const p = clamp(input, EPSILON, 1 - EPSILON)
      terms = neg(add(mul(t, log(p)), mul(sub(1, t), log(sub(1, p)))))
    }
    return reduce(div(reduceSum(terms, [-1], false), dimSize(input, -1)), o.reduction)
  }
})

// Keras's backend epsilon
const EPSILON = 1e-7

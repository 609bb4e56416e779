import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, clamp, dimSize, div, log, logSoftmax, mul, neg, reduceSum, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { sameShapes } from './shapes'
import { fail } from '../errors'

/**
 * Keras 3 `categorical_crossentropy`, classes on the last axis: t' = t (1 - ls) + ls / C, then
 * -sum(t' log q) with q = log_softmax(x) on logits, or on probabilities q = x / sum(x) clipped to
 * [1e-7, 1 - 1e-7] (the normalisation is differentiated through; no gradient outside the clip).
 */
export default defineLoss({
  name: 'categorical_crossentropy',
  summary: 'Keras categorical cross entropy of probabilities (or logits) against one-hot or soft targets.',
  reference: 'keras.losses.categorical_crossentropy',
  category: 'classification',
  notes: [
    'Keras 3\'s: targets smoothed to t (1 - ls) + ls / C; probabilities normalised over the last axis (differentiated through) and clipped to [1e-7, 1 - 1e-7], no gradient outside the clip; logits through log_softmax. `reduction: "none"` gives one value per sample: the input\'s shape without its last axis.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Probabilities (normalised over the last axis) or logits with from_logits, [..., C].' },
    { name: 'target', kind: 'float', doc: "One-hot or probability targets, the input's shape." }
  ],
  options: {
    from_logits: Type.Boolean({ default: false, description: 'The input holds logits, not probabilities.' }),
    label_smoothing: Type.Number({ default: 0.0, minimum: 0, maximum: 1, description: 'Mixes the targets with the uniform distribution.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.1, 0.2, 0.7], [0.3, 0.4, 0.3]], target: [[0, 0, 1], [0, 1, 0]], grad: true },
  check: a => {
    if (a.input.shape.length === 0) fail('SHAPE_MISMATCH', 'input: expected at least one axis (the last holds the classes), got a 0-d tensor')
    return sameShapes(a, ['input', 'target']).slice(0, -1)
  },
  forward: (_g, x, o) => {
    const { input, label_smoothing: ls } = x
    const t = add(mul(x.target, sub(1, ls)), div(ls, dimSize(input, -1)))
    const logq = o.from_logits
      ? logSoftmax(input, input.rank - 1)
      : log(clamp(div(input, reduceSum(input, [-1], true)), EPSILON, 1 - EPSILON))
    return reduce(neg(reduceSum(mul(t, logq), [-1], false)), o.reduction)
  }
})

// Keras's backend epsilon
const EPSILON = 1e-7

import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, less, mul, neg, pow, sigmoid, softplus, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { sameShapes } from './shapes'

/**
 * `torchvision.ops.sigmoid_focal_loss`: ce * (1 - p_t)^gamma, times alpha t + (1 - alpha)(1 - t)
 * unless alpha < 0; p = sigmoid(x), p_t = p t + (1 - p)(1 - t), ce = binary cross entropy with
 * logits (in its stable form). Differentiated through p_t, as autograd does torchvision's code.
 */
export default defineLoss({
  name: 'sigmoid_focal',
  summary: 'Focal loss of logits against binary (or soft) targets, down-weighting easy examples.',
  reference: 'torchvision.ops.sigmoid_focal_loss',
  category: 'classification',
  notes: [
    'A negative `alpha` disables the weighting, as in torchvision; the gradient goes through p_t, as autograd does through torchvision\'s code.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits, any shape.' },
    { name: 'target', kind: 'float', doc: "Targets in [0, 1], the input's shape." }
  ],
  options: {
    alpha: Type.Number({ default: 0.25, description: 'Weight of positives (1 - alpha for negatives); negative disables the weighting.' }),
    gamma: Type.Number({ default: 2.0, minimum: 0, description: 'Focusing exponent on (1 - p_t).' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  perRowOptions: 'elementwise',
  example: { input: [[2.0, -1.0], [0.5, -3.0]], target: [[1, 0], [0, 0]], grad: true },
  check: a => sameShapes(a, ['input', 'target']),
  forward: (_g, x, o) => {
    const { input, target, alpha } = x
    const p = sigmoid(input)
    const ce = add(mul(sub(1, target), input), softplus(neg(input)))
    const pt = add(mul(p, target), mul(sub(1, p), sub(1, target)))
    const loss = mul(ce, pow(sub(1, pt), x.gamma))
    const alphaT = add(mul(alpha, target), mul(sub(1, alpha), sub(1, target)))
    return reduce(where(less(alpha, 0), loss, mul(alphaT, loss)), o.reduction)
  }
})

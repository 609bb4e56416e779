import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, div, equal, mask, mul, numel, sub, sumAll } from '../onnx/ops'
import bce from './bce'
import { sameShapes } from './shapes'
import { expectBinaryLabels, expectInRange } from './checks'
import { StringEnum } from '../../schemas/enum'

/**
 * Class-balanced binary cross entropy: -(alpha t log(p) + (1 - alpha)(1 - t) log(1 - p)), logs
 * clamped at -100. Written as `F.binary_cross_entropy` with weight alpha t + (1 - alpha)(1 - t),
 * the same formula for t in {0, 1}, so it shares bce's value and gradient conventions.
 */
export default defineLoss({
  name: 'balanced_bce',
  summary: 'Binary cross entropy with positives weighted alpha and negatives 1 - alpha.',
  reference: '-(alpha*t*log(p) + (1-alpha)*(1-t)*log(1-p)), as torch.nn.functional.binary_cross_entropy with weight',
  category: 'classification',
  notes: [
    '`alpha: "auto"` is the share of negatives among the targets of the whole request, so such a request never joins a batch with others.',
    'Written as `bce` with the weight alpha t + (1 - alpha)(1 - t): the same formula for targets in {0, 1}, with bce\'s clamped logs and gradient.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Probabilities in [0, 1], any shape.' },
    { name: 'target', kind: 'float', doc: "Labels in {0, 1}, the input's shape." }
  ],
  options: {
    alpha: Type.Union([Type.Number({ minimum: 0, maximum: 1 }), StringEnum(['auto'])], {
      default: 'auto', description: 'Weight of positives: a number in [0, 1], or "auto": the share of negatives among the request\'s targets.'
    })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.9, 0.2, 0.3], [0.6, 0.1, 0.8]], target: [[1, 0, 0], [1, 0, 0]], grad: true },
  check: a => {
    const shape = sameShapes(a, ['input', 'target'])
    expectInRange('input', a.input, 0, 1)
    expectBinaryLabels('target', a.target)
    return shape
  },
  forward: (g, x, o) => {
    const { input, target } = x
    // a numeric alpha is a graph input (forward sees only "auto"), computed in the graph from the targets
    const alpha = o.alpha === 'auto' ? div(sumAll(mask(equal(target, 0))), numel(target)) : x.alpha
    const weight = add(mul(target, alpha), mul(sub(1, target), sub(1, alpha)))
    return bce.forward(g, { input, target, weight }, { reduction: o.reduction })
  }
})

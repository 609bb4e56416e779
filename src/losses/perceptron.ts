import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { clampMin, mul, neg } from '../onnx/ops'
import { reduce } from './reduce'
import { checkHingeArgs, HINGE_ARGS, hingeTargets } from './hinge'
import { broadcastWorkspace } from './shapes'

/**
 * Perceptron criterion, elementwise: max(0, -t x), targets as hinge's (all-{0, 1} count as 2t - 1).
 * max is clamp_min, so at x == 0 the gradient -t passes.
 */
export default defineLoss({
  name: 'perceptron',
  summary: 'Perceptron loss of scores against targets in {-1, 1} (or {0, 1}): hinge without a margin.',
  reference: 'elementwise max(0, -t*x)',
  category: 'classification',
  notes: [
    'Targets as `hinge`\'s: -1 and 1, or all in {0, 1} read as 2t - 1; a mix of -1 and 0 is refused. At input 0 the gradient -t passes.'
  ],
  args: HINGE_ARGS,
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.3, -0.8], [1.5, 0.2]], target: [[1, -1], [-1, 1]], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: checkHingeArgs,
  forward: (_g, x, o) => reduce(clampMin(neg(mul(hingeTargets(x.target), x.input)), 0), o.reduction)
})

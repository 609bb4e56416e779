import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { clampMin, mul, square, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { checkHingeArgs, HINGE_ARGS, hingeTargets } from './hinge'
import { broadcastWorkspace } from './shapes'

/** Keras `squared_hinge`, elementwise: max(0, 1 - t x)^2, targets as hinge's (all-{0, 1} count as 2t - 1). */
export default defineLoss({
  name: 'squared_hinge',
  summary: 'Squared hinge loss of scores against targets in {-1, 1} (or {0, 1}).',
  reference: 'keras.losses.squared_hinge, elementwise max(0, 1 - t*x)^2',
  category: 'classification',
  notes: [
    'Targets as `hinge`\'s: -1 and 1, or all in {0, 1} read as 2t - 1; a mix of -1 and 0 is refused.'
  ],
  args: HINGE_ARGS,
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.3, -0.8], [1.5, 0.2]], target: [[1, -1], [1, 1]], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: checkHingeArgs,
  forward: (_g, x, o) => reduce(square(clampMin(sub(1, mul(hingeTargets(x.target), x.input)), 0)), o.reduction)
})

import { reduce } from './reduce'
import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { abs, sub } from '../onnx/ops'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/** Absolute error, `F.l1_loss`: |input - target|, gradient sign (0 at a tie). */
export default defineLoss({
  name: 'l1',
  summary: 'Absolute error |input - target|.',
  reference: 'torch.nn.functional.l1_loss',
  category: 'regression',
  notes: [
    'At a tie (input = target) the gradient is 0, the sign of 0, as PyTorch\'s.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', integers: true, doc: 'Targets, broadcastable with input.' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[1, 1], [1, 1]], target: [[3, 3], [3, 3]], reduction: 'none' },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => reduce(abs(sub(x.input, x.target)), o.reduction)
})

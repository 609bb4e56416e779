import { reduce } from './reduce'
import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { square, sub } from '../onnx/ops'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/** Mean squared error, `F.mse_loss`: (input - target)^2, broadcasting as PyTorch. */
export default defineLoss({
  name: 'mse',
  summary: 'Squared error (input - target)^2.',
  reference: 'torch.nn.functional.mse_loss',
  category: 'regression',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', doc: 'Targets, broadcastable with input.' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[1, 1], [1, 1]], target: [[3, 3], [3, 3]], reduction: 'none' },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => reduce(square(sub(x.input, x.target)), o.reduction)
})

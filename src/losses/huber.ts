import { reduce } from './reduce'
import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { abs, less, mul, square, sub, where } from '../onnx/ops'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/** `F.huber_loss`: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta). */
export default defineLoss({
  name: 'huber',
  summary: 'Huber loss: quadratic below delta, linear (scaled by delta) above.',
  reference: 'torch.nn.functional.huber_loss',
  category: 'regression',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', doc: 'Targets, broadcastable with input.' }
  ],
  options: { delta: Type.Number({ default: 1.0, exclusiveMinimum: 0, description: 'Where the loss turns from quadratic to linear (> 0).' }) },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  perRowOptions: 'elementwise',
  example: { input: [0.2, -1.5, 3], target: [0, 0, 0], delta: 1.0 },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => {
    const z = abs(sub(x.input, x.target))
    return reduce(where(less(z, x.delta), mul(square(z), 0.5), mul(x.delta, sub(z, mul(x.delta, 0.5)))), o.reduction)
  }
})

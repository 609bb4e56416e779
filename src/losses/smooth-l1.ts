import { reduce } from './reduce'
import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { abs, custom, div, greaterOrEqual, less, lessOrEqual, mul, neg, square, sub, where } from '../onnx/ops'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/**
 * `F.smooth_l1_loss`: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta. The gradient is
 * PyTorch's kernel: -1 for d <= -beta, 1 for d >= beta, else d / beta; so with beta = 0 a
 * tie (d = 0) gets -1, where l1 would give 0.
 */
export default defineLoss({
  name: 'smooth_l1',
  summary: 'Smooth L1: quadratic below beta, linear above.',
  reference: 'torch.nn.functional.smooth_l1_loss',
  category: 'regression',
  notes: [
    'The gradient is PyTorch\'s kernel: -1 where input - target <= -beta, 1 where it is >= beta, else (input - target) / beta. So with `beta: 0`, where the value is l1\'s, a tie (input = target) gets the gradient -1, where `l1` gives 0.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', integers: true, doc: 'Targets, broadcastable with input.' }
  ],
  options: { beta: Type.Number({ default: 1.0, minimum: 0, description: 'Where the loss turns from quadratic to linear; 0 gives l1.' }) },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  perRowOptions: 'elementwise',
  example: { input: [0.2, -1.5, 3], target: [0, 0, 0], beta: 1.0 },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => {
    const d = sub(x.input, x.target)
    const beta = x.beta
    const loss = custom([d], () => {
      const z = abs(d)
      return where(less(z, beta), div(mul(square(z), 0.5), beta), sub(z, mul(beta, 0.5)))
    }, g => [mul(g, where(lessOrEqual(d, neg(beta)), -1, where(greaterOrEqual(d, beta), 1, div(d, beta))))])
    return reduce(loss, o.reduction)
  }
})

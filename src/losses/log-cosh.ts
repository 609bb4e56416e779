import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { abs, add, custom, exp, less, log1p, mul, neg, square, sub, tanh, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/**
 * log(cosh(d)), d = input - target, computed without overflow or cancellation: for |d| < 1,
 * -0.5 log1p(-tanh(d)^2) (accurate where log(cosh) is tiny); otherwise |d| + log1p(e^(-2|d|)) - log 2
 * (cosh itself overflows from |d| ~ 710). The gradient is tanh(d).
 */
export default defineLoss({
  name: 'log_cosh',
  summary: 'Log-cosh of the error: quadratic near 0, linear far from it.',
  reference: 'log(cosh(input - target)), elementwise, computed stably',
  category: 'regression',
  notes: [
    'Computed without overflow or cancellation: -0.5 log1p(-tanh(d)^2) for |d| < 1, else |d| + log1p(exp(-2|d|)) - log 2, where cosh itself overflows (from |d| near 89 in float32, 710 in float64); the gradient is tanh(d).'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predictions, any shape.' },
    { name: 'target', kind: 'float', doc: 'Targets, broadcastable with input.' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [0.5, -2.0, 1000.0], target: [0, 0, 0], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => {
    const d = sub(x.input, x.target)
    const loss = custom([d], () => {
      const a = abs(d)
      const near = mul(log1p(neg(square(tanh(a)))), -0.5)
      const far = sub(add(a, log1p(exp(mul(a, -2)))), Math.LN2)
      return where(less(a, 1), near, far)
    }, g => [mul(g, tanh(d))])
    return reduce(loss, o.reduction)
  }
})

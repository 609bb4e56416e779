import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, clampMin, custom, div, log, mul, square, sub, unsqueeze } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'
import { expectNonNegative } from './checks'
import { fail } from '../errors'
import { broadcastShapes, fmtShape, sameShape } from '../tensor/tensor'

/**
 * `F.gaussian_nll_loss`: 0.5 (log(max(var, eps)) + (input - target)^2 / max(var, eps)), plus
 * 0.5 log(2 pi) when `full`. PyTorch clamps var in place under no_grad, so the gradient w.r.t.
 * var is the unclamped formula's, evaluated at the clamped value.
 */
export default defineLoss({
  name: 'gaussian_nll',
  summary: 'Negative log-likelihood of a Gaussian with predicted mean and variance.',
  reference: 'torch.nn.functional.gaussian_nll_loss',
  category: 'regression',
  notes: [
    'Variances below `eps` are clamped to it, and the gradient w.r.t. `var` is the unclamped formula\'s taken at the clamped value (PyTorch clamps in place under no_grad), not 0.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Predicted means, any shape.' },
    { name: 'target', kind: 'float', doc: 'Samples, broadcastable with input.' },
    { name: 'var', kind: 'float', grad: true, doc: "Predicted variances (>= 0): the input's shape, or it without the last dim, or that with a trailing 1." }
  ],
  options: {
    full: Type.Boolean({ default: false, description: 'Add the constant 0.5 log(2 pi).' }),
    eps: Type.Number({ default: 1e-6, description: 'Variances below it are clamped to it (without stopping their gradient).' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target', 'var'],
  rowAligned: ['var'],
  example: { input: [[0.5, 1.0], [2.0, -1.0]], target: [[0.0, 1.5], [2.5, -1.0]], var: [0.5, 2.0], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => {
    const shape = broadcastArgs(a, ['input', 'target'])
    const { input, var: v } = a
    const lead = input.shape.slice(0, -1)
    // PyTorch's rules, a 0-d input's among them: its lead is [], so var [1] is "[...lead, 1]"
    if (!sameShape(v.shape, input.shape) && !sameShape(v.shape, lead) && !sameShape(v.shape, [...lead, 1])) {
      const shapes = input.shape.length > 0 ? `the input's shape ${fmtShape(input.shape)}, or ${fmtShape(lead)}, or ${fmtShape([...lead, 1])}` : 'the input\'s shape [] or [1]'
      fail('SHAPE_MISMATCH', `var: expected ${shapes}; got ${fmtShape(v.shape)}`)
    }
    expectNonNegative('var', v, 'variances')
    // the loss broadcasts var too (unsqueezed when it lacks the input's last dim): a 0-d input's
    // var [1] makes it [1]
    const along = v.shape.length === input.shape.length - 1 ? [...v.shape, 1] : v.shape
    return broadcastShapes(shape, along) ?? shape
  },
  forward: (_g, x, o) => {
    // var without the input's last dim is homoscedastic over it: unsqueeze, as PyTorch does
    const v = x.var.rank === x.input.rank - 1 ? unsqueeze(x.var, [-1]) : x.var
    const clamped = custom([v], () => clampMin(v, x.eps), g => [g])
    let loss = mul(add(log(clamped), div(square(sub(x.input, x.target)), clamped)), 0.5)
    if (o.full) loss = add(loss, 0.5 * Math.log(2 * Math.PI))
    return reduce(loss, o.reduction)
  }
})

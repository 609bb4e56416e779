import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, exp, lessOrEqual, log, mul, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/**
 * `F.poisson_nll_loss`: exp(input) - target * input with log_input, else
 * input - target * log(input + eps); `full` adds the Stirling term
 * target log(target) - target + 0.5 log(2 pi target) where target > 1 (0 elsewhere, as PyTorch masks it).
 */
export default defineLoss({
  name: 'poisson_nll',
  summary: 'Negative log-likelihood of a Poisson distribution with rate exp(input) (or input).',
  reference: 'torch.nn.functional.poisson_nll_loss',
  category: 'regression',
  notes: [
    '`full` adds the Stirling term target log(target) - target + 0.5 log(2 pi target) only where target > 1, 0 elsewhere, as PyTorch masks it.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Log-rates (log_input) or rates, any shape.' },
    { name: 'target', kind: 'float', integers: true, doc: 'Counts, broadcastable with input.' }
  ],
  options: {
    log_input: Type.Boolean({ default: true, description: 'The input is the log of the rate.' }),
    full: Type.Boolean({ default: false, description: 'Add the Stirling approximation of log(target!).' }),
    eps: Type.Number({ default: 1e-8, description: 'Added to the rate before its log when log_input is false.' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  perRowOptions: 'elementwise',
  example: { input: [0.5, -1.0, 2.0], target: [1, 0, 7], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => {
    const { input, target } = x
    let loss = o.log_input ? sub(exp(input), mul(target, input)) : sub(input, mul(target, log(add(input, x.eps))))
    if (o.full) {
      const stirling = add(sub(mul(target, log(target)), target), mul(log(mul(target, 2 * Math.PI)), 0.5))
      loss = add(loss, where(lessOrEqual(target, 1), 0, stirling))
    }
    return reduce(loss, o.reduction)
  }
})

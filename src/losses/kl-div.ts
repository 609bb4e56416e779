import { defineLoss, Type } from './loss'
import { equal, exp, log, mul, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/**
 * `F.kl_div` with log-probability input: target (log target - input), where a zero target
 * gives 0 (xlogy); log_target takes the target as log-probabilities. `batchmean` divides the
 * sum by the input's first dimension.
 */
export default defineLoss({
  name: 'kl_div',
  summary: 'Kullback-Leibler divergence of a target distribution from log-probabilities.',
  reference: 'torch.nn.functional.kl_div',
  category: 'classification',
  notes: [
    'A zero target gives 0 (xlogy), not NaN. `batchmean` divides the sum by the input\'s first dimension (the KL divergence per sample); `mean` divides it by every element, as PyTorch does.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Log-probabilities, any shape.' },
    { name: 'target', kind: 'float', doc: 'Probabilities (or log-probabilities with log_target), broadcastable with input.' }
  ],
  options: {
    log_target: Type.Boolean({ default: false, description: 'The target is given as log-probabilities.' })
  },
  reductions: ['none', 'mean', 'sum', 'batchmean'],
  batch: ['input', 'target'],
  example: { input: [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]], target: [[0.9, 0.05, 0.05], [0.1, 0.7, 0.2]], reduction: 'batchmean' },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (g, x, o) => {
    const { input, target } = x
    const loss = o.log_target
      ? mul(exp(target), sub(target, input))
      : sub(where(equal(target, 0), g.constant(0), mul(target, log(target))), mul(target, input))
    return reduce(loss, o.reduction, input)
  }
})

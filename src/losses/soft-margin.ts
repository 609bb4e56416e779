import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { mul, neg, softplus } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'

/**
 * `F.soft_margin_loss`: log(1 + exp(-target * input)), elementwise. Written as softplus, which
 * equals PyTorch's log1p(exp(.)) and its gradient -t e^z / (1 + e^z) without overflowing.
 */
export default defineLoss({
  name: 'soft_margin',
  summary: 'Two-class logistic loss of scores against targets in {-1, 1}.',
  reference: 'torch.nn.functional.soft_margin_loss',
  category: 'classification',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores, any shape.' },
    { name: 'target', kind: 'float', doc: 'Targets in {-1, 1}, broadcastable with input.' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.3, 0.7], [0.5, 0.5]], target: [[-1, 1], [1, -1]], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => broadcastArgs(a, ['input', 'target']),
  forward: (_g, x, o) => reduce(softplus(neg(mul(x.target, x.input))), o.reduction)
})

import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { type Value } from '../onnx/graph'
import { custom, equal, exp, mul, neg, sigmoid, softplus, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastsTo, broadcastWorkspace } from './shapes'

/**
 * PyTorch's log1p(exp(z)), overflow included: softplus where exp(z) is finite (equal to it,
 * without its cancellation), +Infinity where exp(z) overflows the dtype (z > 88.7 in float32,
 * 709.8 in float64), whose gradient e^z / (1 + e^z) is then Infinity / Infinity, NaN.
 */
function log1pExp (z: Value): Value {
  return custom([z], () => {
    const overflow = equal(exp(z), Infinity)
    return { value: where(overflow, Infinity, softplus(z)), saved: overflow }
  }, (g, overflow) => [mul(g, where(overflow, NaN, sigmoid(z)))])
}

/** `F.soft_margin_loss`: log(1 + exp(-target * input)), elementwise, as PyTorch computes it. */
export default defineLoss({
  name: 'soft_margin',
  summary: 'Two-class logistic loss of scores against targets in {-1, 1}.',
  reference: 'torch.nn.functional.soft_margin_loss',
  category: 'classification',
  notes: [
    'As PyTorch computes log1p(exp(-target · input)), a sample whose -target · input passes 88.7 (float32) or 709.8 (float64) has loss Infinity and gradient NaN.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores, any shape.' },
    { name: 'target', kind: 'float', integers: true, doc: 'Targets in {-1, 1}, broadcastable to the input\'s shape (PyTorch computes in place on it).' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.3, 0.7], [0.5, 0.5]], target: [[-1, 1], [1, -1]], grad: true },
  workspace: broadcastWorkspace(['input', 'target']),
  // PyTorch computes in place on the input's shape: a target that would enlarge it is refused
  check: a => {
    broadcastsTo(a, 'target', a.input.shape)
    return broadcastArgs(a, ['input', 'target'])
  },
  forward: (_g, x, o) => reduce(log1pExp(neg(mul(x.target, x.input))), o.reduction)
})

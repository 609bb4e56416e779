import { reduce } from './reduce'
import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { type Value } from '../onnx/graph'
import { abs, custom, greater, less, mul, neg, square, sub, where } from '../onnx/ops'
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
  forward: (_g, x, o) => reduce(huber(sub(x.input, x.target), x.delta), o.reduction)
})

/**
 * Huber of the difference d, with PyTorch's gradient: d clamped to [-delta, delta] (delta's
 * sign past it, so an infinite difference has gradient ±delta, not the NaN that the quadratic
 * branch's derivative, 0 · Infinity, would give through a select).
 */
function huber (d: Value, delta: Value): Value {
  return custom([d], () => {
    const z = abs(d)
    return where(less(z, delta), mul(square(z), 0.5), mul(delta, sub(z, mul(delta, 0.5))))
  }, g => [mul(g, where(less(d, neg(delta)), neg(delta), where(greater(d, delta), delta, d)))])
}

import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { type Value } from '../onnx/graph'
import { add, clampMin, custom, div, log, mul, neg, sub, unbroadcast } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastsTo, sameShapes } from './shapes'
import { expectInRange } from './checks'

/**
 * `F.binary_cross_entropy` on probabilities: -w (t log p + (1 - t) log(1 - p)), each log
 * clamped at -100. The gradient is PyTorch's own formula w (p - t) / max(p (1 - p), 1e-12f),
 * finite at p = 0 and p = 1 where the clamped logs have none.
 */
export default defineLoss({
  name: 'bce',
  summary: 'Binary cross entropy of probabilities.',
  reference: 'torch.nn.functional.binary_cross_entropy',
  category: 'classification',
  notes: [
    'Each log is clamped at -100, as PyTorch. The gradient is PyTorch\'s own formula w (p - t) / max(p (1 - p), 1e-12), finite at p = 0 and p = 1, rather than the derivative of the clamped logs.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Probabilities in [0, 1], any shape.' },
    { name: 'target', kind: 'float', doc: "Targets in [0, 1], the input's shape." },
    { name: 'weight', kind: 'float', optional: true, doc: 'Rescales each element; broadcasts to the input.' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  example: { input: [[0.7311, 0.8808], [0.8808, 0.8808]], target: [[1, 0], [1, 0]] },
  check: a => {
    const shape = sameShapes(a, ['input', 'target'])
    broadcastsTo(a, 'weight', shape)
    expectInRange('input', a.input, 0, 1)
    return shape
  },
  forward: (_g, x, o) => {
    let loss = bceTerms(x.input, x.target)
    if (x.weight !== undefined) loss = mul(loss, x.weight)
    return reduce(loss, o.reduction)
  }
})

// PyTorch's kernel uses the float32 constant in both precisions
const EPSILON = Math.fround(1e-12)

function bceTerms (p: Value, t: Value): Value {
  return custom([p], () => {
    const logP = clampMin(log(p), -100)
    const log1mP = clampMin(log(sub(1, p)), -100)
    return neg(add(mul(t, logP), mul(sub(1, t), log1mP)))
  }, g => [unbroadcast(div(mul(g, sub(p, t)), clampMin(mul(p, sub(1, p)), EPSILON)), p)])
}

import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { add, dimSize, div, logSigmoid, mul, neg, reduceSum, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastsTo, sameShapes } from './shapes'
import { fail } from '../errors'

/**
 * `F.multilabel_soft_margin_loss`: per sample, the mean over the C classes (last axis) of
 * -w_c (t log sigmoid(x) + (1 - t) log sigmoid(-x)).
 */
export default defineLoss({
  name: 'multilabel_soft_margin',
  summary: 'One-versus-all logistic loss of multi-label scores, averaged over the classes.',
  reference: 'torch.nn.functional.multilabel_soft_margin_loss',
  category: 'classification',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores [N,C] (classes on the last axis).' },
    { name: 'target', kind: 'float', integers: true, doc: "Labels in {0, 1}, the input's shape." },
    { name: 'weight', kind: 'float', optional: true, doc: 'Per-class weights [C] (broadcast to the input).' }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.3, 0.7, 0.8]], target: [[0, 1, 1]], grad: true },
  check: a => {
    if (a.input.shape.length === 0) fail('SHAPE_MISMATCH', 'input: expected scores [N,C] (or [C]), got a 0-d tensor')
    const shape = sameShapes(a, ['input', 'target'])
    broadcastsTo(a, 'weight', shape)
    return shape.slice(0, -1)
  },
  forward: (_g, x, o) => {
    const { input, target } = x
    let terms = neg(add(mul(target, logSigmoid(input)), mul(sub(1, target), logSigmoid(neg(input)))))
    if (x.weight !== undefined) terms = mul(terms, x.weight)
    return reduce(div(reduceSum(terms, [-1], false), dimSize(input, -1)), o.reduction)
  }
})

import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { equal, exp, gatherElements, logSoftmax, mask, mul, neg, not, pow, squeeze, sub, take, unsqueeze, where } from '../onnx/ops'
import { reduceWeighted } from './reduce'
import { checkClassIndexArgs } from './class-index'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * Softmax focal loss: alpha * w[t] * (1 - p_t)^gamma * -log(p_t), log p_t = log_softmax(input)[t].
 * Samples whose target is ignore_index give 0 (and no gradient); `mean` divides by the count of
 * the others, unweighted, so every sample ignored gives NaN with a zero gradient.
 */
export default defineLoss({
  name: 'softmax_focal',
  summary: 'Focal loss of logits against class indices, down-weighting well-classified samples.',
  reference: 'alpha * w[t] * (1 - p_t)^gamma * -log(p_t), p_t = softmax(input)[t]',
  category: 'classification',
  notes: [
    'No PyTorch function computes it: samples whose target is `ignore_index` give 0 and no gradient, and `mean` divides by the count of the others, unweighted (cross_entropy divides by the sum of their weights). With every sample ignored the mean is NaN, with a zero gradient.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits [N,C].' },
    { name: 'target', kind: 'index', doc: 'Class indices [N].' },
    { name: 'weight', kind: 'float', optional: true, doc: 'Per-class weights [C].' }
  ],
  options: {
    alpha: Type.Number({ default: 1.0, description: 'Scales every term.' }),
    gamma: Type.Number({ default: 2.0, minimum: 0, description: 'Focusing exponent on (1 - p_t).' }),
    ignore_index: Type.Integer({ default: -100, description: 'Targets equal to it contribute nothing (nor to the mean\'s denominator).' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[1, 2, 0.5], [0.3, 3, -1]], target: [0, 1], grad: true },
  check: (a, o) => {
    if (a.input.shape.length !== 2) fail('SHAPE_MISMATCH', `input: expected logits [N,C], got ${fmtShape(a.input.shape)}`)
    return checkClassIndexArgs(a, o.ignore_index)
  },
  forward: (g, x, o) => {
    const valid = not(equal(x.target, x.ignore_index))
    const safeTarget = where(valid, x.target, g.constant(0, 'int64'))
    const logpt = squeeze(gatherElements(logSoftmax(x.input, 1), unsqueeze(safeTarget, [1]), 1), [1])
    let loss = mul(neg(mul(pow(sub(1, exp(logpt)), x.gamma), logpt)), x.alpha)
    if (x.weight !== undefined) loss = mul(loss, take(x.weight, safeTarget))
    return reduceWeighted(where(valid, loss, 0), mask(valid), o.reduction)
  }
})

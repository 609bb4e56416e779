import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { type Value } from '../onnx/graph'
import { add, div, dimSize, logSoftmax, mul, neg, reduceSum, sub, where } from '../onnx/ops'
import { reduce, reduceWeighted } from './reduce'
import { checkClassIndexArgs, classAxis, classWeightAlong, pickedNll } from './class-index'
import { rowValue } from '../onnx/segments'
import { expectShape } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `F.cross_entropy` over logits, with class-index targets (weight, ignore_index) or
 * class-probability targets, and label smoothing written as PyTorch 1.13 does it.
 */
export default defineLoss({
  name: 'cross_entropy',
  summary: 'Cross entropy of logits against class indices or class probabilities.',
  reference: 'torch.nn.functional.cross_entropy',
  category: 'classification',
  notes: [
    'With class-probability targets, `mean` divides by the number of samples (N·d1·...), not by the weights, as PyTorch 1.13 does; with class indices it divides by the sum of w[target] over the samples not ignored.',
    '`label_smoothing` is written as PyTorch 1.13 writes it: with class indices (1 - ls) nll + ls / C · (-sum over c of w[c] log p[c]), ignored samples giving 0; with probabilities the target becomes t (1 - ls) + ls / C.',
    'An input with an empty class dim is refused (400 `SHAPE_MISMATCH`), where PyTorch answers NaN (or, with probability targets, 0 per sample).'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits [C], [N,C] or [N,C,d1,...].' },
    { name: 'target', kind: 'float-or-index', doc: "Class indices (the input's shape without C) or class probabilities (the input's shape)." },
    { name: 'weight', kind: 'float', optional: true, doc: 'Per-class weights [C].' }
  ],
  options: {
    ignore_index: Type.Integer({ default: -100, description: 'Class-index targets equal to it contribute nothing (nor to the mean\'s denominator).' }),
    label_smoothing: Type.Number({ default: 0.0, minimum: 0, maximum: 1, description: 'Mixes the target with the uniform distribution.' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  rowAligned: ['target'],
  perRowOptions: 'rows',
  example: { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1], grad: true },
  // label_smoothing > 0 adds a term PyTorch computes only then (it matters for -inf logits)
  structural: o => ({ smoothed: o.label_smoothing > 0 }),
  check: (a, o) => {
    if (a.target.kind === 'index') return checkClassIndexArgs(a, o.ignore_index)
    if (a.input.shape.length === 0) fail('SHAPE_MISMATCH', 'input: expected [C], [N,C] or [N,C,d1,...], got a 0-d tensor')
    if (o.ignore_index >= 0) fail('INVALID_OPTION', `ignore_index: not supported with class-probability targets (got ${o.ignore_index}), as in PyTorch`)
    expectShape('target', a.target, a.input.shape, " (class probabilities take the input's shape)")
    const classes = a.input.shape[classAxis(a.input.shape.length)]
    // no classes: refused as with class indices (PyTorch answers 0 per sample but NaN for the mean)
    if (classes === 0) fail('SHAPE_MISMATCH', `input: the class dim of ${fmtShape(a.input.shape)} is empty; expected at least one class`)
    if (a.weight !== undefined) expectShape('weight', a.weight, [classes], ` (one weight per class of input ${fmtShape(a.input.shape)})`)
    return a.input.shape.filter((_, i) => i !== classAxis(a.input.shape.length))
  },
  forward: (_g, x, o) => {
    const axis = classAxis(x.input.rank)
    const logp = logSoftmax(x.input, axis)
    const smoothing = o.smoothed ? x.label_smoothing : undefined
    const weight = x.weight === undefined ? undefined : classWeightAlong(x.weight, x.input.rank)
    if (x.target.dtype === 'int64') return indexTargets(logp, x.target, x.weight, weight, x.ignore_index, smoothing, axis, o.reduction)
    let target = x.target
    if (smoothing !== undefined) {
      const eps = rowValue(smoothing, target)
      target = add(mul(target, sub(1, eps)), div(eps, dimSize(x.input, axis)))
    }
    const terms = weight === undefined ? mul(logp, target) : mul(mul(logp, target), weight)
    const loss = neg(reduceSum(terms, [axis], false))
    // the mean is over samples (numel / C), unweighted: the mean of the per-sample loss
    return reduce(loss, o.reduction)
  }
})

function indexTargets (logp: Value, target: Value, weight: Value | undefined, weightAlong: Value | undefined, ignoreIndex: Value,
  smoothing: Value | undefined, axis: number, reduction: 'none' | 'mean' | 'sum' | 'batchmean'): Value {
  const nll = pickedNll(logp, target, weight, ignoreIndex, axis)
  if (smoothing === undefined) return reduceWeighted(nll.loss, nll.weights, reduction)
  // (1 - eps) * nll + eps / C * smooth, smooth = -sum_c w_c logp_c, zero for ignored samples
  const smooth = where(nll.valid, neg(reduceSum(weightAlong === undefined ? logp : mul(logp, weightAlong), [axis], false)), 0)
  const classes = dimSize(logp, axis)
  const eps = rowValue(smoothing, nll.loss)
  const picked = mul(nll.loss, sub(1, eps))
  const spread = mul(smooth, div(eps, classes))
  // the mean divides each term by the targets' total weight apart, as PyTorch does: where that
  // total is 0, the first is 0/0 and the sum NaN, not (0 + smooth)/0 = Infinity
  if (reduction === 'mean') return add(reduceWeighted(picked, nll.weights, reduction), reduceWeighted(spread, nll.weights, reduction))
  return reduce(add(picked, spread), reduction)
}

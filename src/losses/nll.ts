import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { reduceWeighted } from './reduce'
import { checkClassIndexArgs, classAxis, pickedNll } from './class-index'

/** `F.nll_loss`: -weight[t] * input[t] over log-probabilities, weighted mean over kept samples. */
export default defineLoss({
  name: 'nll',
  summary: 'Negative log-likelihood of class indices under log-probabilities.',
  reference: 'torch.nn.functional.nll_loss',
  category: 'classification',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Log-probabilities [C], [N,C] or [N,C,d1,...].' },
    { name: 'target', kind: 'index', doc: "Class indices, the input's shape without C." },
    { name: 'weight', kind: 'float', optional: true, doc: 'Per-class weights [C].' }
  ],
  options: {
    ignore_index: Type.Integer({ default: -100, description: 'Targets equal to it contribute nothing (nor to the mean\'s denominator).' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  rowAligned: ['target'],
  perRowOptions: 'rows',
  example: { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1], weight: [1, 1] },
  check: (a, o) => checkClassIndexArgs(a, o.ignore_index),
  forward: (_g, x, o) => {
    const { loss, weights } = pickedNll(x.input, x.target, x.weight, x.ignore_index, classAxis(x.input.rank))
    return reduceWeighted(loss, weights, o.reduction)
  }
})

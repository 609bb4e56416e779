import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, and, cast, dimSize, div, equal, gatherElements, greater, mul, oneHot, pow, reduceSum, squeeze, sub, take, unsqueeze, where } from '../onnx/ops'
import { reduce } from './reduce'
import { expectIndicesInRange, expectShape } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `F.multi_margin_loss`: per sample, sum over i != y of w[y] max(0, margin - x[y] + x[i])^p / C.
 * relu gives a term exactly at the margin no gradient, as PyTorch's kernel (it tests z > 0).
 * An unbatched input [C] takes a 0-d target (0-d loss) or a [1] one ([1] loss), as PyTorch.
 */
export default defineLoss({
  name: 'multi_margin',
  summary: 'Multi-class hinge loss of scores against class indices.',
  reference: 'torch.nn.functional.multi_margin_loss',
  category: 'classification',
  notes: [
    'A term exactly at the margin gets no gradient, as in PyTorch\'s kernel (it tests z > 0).',
    'An unbatched input [C] takes a 0-d target (a 0-d loss) or a [1] one (a [1] loss), as PyTorch.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores [N,C] (or [C]).' },
    { name: 'target', kind: 'index', doc: 'Class indices [N] (0-d or [1] for an input [C]).' },
    { name: 'weight', kind: 'float', optional: true, doc: 'Per-class weights [C], applied by the target class.' }
  ],
  options: {
    p: Type.Integer({ default: 1, minimum: 1, maximum: 2, description: 'Exponent of the hinge: 1 or 2.' }),
    margin: Type.Number({ default: 1.0, description: 'The margin the target score must win by.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.1, 0.2, 0.4, 0.8]], target: [3], grad: true },
  check: a => {
    const { input, target } = a
    if (input.shape.length < 1 || input.shape.length > 2 || input.shape.at(-1) === 0) fail('SHAPE_MISMATCH', `input: expected scores [N,C] or [C] with C > 0, got ${fmtShape(input.shape)}`)
    const rows = input.shape.length === 2 ? input.shape[0] : 1
    if (target.shape.length > 1 || target.data.length !== rows) fail('SHAPE_MISMATCH', `target: expected ${rows} class indices, shape [${rows}]${rows === 1 ? ' or []' : ''}, for input ${fmtShape(input.shape)}; got ${fmtShape(target.shape)}`)
    const classes = input.shape.at(-1) as number
    if (a.weight !== undefined) expectShape('weight', a.weight, [classes], ' (one weight per class)')
    expectIndicesInRange('target', target, classes)
    return target.shape
  },
  forward: (g, x, o) => {
    const input = x.input.rank === 1 ? unsqueeze(x.input, [0]) : x.input
    const target = x.target.rank === 0 ? unsqueeze(x.target, [0]) : x.target
    const picked = gatherElements(input, unsqueeze(target, [1]), 1)
    const z = add(sub(x.margin, picked), input)
    // as PyTorch's kernel: a term of another class than the target's, where z > 0 (a NaN z, from
    // a NaN score, is left out, not added); selected, so that what is left out has no gradient
    const kept = and(greater(z, 0), equal(oneHot(target, input, 1), 0))
    const h = where(kept, z, 0)
    // h^p: one formula for both p, so that p = 1 has no h · h whose 0 · Infinity gradient is NaN
    let terms = pow(h, cast(x.p, input.dtype))
    // the weight of the target's class scales each term added, as there: a sample with none is 0
    // whatever its weight (NaN, Infinity)
    if (x.weight !== undefined) terms = where(kept, mul(terms, unsqueeze(take(x.weight, target), [1])), 0)
    const loss = div(reduceSum(terms, [1], false), dimSize(input, 1))
    return reduce(x.target.rank === 0 ? squeeze(loss, [0]) : loss, o.reduction)
  }
})

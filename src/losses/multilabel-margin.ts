import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { add, and, cast, cumsum, dimSize, div, equal, gatherElements, greater, less, mask, mul, oneHot, reduceMax, reduceSum, squeeze, sub, unsqueeze, where } from '../onnx/ops'
import { reduce } from './reduce'
import { nominalSize, sameShapes } from './shapes'
import { expectListedIndices } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `F.multilabel_margin_loss`: per sample, sum over the listed classes y and the unlisted j of
 * max(0, 1 - (x[y] - x[j])) / C. A row lists indices up to its first -1 (the entries after it
 * are not read, but must lie in [-1, C), as PyTorch checks); a repeated index counts each
 * time, as in PyTorch's loop. relu gives a term exactly at the margin no gradient, as
 * PyTorch's kernel (it tests z > 0).
 */

export default defineLoss({
  name: 'multilabel_margin',
  summary: 'Multi-label hinge loss of scores against lists of class indices.',
  reference: 'torch.nn.functional.multilabel_margin_loss',
  category: 'classification',
  notes: [
    'A row lists class indices up to its first -1 and the entries after it are not read, though each must lie in [-1, C) as PyTorch checks; a repeated index counts each time, as in PyTorch\'s loop. A term exactly at the margin gets no gradient, as in PyTorch\'s kernel.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores [N,C] or [C].' },
    { name: 'target', kind: 'index', doc: "The input's shape: each row's class indices, ended (padded) by -1." }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.1, 0.2, 0.4, 0.8]], target: [[3, 0, -1, 1]], grad: true },
  // the graph compares every listed class with every class: N*C*C working elements
  workspace: a => ({ [`N*C*C, the pairs of classes of input ${fmtShape(a.input.shape)}`]: nominalSize(a.input.shape) * Math.max(a.input.shape.at(-1) ?? 1, 1) }),
  check: a => {
    const { input } = a
    if (input.shape.length < 1 || input.shape.length > 2 || input.shape.at(-1) === 0) fail('SHAPE_MISMATCH', `input: expected scores [N,C] or [C] with C > 0, got ${fmtShape(input.shape)}`)
    sameShapes(a, ['input', 'target'])
    expectListedIndices('target', a.target, input.shape.at(-1) as number)
    return input.shape.slice(0, -1)
  },
  forward: (g, x, o) => {
    const input = x.input.rank === 1 ? unsqueeze(x.input, [0]) : x.input
    const target = x.target.rank === 1 ? unsqueeze(x.target, [0]) : x.target
    const zero = g.constant(0, 'int64')
    // position k lists a class while no negative entry came at or before it
    const listed = equal(cumsum(cast(less(target, zero), 'int64'), 1), zero)
    const safeTarget = where(listed, target, zero)
    const isTarget = reduceMax(mul(oneHot(safeTarget, unsqueeze(input, [1]), 2), unsqueeze(mask(listed), [2])), [1], false)
    // z[n, k, j] = 1 - x[n, y_k] + x[n, j], added for listed k, classes j not listed, and z > 0 as
    // in PyTorch's kernel (a NaN z is left out); selected, so that what is left out has no gradient
    const z = add(sub(1, unsqueeze(gatherElements(input, safeTarget, 1), [2])), unsqueeze(input, [1]))
    const terms = where(and(and(unsqueeze(listed, [2]), unsqueeze(equal(isTarget, 0), [1])), greater(z, 0)), z, 0)
    const loss = div(reduceSum(terms, [1, 2], false), dimSize(input, 1))
    return reduce(x.input.rank === 1 ? squeeze(loss, [0]) : loss, o.reduction)
  }
})

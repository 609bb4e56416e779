import { defineLoss, STANDARD_REDUCTIONS } from './loss'
import { add, cast, dimSize, div, equal, gatherElements, less, mask, mul, oneHot, reduceMax, reduceSum, relu, squeeze, sub, unsqueeze, where } from '../onnx/ops'
import { reduce } from './reduce'
import { cumsum } from '../onnx/ops-sort'
import { returned, sameShapes } from './shapes'
import { nominalSize } from '../kernels/admission'
import { fail } from '../errors'
import { at, fmtShape } from '../tensor/tensor'

/**
 * `F.multilabel_margin_loss`: per sample, sum over the listed classes y and the unlisted j of
 * max(0, 1 - (x[y] - x[j])) / C. A row lists indices up to its first negative entry (anything
 * after it is ignored); a repeated index counts each time, as in PyTorch's loop. relu gives a
 * term exactly at the margin no gradient, as PyTorch's kernel (it tests z > 0).
 */

export default defineLoss({
  name: 'multilabel_margin',
  summary: 'Multi-label hinge loss of scores against lists of class indices.',
  reference: 'torch.nn.functional.multilabel_margin_loss',
  category: 'classification',
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Scores [N,C] or [C].' },
    { name: 'target', kind: 'index', doc: "The input's shape: each row's class indices, ended (padded) by -1." }
  ],
  options: {},
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[0.1, 0.2, 0.4, 0.8]], target: [[3, 0, -1, 1]], grad: true },
  // the graph compares every listed class with every class: N*C*C working elements
  workspace: a => ({ [`N*C*C, the pairs of classes of input ${fmtShape(a.input.shape)}`]: nominalSize(a.input.shape) * Math.max(a.input.shape.at(-1) ?? 1, 1) }),
  check: (a, o) => {
    const { input, target } = a
    if (input.shape.length < 1 || input.shape.length > 2 || input.shape.at(-1) === 0) fail('SHAPE_MISMATCH', `input: expected scores [N,C] or [C] with C > 0, got ${fmtShape(input.shape)}`)
    sameShapes(a, ['input', 'target'])
    const classes = input.shape.at(-1) as number
    for (let row = 0; row < target.data.length; row += classes) {
      for (let i = row; i < row + classes && at(target.data, i) >= 0; i++) {
        const v = at(target.data, i)
        if (v >= classes) fail('INDEX_OUT_OF_RANGE', `target: class index ${v} at flat position ${i} is out of range [0, ${classes}) (a row's indices end at its first -1)`)
      }
    }
    return returned(input.shape.slice(0, -1), o.reduction)
  },
  forward: (g, x, o) => {
    const input = x.input.rank === 1 ? unsqueeze(x.input, [0]) : x.input
    const target = x.target.rank === 1 ? unsqueeze(x.target, [0]) : x.target
    const zero = g.constant(0, 'int64')
    // position k lists a class while no negative entry came at or before it
    const listed = equal(cumsum(cast(less(target, zero), 'int64'), 1), zero)
    const safeTarget = where(listed, target, zero)
    const listedAt = unsqueeze(mask(listed), [2])
    const isTarget = reduceMax(mul(oneHot(safeTarget, unsqueeze(input, [1]), 2), listedAt), [1], false)
    // z[n, k, j] = 1 - x[n, y_k] + x[n, j]
    const z = add(sub(1, unsqueeze(gatherElements(input, safeTarget, 1), [2])), unsqueeze(input, [1]))
    const terms = mul(mul(relu(z), listedAt), unsqueeze(sub(1, isTarget), [1]))
    const loss = div(reduceSum(terms, [1, 2], false), dimSize(input, 1))
    return reduce(x.input.rank === 1 ? squeeze(loss, [0]) : loss, o.reduction)
  }
})

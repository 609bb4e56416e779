import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { type Value } from '../onnx/graph'
import { abs, clampMin, dimSize, div, equal, expandAs, greater, mask, mul, not, oneHot, reduceSum, shapeOf, softmax, sub, take, unsqueeze, where } from '../onnx/ops'
import { flattenFrom, reshape, transpose } from '../onnx/ops-layout'
import { StringEnum } from '../../schemas/enum'
import { checkPerImageReduction, lovaszWeights, reducePerImage } from './lovasz'
import { expectIndicesInRange, expectShape } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `lovasz_softmax` of M. Berman's lovasz_losses.py: per set of pixels (each image with
 * per_image, else the whole batch) and class c, the Lovasz extension of the Jaccard loss
 * applied to |[t = c] - p_c| (see lovasz.ts), averaged over the classes present in the set
 * ("present") or over all ("all"). Ignored pixels are left out; a set with none left gives 0.
 */
export default defineLoss({
  name: 'lovasz_softmax',
  summary: 'Lovasz-Softmax: a convex surrogate of the mean Jaccard (IoU) loss for multiclass segmentation.',
  reference: "lovasz_softmax of M. Berman's lovasz_losses.py (LovaszSoftmax, PyTorch version)",
  category: 'segmentation',
  notes: [
    'Ignored pixels are left out; a set of pixels (an image with `per_image`, else the batch) with none left gives 0 and still counts among the images, as in the reference; with `per_image`, the mean over no image (N = 0) is 0, as the mean of an empty list in the reference. The Lovasz weights depend only on the order and the labels, so the gradient is weight × the error\'s gradient, as autograd through torch.sort gives.',
    'Tied errors are ordered by position (a stable sort). PyTorch\'s CPU sort is not stable once it sorts more than 16 errors (an image, or the batch without `per_image`, of more than 16 pixels): there two equal errors of different labels (equal logits; probabilities rounded to exactly 0 or 1) may come in the other order. The loss is the same; the gradient, which follows the order, is not.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits (or probabilities with from_logits: false) [N,C,H,W], or [N,C,P].' },
    { name: 'target', kind: 'index', doc: 'Class indices [N,H,W] (or [N,P]); pixels equal to ignore_index are left out.' }
  ],
  options: {
    from_logits: Type.Boolean({ default: true, description: 'Apply softmax over dim 1 first; false: the input holds probabilities.' }),
    classes: StringEnum(['present', 'all'], { default: 'present', description: 'Average over the classes present in the target ("present") or over every class ("all").' }),
    per_image: Type.Boolean({ default: false, description: 'One loss per image (reduced by `reduction`); false: one loss over the whole batch ("mean" only).' }),
    ignore_index: Type.Integer({ default: -100, description: 'Target pixels equal to it are left out.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[[[2.0, -1.0]], [[0.5, 1.5]], [[-0.3, 0.2]]]], target: [[[0, 1]]] },
  check: (a, o) => {
    checkPerImageReduction(o.per_image, o.reduction)
    const rank = a.input.shape.length
    if (rank !== 3 && rank !== 4) fail('SHAPE_MISMATCH', `input: expected [N,C,H,W] (or [N,C,P]), got ${fmtShape(a.input.shape)}`)
    expectShape('target', a.target, a.input.shape.filter((_, i) => i !== 1), ` (the input's shape ${fmtShape(a.input.shape)} without dim C)`)
    expectIndicesInRange('target', a.target, a.input.shape[1], o.ignore_index)
    return o.per_image ? [a.input.shape[0]] : []
  },
  forward: (g, x, o) => {
    const probas = o.from_logits ? softmax(x.input, 1) : x.input
    const valid = unsqueeze(mask(not(equal(x.target, x.ignore_index))), [1])
    const fg = mul(oneHot(x.target, probas, 1), valid)
    const errors = abs(sub(fg, probas))
    const pixels = x.input.rank === 4 ? [2, 3] : [2]
    // each set's pixels along the last axis: [N, C, pixels] per image, [C, N * pixels] for the batch
    const perm = [1, 0, ...pixels]
    const toSets = o.per_image ? (v: Value) => flattenFrom(v, 2) : (v: Value) => flattenFrom(transpose(v, perm), 1)
    const fromSets = o.per_image
      ? (w: Value) => reshape(w, shapeOf(errors), errors.dims)
      : (w: Value) => transpose(reshape(w, take(shapeOf(errors), g.constant(perm, 'int64')), perm.map(i => errors.dims[i])), perm)
    const weights = lovaszWeights(errors, fg, expandAs(valid, errors), toSets, fromSets)
    const setAxes = o.per_image ? pixels : [0, ...pixels]
    // where, not just weight 0: an ignored pixel is dropped, even with non-finite logits
    const perClass = reduceSum(where(greater(valid, 0), mul(errors, weights), 0), setAxes, false)
    const present = mask(greater(reduceSum(fg, setAxes, false), 0))
    // "all" with no class (C = 0), or "present" with every pixel ignored, gives 0 as the reference's empty set
    const loss = o.classes === 'all'
      ? div(reduceSum(perClass, [-1], false), clampMin(dimSize(x.input, 1), 1))
      : div(reduceSum(mul(perClass, present), [-1], false), clampMin(reduceSum(present, [-1], false), 1))
    return o.per_image ? reducePerImage(loss, o.reduction) : loss
  }
})

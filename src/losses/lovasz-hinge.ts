import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { cast, equal, mask, mul, not, reduceSum, relu, shapeOf, sub, sumAll, where } from '../onnx/ops'
import { flattenFrom, reshape } from '../onnx/ops-layout'
import { checkPerImageReduction, lovaszWeights, reducePerImage } from './lovasz'
import { expectLabels, expectShape } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `lovasz_hinge` of M. Berman's lovasz_losses.py: per set of pixels (each image with
 * per_image, else the whole batch), the Lovasz extension of the Jaccard loss applied to the
 * hinge errors relu(1 - x (2t - 1)), see lovasz.ts. Ignored pixels are left out; a set with
 * none left gives 0 (and still counts among the images).
 */
export default defineLoss({
  name: 'lovasz_hinge',
  summary: 'Lovasz hinge: a convex surrogate of the Jaccard (IoU) loss for binary segmentation.',
  reference: "lovasz_hinge of M. Berman's lovasz_losses.py (LovaszSoftmax, PyTorch version)",
  category: 'segmentation',
  notes: [
    'Ignored pixels are left out; an image (or, without `per_image`, the batch) with none left gives 0 and still counts among the images, as in the reference; with `per_image`, the mean over no image (N = 0) is 0, as the mean of an empty list in the reference. The Lovasz weights depend only on the order and the labels, so the gradient is weight × the hinge error\'s gradient, as autograd through torch.sort gives.',
    'Tied errors are ordered by position (a stable sort). PyTorch\'s CPU sort is not stable once it sorts more than 16 errors (an image, or the batch without `per_image`, of more than 16 pixels): there two equal errors of different labels (equal logits; probabilities rounded to exactly 0 or 1) may come in the other order. The loss is the same; the gradient, which follows the order, is not.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Logits [N,H,W] (or [N,P]).' },
    { name: 'target', kind: 'float-or-index', doc: "Labels 0 or 1 (floats or integers), the input's shape; pixels equal to ignore_index are left out." }
  ],
  options: {
    per_image: Type.Boolean({ default: true, description: 'One loss per image (reduced by `reduction`); false: one loss over the whole batch ("mean" only).' }),
    ignore_index: Type.Integer({ default: -100, description: 'Target pixels equal to it are left out.' })
  },
  reductions: STANDARD_REDUCTIONS,
  example: { input: [[[2.0, -1.0], [0.5, -0.3]]], target: [[[1, 0], [0, 1]]] },
  check: (a, o) => {
    checkPerImageReduction(o.per_image, o.reduction)
    const rank = a.input.shape.length
    if (rank !== 2 && rank !== 3) fail('SHAPE_MISMATCH', `input: expected logits [N,H,W] (or [N,P]), got ${fmtShape(a.input.shape)}`)
    expectShape('target', a.target, a.input.shape, " (the input's shape)")
    expectLabels('target', a.target, [0, 1], o.ignore_index)
    return o.per_image ? [a.input.shape[0]] : []
  },
  forward: (g, x, o) => {
    const { input, target } = x
    const valid = not(equal(target, target.dtype === 'int64' ? x.ignore_index : cast(x.ignore_index, g.float)))
    const fg = where(valid, cast(target, g.float), 0)
    const errors = sub(1, mul(input, sub(mul(fg, 2), 1)))
    const axis = o.per_image ? 1 : 0
    const weights = lovaszWeights(errors, fg, mask(valid), v => flattenFrom(v, axis), w => reshape(w, shapeOf(errors), errors.dims))
    // where, not just weight 0: an ignored pixel is dropped, even with a non-finite logit
    const terms = where(valid, mul(relu(errors), weights), 0)
    if (!o.per_image) return sumAll(terms)
    return reducePerImage(reduceSum(terms, input.rank === 3 ? [1, 2] : [1], false), o.reduction)
  }
})

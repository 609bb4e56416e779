import { defineLoss } from './loss'
import { add, clampMin, div, mul, sub } from '../onnx/ops'
import { checkOverlap, OVERLAP_ARGS, OVERLAP_OPTIONS, overlapInputs, overlapLoss, overlapStructural } from './set-overlap'

/**
 * segmentation_models_pytorch v0.5 JaccardLoss: per class, with I = sum(p t) and
 * card = sum(p + t), score = (I + smooth) / max(card - I + smooth, eps); loss = mean over
 * classes of (1 - score), absent classes giving 0 (see set-overlap.ts). smp 0.5.0's
 * JaccardLoss has no ignore_index; ours masks as DiceLoss does (what smp later added).
 */
export default defineLoss({
  name: 'jaccard',
  summary: 'Jaccard (soft IoU) loss for binary, multiclass or multilabel segmentation.',
  reference: 'segmentation_models_pytorch.losses.JaccardLoss (v0.5)',
  category: 'segmentation',
  args: OVERLAP_ARGS,
  options: OVERLAP_OPTIONS,
  reductions: ['mean'],
  example: { input: [[[[1.2, -0.5], [0.3, 2.0]]]], target: [[[[1, 0], [0, 1]]]], mode: 'binary' },
  structural: overlapStructural,
  check: checkOverlap,
  forward: (_g, x, o) => {
    const { p, t, sums } = overlapInputs(x, o)
    const intersection = sums(mul(p, t))
    const score = div(add(intersection, x.smooth), clampMin(add(sub(sums(add(p, t)), intersection), x.smooth), x.eps))
    return overlapLoss(score, sums(t))
  }
})

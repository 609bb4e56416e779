import { defineLoss } from './loss'
import { checkOverlap, OVERLAP_EMPTY_NOTE, OVERLAP_ARGS, OVERLAP_OPTIONS, overlapInputs, overlapLoss, softTverskyScore } from './set-overlap'

/**
 * segmentation_models_pytorch v0.5 JaccardLoss: soft_tversky_score (softTverskyScore) with
 * alpha = beta = 1, score = (I + smooth) / max(I + FP + FN + smooth, eps); loss = mean over
 * classes of (1 - score), absent classes giving 0 (see set-overlap.ts). smp 0.5.0's
 * JaccardLoss has no ignore_index; ours masks as DiceLoss does (what smp later added).
 */
export default defineLoss({
  name: 'jaccard',
  summary: 'Jaccard (soft IoU) loss for binary, multiclass or multilabel segmentation.',
  reference: 'segmentation_models_pytorch.losses.JaccardLoss (v0.5)',
  category: 'segmentation',
  notes: [
    'segmentation_models_pytorch v0.5, whose JaccardLoss is soft_tversky_score with alpha = beta = 1: score = (I + smooth) / max(I + FP + FN + smooth, eps), with `dice`\'s L1 intersection I = (sum p + sum t - sum |p - t|) / 2; mean over classes of 1 - score, absent classes giving 0.',
    'smp 0.5.0\'s JaccardLoss has no ignore_index; losshub\'s `ignore_index` masks pixels as its DiceLoss does (what smp added later).',
    OVERLAP_EMPTY_NOTE
  ],
  args: OVERLAP_ARGS,
  options: OVERLAP_OPTIONS,
  reductions: ['mean'],
  example: { input: [[[[1.2, -0.5], [0.3, 2.0]]]], target: [[[[1, 0], [0, 1]]]], mode: 'binary' },
  check: checkOverlap,
  forward: (_g, x, o) => {
    const overlap = overlapInputs(x, o)
    return overlapLoss(softTverskyScore(overlap, 1, 1, x.smooth, x.eps), overlap.sums(overlap.t))
  }
})

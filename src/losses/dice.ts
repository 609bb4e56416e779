import { defineLoss } from './loss'
import { checkOverlap, OVERLAP_EMPTY_NOTE, OVERLAP_ARGS, OVERLAP_OPTIONS, overlapInputs, overlapLoss, softTverskyScore } from './set-overlap'

/**
 * segmentation_models_pytorch v0.5 DiceLoss: soft_tversky_score (softTverskyScore: I, FP, FN
 * of the soft predictions) with alpha = beta = 1/2, per class score = (I + smooth) / max(I + (FP + FN)/2 + smooth, eps) = (I + smooth) /
 * max((sum p + sum t)/2 + smooth, eps), not the older (2I + smooth) / max(sum(p + t) + smooth, eps);
 * loss = mean over classes of (1 - score), absent classes giving 0 (see set-overlap.ts).
 * The clamp passes the gradient at the bound, as clamp_min does.
 */
export default defineLoss({
  name: 'dice',
  summary: 'Dice loss (1 - F1 score of the soft predictions) for binary, multiclass or multilabel segmentation.',
  reference: 'segmentation_models_pytorch.losses.DiceLoss (v0.5)',
  category: 'segmentation',
  notes: [
    'segmentation_models_pytorch v0.5, whose soft_dice_score is soft_tversky_score with alpha = beta = 1/2: per class, score = (I + smooth) / max(I + (FP + FN) / 2 + smooth, eps), not the older (2I + smooth) / max(sum p + sum t + smooth, eps), which differs once `smooth` > 0 and at the clamp.',
    'The intersection is v0.5\'s L1 form I = (sum p + sum t - sum |p - t|) / 2 (FP = sum p - I, FN = sum t - I): sum(p t) for 0/1 targets, but not for fractional ones; |p - t| has the gradient 0 where p = t. The clamp passes the gradient at the bound, as clamp_min.',
    'The loss is the mean over classes of 1 - score, a class absent from the target giving 0 but still counting; it is one value over the whole request, so `reduction` is "mean" only.',
    OVERLAP_EMPTY_NOTE
  ],
  args: OVERLAP_ARGS,
  options: OVERLAP_OPTIONS,
  reductions: ['mean'],
  example: { input: [[[[1.2, -0.5], [0.3, 2.0]]]], target: [[[[1, 0], [0, 1]]]], mode: 'binary' },
  check: checkOverlap,
  forward: (_g, x, o) => {
    const overlap = overlapInputs(x, o)
    const score = softTverskyScore(overlap, 0.5, 0.5, x.smooth, x.eps)
    return overlapLoss(score, overlap.sums(overlap.t))
  }
})

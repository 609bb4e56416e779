import { defineLoss, Type } from './loss'
import { pow } from '../onnx/ops'
import { checkOverlap, OVERLAP_EMPTY_NOTE, OVERLAP_ARGS, OVERLAP_OPTIONS, overlapInputs, overlapLoss, softTverskyScore } from './set-overlap'

/**
 * segmentation_models_pytorch v0.5 TverskyLoss: soft_tversky_score (softTverskyScore: I, FP, FN
 * of the soft predictions), score = (I + smooth) / max(I + alpha FP + beta FN
 * + smooth, eps); loss = (mean over classes of (1 - score))^gamma, absent classes giving 0
 * (see set-overlap.ts). As smp's aggregate_loss, gamma applies to the mean, not per class.
 */
export default defineLoss({
  name: 'tversky',
  summary: 'Tversky loss: Dice with separate weights for false positives and false negatives.',
  reference: 'segmentation_models_pytorch.losses.TverskyLoss (v0.5)',
  category: 'segmentation',
  notes: [
    'segmentation_models_pytorch v0.5: score = (I + smooth) / max(I + alpha FP + beta FN + smooth, eps), with `dice`\'s L1 intersection I = (sum p + sum t - sum |p - t|) / 2, FP = sum p - I, FN = sum t - I.',
    '`gamma` raises the mean over classes, (mean of 1 - score)^gamma, as smp\'s aggregate_loss, not each class\'s term.',
    OVERLAP_EMPTY_NOTE
  ],
  args: OVERLAP_ARGS,
  options: {
    ...OVERLAP_OPTIONS,
    alpha: Type.Number({ default: 0.5, description: 'Weight of false positives.' }),
    beta: Type.Number({ default: 0.5, description: 'Weight of false negatives.' }),
    gamma: Type.Number({ default: 1.0, description: 'Power of the mean loss (focal Tversky).' })
  },
  reductions: ['mean'],
  example: { input: [[[[1.2, -0.5], [0.3, 2.0]]]], target: [[[[1, 0], [0, 1]]]], mode: 'binary', alpha: 0.3, beta: 0.7 },
  check: checkOverlap,
  forward: (_g, x, o) => {
    const overlap = overlapInputs(x, o)
    return pow(overlapLoss(softTverskyScore(overlap, x.alpha, x.beta, x.smooth, x.eps), overlap.sums(overlap.t)), x.gamma)
  }
})

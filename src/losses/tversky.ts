import { defineLoss, Type } from './loss'
import { add, clampMin, div, mul, pow, sub } from '../onnx/ops'
import { checkOverlap, OVERLAP_ARGS, OVERLAP_OPTIONS, overlapInputs, overlapLoss, overlapStructural } from './set-overlap'

/**
 * segmentation_models_pytorch v0.5 TverskyLoss: per class, with I = sum(p t),
 * FP = sum(p (1 - t)), FN = sum((1 - p) t), score = (I + smooth) / max(I + alpha FP + beta FN
 * + smooth, eps); loss = (mean over classes of (1 - score))^gamma, absent classes giving 0
 * (see set-overlap.ts). As smp's aggregate_loss, gamma applies to the mean, not per class.
 */
export default defineLoss({
  name: 'tversky',
  summary: 'Tversky loss: Dice with separate weights for false positives and false negatives.',
  reference: 'segmentation_models_pytorch.losses.TverskyLoss (v0.5)',
  category: 'segmentation',
  args: OVERLAP_ARGS,
  options: {
    ...OVERLAP_OPTIONS,
    alpha: Type.Number({ default: 0.5, description: 'Weight of false positives.' }),
    beta: Type.Number({ default: 0.5, description: 'Weight of false negatives.' }),
    gamma: Type.Number({ default: 1.0, description: 'Power of the mean loss (focal Tversky).' })
  },
  reductions: ['mean'],
  example: { input: [[[[1.2, -0.5], [0.3, 2.0]]]], target: [[[[1, 0], [0, 1]]]], mode: 'binary', alpha: 0.3, beta: 0.7 },
  structural: overlapStructural,
  check: checkOverlap,
  forward: (_g, x, o) => {
    const { p, t, sums } = overlapInputs(x, o)
    const intersection = sums(mul(p, t))
    const fp = sums(mul(p, sub(1, t)))
    const fn = sums(mul(sub(1, p), t))
    const denominator = add(add(add(intersection, mul(x.alpha, fp)), mul(x.beta, fn)), x.smooth)
    const score = div(add(intersection, x.smooth), clampMin(denominator, x.eps))
    return pow(overlapLoss(score, sums(t)), x.gamma)
  }
})

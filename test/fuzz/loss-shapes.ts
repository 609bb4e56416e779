/**
 * The shape of each loss's answer, written from the contract (docs/losses.md) and PyTorch's documentation (not from
 * the losses' own checks): a reduced loss is 0-d; `reduction: "none"` gives the per-element or
 * per-sample shape below.
 */

/** Shape of a tensor as sent: a typed tensor's `shape`, nested arrays' lengths, [] for a number. */
export function sentShape (v: unknown): number[] {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return (v as { shape: number[] }).shape
  const shape: number[] = []
  for (let p: unknown = v; Array.isArray(p); p = p[0]) shape.push(p.length)
  return shape
}

/** numpy broadcasting of shapes (the test's own copy). */
export function broadcast (...shapes: number[][]): number[] {
  const rank = Math.max(0, ...shapes.map(s => s.length))
  return Array.from({ length: rank }, (_, i) => {
    const dims = shapes.map(s => s[s.length - rank + i] ?? 1).filter(d => d !== 1)
    return dims.length === 0 ? 1 : dims[0]
  })
}

const without = (shape: number[], axis: number): number[] => shape.filter((_, i) => i !== axis)
const classAxis = (shape: number[]): number => shape.length === 1 ? 0 : 1

type Rule = (s: Record<string, number[]>, body: Record<string, unknown>) => number[]

const elementwise: Rule = s => broadcast(s.input, s.target)
const perSampleLastAxis = (arg: string): Rule => s => s[arg].slice(0, -1)
const perClassAxis: Rule = s => without(s.input, classAxis(s.input))
const perImage: Rule = s => [s.input[0]]

/** The `reduction: "none"` shape of every loss. */
const NONE: Record<string, Rule> = {
  mse: elementwise,
  l1: elementwise,
  smooth_l1: elementwise,
  huber: elementwise,
  poisson_nll: elementwise,
  gaussian_nll: elementwise,
  log_cosh: elementwise,
  cross_entropy: perClassAxis,
  nll: perClassAxis,
  bce: elementwise,
  bce_with_logits: elementwise,
  balanced_bce: elementwise,
  sigmoid_focal: elementwise,
  softmax_focal: perClassAxis,
  kl_div: elementwise,
  soft_margin: elementwise,
  multilabel_soft_margin: perSampleLastAxis('input'),
  // an unbatched [C] input gives the target's shape: [] or [1]
  multi_margin: s => s.input.length === 2 ? [s.input[0]] : s.target,
  multilabel_margin: perSampleLastAxis('input'),
  hinge: elementwise,
  squared_hinge: elementwise,
  perceptron: elementwise,
  binary_crossentropy: perSampleLastAxis('input'),
  categorical_crossentropy: perSampleLastAxis('input'),
  margin_ranking: s => broadcast(s.input1, s.input2, s.target),
  hinge_embedding: elementwise,
  cosine_embedding: perSampleLastAxis('input1'),
  cosine_similarity: perSampleLastAxis('input1'),
  triplet_margin: perSampleLastAxis('anchor'),
  ctc: s => s.log_probs.length === 3 ? [s.log_probs[1]] : [],
  lovasz_softmax: perImage,
  lovasz_hinge: perImage,
  dice: () => [],
  jaccard: () => [],
  tversky: () => []
}

/** The loss shape a 200 must have for this request body. */
export function expectedLossShape (loss: string, argNames: readonly string[], body: Record<string, unknown>): number[] {
  if ((body.reduction ?? 'mean') !== 'none') return []
  const shapes: Record<string, number[]> = {}
  for (const a of argNames) if (body[a] !== undefined) shapes[a] = sentShape(body[a])
  const rule = NONE[loss]
  if (rule === undefined) throw new Error(`no shape rule for loss ${loss}`)
  return rule(shapes, body)
}

/** Names of the losses the rules cover (the test checks every served loss is among them). */
export const COVERED = Object.keys(NONE)

import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { square, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { cosineSimilarity, expectPairTarget, vectorPairs } from './embedding'
import { expectInRange } from './checks'

/**
 * (F.cosine_similarity(input1, input2, eps) - target)^2 per pair, with torch 1.13's cosine:
 * each norm clamped to >= eps, and its gradient taken with the clamped norm (see embedding.ts).
 */
export default defineLoss({
  name: 'cosine_similarity',
  summary: 'Squared error between the cosine similarity of vector pairs and a target similarity.',
  reference: '(torch.nn.functional.cosine_similarity(input1, input2, dim=-1, eps=eps) - target) ** 2',
  category: 'ranking',
  notes: [
    'The cosine is torch 1.13\'s `F.cosine_similarity`: each norm clamped to at least `eps`, and its gradient taken with the clamped norm (torch clamps in place under no_grad).'
  ],
  args: [
    { name: 'input1', kind: 'float', grad: true, doc: 'First vectors [N,D] (or one vector [D]).' },
    { name: 'input2', kind: 'float', grad: true, doc: "Second vectors, input1's shape." },
    { name: 'target', kind: 'float', doc: 'Target similarities in [-1, 1]: [N] (or [] for one pair).' }
  ],
  options: {
    eps: Type.Number({ default: 1e-8, minimum: 0, description: 'Lower bound of each vector norm (guards zero vectors).' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input1', 'input2', 'target'],
  rowAligned: ['target'],
  example: { input1: [[1, 0, 1], [0.5, 2, 0]], input2: [[1, 1, 0], [-1, 0.5, 1]], target: [0.5, 0] },
  check: a => {
    const pairs = vectorPairs(a, ['input1', 'input2'])
    expectPairTarget('target', a.target, pairs, 'input1', a.input1.shape)
    expectInRange('target', a.target, -1, 1)
    return pairs
  },
  forward: (_g, x, o) => reduce(square(sub(cosineSimilarity(x.input1, x.input2, x.eps), x.target)), o.reduction)
})

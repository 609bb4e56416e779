import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { clampMin, equal, sub, where } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'
import { expectSigns } from './checks'

/**
 * `F.hinge_embedding_loss` (torch 1.13), elementwise: x where t = 1, max(0, margin - x) where
 * t = -1. The clamp passes the gradient at exactly 0, as clamp_min does.
 */
export default defineLoss({
  name: 'hinge_embedding',
  summary: 'Hinge embedding: pulls similar pairs\' distances down, pushes dissimilar ones past a margin.',
  reference: 'torch.nn.functional.hinge_embedding_loss',
  category: 'ranking',
  notes: [
    'The clamp max(0, margin - x) passes the gradient at exactly 0, as clamp_min does in torch 1.13.'
  ],
  args: [
    { name: 'input', kind: 'float', grad: true, doc: 'Distances (or any scores), any shape.' },
    { name: 'target', kind: 'float', integers: true, doc: '1 for similar pairs, -1 for dissimilar ones; broadcastable with input.' }
  ],
  options: {
    margin: Type.Number({ default: 1.0, description: 'Dissimilar pairs closer than this are penalised.' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input', 'target'],
  perRowOptions: 'elementwise',
  example: { input: [[1.0, 0.8, 0.5]], target: [[1, 1, -1]], margin: 1.0 },
  workspace: broadcastWorkspace(['input', 'target']),
  check: a => {
    const shape = broadcastArgs(a, ['input', 'target'])
    expectSigns('target', a.target)
    return shape
  },
  forward: (_g, x, o) => {
    const loss = where(equal(x.target, -1), clampMin(sub(x.margin, x.input), 0), x.input)
    return reduce(loss, o.reduction)
  }
})

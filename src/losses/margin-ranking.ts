import { defineLoss, STANDARD_REDUCTIONS, Type } from './loss'
import { add, clampMin, mul, neg, sub } from '../onnx/ops'
import { reduce } from './reduce'
import { broadcastArgs, broadcastWorkspace } from './shapes'
import { expectSigns } from './checks'
import { fail } from '../errors'
import { fmtShape } from '../tensor/tensor'

/**
 * `F.margin_ranking_loss` (torch 1.13): max(0, -t (x1 - x2) + margin), elementwise over the
 * broadcast of input1, input2 and target. The clamp passes the gradient at exactly 0, as
 * clamp_min does.
 */
export default defineLoss({
  name: 'margin_ranking',
  summary: 'Margin ranking: penalises pairs of scores ordered against the target.',
  reference: 'torch.nn.functional.margin_ranking_loss',
  category: 'ranking',
  notes: [
    'The clamp max(0, ...) passes the gradient at exactly 0, as clamp_min does in torch 1.13.'
  ],
  args: [
    { name: 'input1', kind: 'float', grad: true, doc: 'Scores of the first items, any shape.' },
    { name: 'input2', kind: 'float', grad: true, doc: 'Scores of the second items: as many dims as input1, broadcastable with it.' },
    { name: 'target', kind: 'float', integers: true, doc: '1 where input1 should rank higher, -1 where input2 should: as many dims as input1, broadcastable.' }
  ],
  options: {
    margin: Type.Number({ default: 0.0, description: 'How far the right order must lead before the loss is 0.' })
  },
  reductions: STANDARD_REDUCTIONS,
  batch: ['input1', 'input2', 'target'],
  perRowOptions: 'elementwise',
  example: { input1: [0.8, -0.2, 0.5], input2: [0.3, 0.1, 0.9], target: [1, -1, 1], margin: 0.1 },
  workspace: broadcastWorkspace(['input1', 'input2', 'target']),
  check: a => {
    // PyTorch rejects differing numbers of dims before broadcasting
    const ranks = ['input1', 'input2', 'target'].map(n => a[n].shape.length)
    if (ranks[1] !== ranks[0] || ranks[2] !== ranks[0]) {
      fail('SHAPE_MISMATCH', `input1, input2, target: must have the same number of dims, got input1 ${fmtShape(a.input1.shape)}, input2 ${fmtShape(a.input2.shape)}, target ${fmtShape(a.target.shape)}`)
    }
    const shape = broadcastArgs(a, ['input1', 'input2', 'target'])
    expectSigns('target', a.target)
    return shape
  },
  forward: (_g, x, o) => reduce(clampMin(add(mul(neg(x.target), sub(x.input1, x.input2)), x.margin), 0), o.reduction)
})

/**
 * ctc (src/losses/ctc.ts) where the fixtures do not look: what no alignment reads (frames past a
 * sample's input length, states frame 0 cannot reach) changes nothing, whatever it holds.
 */
import t from 'tap'
import { build, postLoss } from '../helpers/app'
import { fromForm } from '../helpers/tensors'

// [T=3, N=2, C=3]; sample 1 uses 2 frames, so its frame 2 is padding
const frames = (pad: number | string): Array<Array<Array<number | string>>> => [
  [[-0.51, -1.61, -1.61], [-1.2, -0.69, -1.61]],
  [[-1.39, -0.69, -1.39], [-0.36, -2.3, -1.61]],
  [[-1.2, -1.61, -0.69], [pad, pad, pad]]
]
const request = (pad: number | string): Record<string, unknown> => ({
  log_probs: { dtype: 'float64', shape: [3, 2, 3], data: frames(pad).flat(2) },
  targets: [[1, 2], [2, 0]],
  input_lengths: [3, 2],
  target_lengths: [2, 1],
  reduction: 'none',
  grad: true
})

t.test('a padding frame past input_length changes neither the loss nor the gradient, and its gradient is 0, even if it holds NaN', async t => {
  const app = await build(t)
  const finite = await postLoss(app, 'ctc', request(-1))
  const nan = await postLoss(app, 'ctc', request('NaN'))
  t.equal(finite.status, 200)
  t.equal(nan.status, 200)
  t.same(fromForm(nan.body.loss).data, fromForm(finite.body.loss).data, 'the same losses')
  const grad = fromForm(nan.body.grad.log_probs).data
  t.same(grad, fromForm(finite.body.grad.log_probs).data, 'the same gradient')
  // flat [t, n, c]: frame 2 of sample 1
  t.same(grad.slice(15, 18), [0, 0, 0], 'the padding frame\'s gradient is 0')
  t.ok(grad.slice(0, 15).some(v => v !== 0), 'the frames used have a gradient')
})

t.test('frame 0 reaches only the first blank and the first label: NaN elsewhere in it changes no loss, as in PyTorch', async t => {
  const app = await build(t)
  // one frame, blank 2: the only alignment of [1] emits it at frame 0, so the loss is -lp[1]
  const one = await postLoss(app, 'ctc', { log_probs: [[[-1, -2, 'NaN', -1.5]]], targets: [[1]], input_lengths: [1], target_lengths: [1], blank: 2, reduction: 'sum', grad: true })
  t.equal(one.status, 200)
  t.equal(one.body.loss, 2, 'PyTorch: 2')
  t.same(fromForm(one.body.grad.log_probs).data, [0, -1, 0, 0], 'only the label emitted has a gradient')
  // the second label at frame 0 (state 3, reached from frame 1 on)
  const later = await postLoss(app, 'ctc', {
    log_probs: { dtype: 'float64', shape: [3, 1, 3], data: [-1, -0.8, 'NaN', -0.5, -1.2, -2, -0.7, -0.9, -1.9] },
    targets: [[1, 2]],
    input_lengths: [3],
    target_lengths: [2],
    reduction: 'sum'
  })
  t.equal(later.status, 200)
  const loss = fromForm(later.body.loss).data[0]
  t.ok(Math.abs(loss - 2.146697767580938) <= 1e-9 * 2.146697767580938, `PyTorch: 2.146697767580938, got ${loss}`)
})

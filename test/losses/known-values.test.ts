import t from 'tap'
import { build, postLoss } from '../helpers/app'
import { fromForm, mismatch } from '../helpers/tensors'

// PyTorch's own outputs, as printed to 4 decimals (independent of the generated fixtures).
const sig = (rows: number[][]): number[][] => rows.map(r => r.map(v => 1 / (1 + Math.exp(-v))))
const raw = [[1, 2], [2, 2], [3, 4], [4, 5]]
const bt = [[1, 0], [1, 0], [0, 1], [0, 1]]
const ce = { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] }
const kl = { input: [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]], target: [[0.9, 0.05, 0.05], [0.1, 0.7, 0.2]] }
const ones = [[1, 1], [1, 1]]
const threes = [[3, 3], [3, 3]]

const known: Array<[string, Record<string, unknown>, string, unknown]> = [
  ['cross_entropy', ce, 'none', [1.3133, 0.1269, 0.1269]],
  ['cross_entropy', ce, 'sum', 1.5671],
  ['cross_entropy', ce, 'mean', 0.5224],
  ['nll', { ...ce, weight: [1, 1] }, 'none', [-1, -3, -3]],
  ['nll', { ...ce, weight: [1, 1] }, 'sum', -7],
  ['nll', { ...ce, weight: [1, 1] }, 'mean', -2.3333],
  ['bce', { input: sig(raw), target: bt }, 'none', [[0.3133, 2.1269], [0.1269, 2.1269], [3.0486, 0.0181], [4.0181, 0.0067]]],
  ['bce', { input: sig(raw), target: bt }, 'sum', 11.7856],
  ['bce', { input: sig(raw), target: bt }, 'mean', 1.4732],
  ['bce_with_logits', { input: raw, target: bt, pos_weight: [3] }, 'none', [[0.9398, 2.1269], [0.3808, 2.1269], [3.0486, 0.0544], [4.0181, 0.0201]]],
  ['bce_with_logits', { input: raw, target: bt, pos_weight: [3] }, 'sum', 12.7158],
  ['bce_with_logits', { input: raw, target: bt, pos_weight: [3] }, 'mean', 1.5895],
  ['kl_div', kl, 'none', [[-0.5448, -0.1648, -0.1598], [-0.2503, -0.4597, -0.4219]]],
  ['kl_div', kl, 'mean', -0.3335],
  ['kl_div', kl, 'batchmean', -1.0006],
  ['l1', { input: ones, target: threes }, 'none', [[2, 2], [2, 2]]],
  ['mse', { input: ones, target: threes }, 'none', [[4, 4], [4, 4]]]
]

t.test('known PyTorch values', async t => {
  const app = await build(t)
  for (const [name, args, reduction, want] of known) {
    const r = await postLoss(app, name, { ...args, reduction })
    t.equal(r.status, 200, `${name} ${reduction}: status`)
    const got = fromForm(r.body.loss)
    const expected = fromForm(want)
    t.same(got.shape, expected.shape, `${name} ${reduction}: shape`)
    t.equal(mismatch(got.data, expected.data, 0, 5.1e-5), undefined, `${name} ${reduction}: ${JSON.stringify(want)}`)
  }
})

t.test('the README example: cross_entropy with grad', async t => {
  const app = await build(t)
  const r = await postLoss(app, 'cross_entropy', { ...ce, grad: true })
  t.equal(mismatch([r.body.loss], [0.5224], 0, 5e-5), undefined)
  t.equal(mismatch(fromForm(r.body.grad.input).data, [-0.2437, 0.2437, 0.0397, -0.0397, 0.0397, -0.0397], 0, 5e-5), undefined)
  t.same(Object.keys(r.body.grad), ['input'], 'only differentiable arguments get gradients')
})

t.test('grad_output is the upstream gradient of reduction "none"', async t => {
  const app = await build(t)
  // d/dx of sum(g * (x - y)^2) = 2 g (x - y)
  const r = await postLoss(app, 'mse', { input: [1, 2, 3], target: [0, 0, 0], reduction: 'none', grad: true, grad_output: [1, 0.5, -2] })
  t.same(r.body.grad.input, [2, 2, -12])
  const noGrad = await postLoss(app, 'mse', { input: [1, 2, 3], target: [0, 0, 0] })
  t.notOk('grad' in noGrad.body, 'grad only when asked for')
})

t.test('float64 in, float64 out; response mirrors the first tensor argument\'s form', async t => {
  const app = await build(t)
  const r = await postLoss(app, 'mse', { input: { dtype: 'float64', shape: [2], data: [0.1, 0.2] }, target: [0, 0], grad: true })
  t.same(r.body.loss, { dtype: 'float64', shape: [], data: [(0.1 ** 2 + 0.2 ** 2) / 2] })
  t.same(r.body.grad.input, { dtype: 'float64', shape: [2], data: [0.1, 0.2] })
})

t.test('dice with smooth 1, hand-computed as smp v0.5 does: (I + 1) / ((sum p + sum t)/2 + 1)', async t => {
  const app = await build(t)
  // I = 0.8 + 0.6 = 1.4, sum p = 2, sum t = 2: score = 2.4 / 3 = 0.8 (the pre-0.4 (2I + 1) / (sum(p + t) + 1) gives 0.76).
  // d loss/dp = -(t * 3 - 2.4 / 2) / 9: -0.2 where t = 1, 2/15 where t = 0
  const binary = await postLoss(app, 'dice', { input: [[[[0.8, 0.2], [0.6, 0.4]]]], target: [[[[1, 0], [1, 0]]]], mode: 'binary', from_logits: false, smooth: 1, grad: true })
  t.equal(binary.status, 200)
  t.equal(mismatch([binary.body.loss], [0.2], 0, 1e-6), undefined, 'loss 1 - 0.8')
  t.equal(mismatch(fromForm(binary.body.grad.input).data, [-0.2, 2 / 15, -0.2, 2 / 15], 0, 1e-6), undefined, 'grad')
  // class 0: I = 1.1, sum p = 1.1, sum t = 2, score = 2.1 / 2.55 = 14/17; class 1 is absent from the target: 0, still
  // counted in the mean over 2 classes: (3/17) / 2
  const multiclass = await postLoss(app, 'dice', { input: [[[0.7, 0.4], [0.3, 0.6]]], target: [[0, 0]], mode: 'multiclass', from_logits: false, smooth: 1 })
  t.equal(multiclass.status, 200)
  t.equal(mismatch([multiclass.body.loss], [3 / 34], 0, 1e-6), undefined, 'loss (1 - 14/17) / 2')
})

t.test('nested floats are float32 tensors: beside a float64 argument, PyTorch promotes their float32 values', async t => {
  const app = await build(t)
  // torch 1.13: F.mse_loss(torch.tensor([0.1, 0.7, -1.3]), torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64))
  const r = await postLoss(app, 'mse', { input: [0.1, 0.7, -1.3], target: { dtype: 'float64', shape: [3], data: [0.2, 0.5, 0.9] } })
  t.equal(r.status, 200)
  t.equal(mismatch([fromForm(r.body.loss).data[0]], [1.629999928375086], 0, 1e-15), undefined, 'not 1.63, the value of float64 inputs')
})

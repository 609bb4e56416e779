import t from 'tap'
import { build } from '../helpers/app'

// Every name of the catalog (docs/losses.md), typed out here as the independent expectation.
const CATALOG = [
  'mse', 'l1', 'smooth_l1', 'huber', 'poisson_nll', 'gaussian_nll', 'log_cosh',
  'cross_entropy', 'nll', 'bce', 'bce_with_logits', 'balanced_bce', 'sigmoid_focal', 'softmax_focal', 'kl_div',
  'soft_margin', 'multilabel_soft_margin', 'multi_margin', 'multilabel_margin', 'hinge', 'squared_hinge', 'perceptron',
  'binary_crossentropy', 'categorical_crossentropy',
  'margin_ranking', 'hinge_embedding', 'cosine_embedding', 'cosine_similarity', 'triplet_margin',
  'ctc', 'lovasz_softmax', 'lovasz_hinge', 'dice', 'jaccard', 'tversky'
]

// A sample of the catalog's stated defaults.
const DEFAULTS: Array<[string, string, unknown]> = [
  ['smooth_l1', 'beta', 1.0], ['huber', 'delta', 1.0], ['poisson_nll', 'log_input', true], ['poisson_nll', 'eps', 1e-8],
  ['gaussian_nll', 'eps', 1e-6], ['cross_entropy', 'ignore_index', -100], ['cross_entropy', 'label_smoothing', 0.0],
  ['sigmoid_focal', 'alpha', 0.25], ['sigmoid_focal', 'gamma', 2.0], ['kl_div', 'log_target', false], ['multi_margin', 'margin', 1.0],
  ['triplet_margin', 'distance', 'pairwise'], ['triplet_margin', 'eps', 1e-6], ['ctc', 'blank', 0], ['ctc', 'zero_infinity', false],
  ['tversky', 'alpha', 0.5], ['dice', 'smooth', 0.0], ['dice', 'eps', 1e-7], ['balanced_bce', 'alpha', 'auto']
]

t.test('GET /loss lists every loss of the contract with arguments, options, defaults, reductions and reference', async t => {
  const app = await build(t)
  const r = await app.inject('/loss')
  t.equal(r.statusCode, 200)
  const losses = r.json().losses as Array<{
    name: string
    reference: string
    args: Array<{ name: string, grad: boolean }>
    options: Record<string, { default?: unknown }>
    reductions: string[]
    example: Record<string, unknown>
  }>
  t.same(losses.map(l => l.name).sort(), [...CATALOG].sort())
  for (const l of losses) {
    t.ok(l.reference.length > 0, `${l.name} names its reference`)
    t.ok(l.args.some(a => a.grad), `${l.name} has a differentiable argument`)
    t.ok(l.reductions.includes('mean'), `${l.name} takes mean`)
  }
  const byName = new Map(losses.map(l => [l.name, l]))
  for (const [loss, option, value] of DEFAULTS) t.same(byName.get(loss)?.options[option]?.default, value, `${loss}.${option} defaults to ${String(value)}`)
  t.same(byName.get('kl_div')?.reductions, ['none', 'mean', 'sum', 'batchmean'])
  t.same(byName.get('gaussian_nll')?.args.filter(a => a.grad).map(a => a.name), ['input', 'var'])
})

t.test('every catalog example is a request that works', async t => {
  const app = await build(t)
  for (const l of (await app.inject('/loss')).json().losses as Array<{ name: string, example: object }>) {
    const r = await app.inject({ method: 'POST', url: `/loss/${l.name}`, payload: l.example })
    t.equal(r.statusCode, 200, `${l.name}: ${r.body.slice(0, 120)}`)
  }
})

t.test('GET /loss/{name}: one entry, or 404 listing the known names', async t => {
  const app = await build(t)
  const one = await app.inject('/loss/ctc')
  t.equal(one.statusCode, 200)
  t.same(one.json().args.map((a: { name: string }) => a.name), ['log_probs', 'targets', 'input_lengths', 'target_lengths'])
  const none = await app.inject('/loss/cross_entropy_v2')
  t.equal(none.statusCode, 404)
  t.equal(none.json().code, 'UNKNOWN_LOSS')
  t.match(none.json().message, /known losses: .*mse.*tversky/)
})

import t from 'tap'
import { type FastifyInstance } from 'fastify'
import { CompositeRequest, CompositeResponse, MAX_TERMS } from '../../schemas/composite'
import { composite as clientComposite, connect } from '../../examples/client/example'
import { prepareComposite } from '../../src/kernels/composite'
import { kernelKey } from '../../src/kernels/kernel'
import { LOSSES } from '../../src/losses'
import { build, postLoss } from '../helpers/app'
import { type Case, COMPOSITE_CASES, type Term } from '../helpers/composite-fixtures'
import { type Form, fromForm, mismatch, toForm, tolerance } from '../helpers/tensors'

/**
 * `POST /losses`: PyTorch fixtures (scripts/fixtures/composite.py) in every tensor form, the
 * total against the same terms sent one by one to `/loss/{name}`, and every error rule.
 */

const cases = COMPOSITE_CASES

async function postLosses (app: FastifyInstance, body: unknown): Promise<{ status: number, body: any }> {
  const r = await app.inject({ method: 'POST', url: '/losses', payload: body as object })
  return { status: r.statusCode, body: r.json() }
}

const dtypeOf = (c: Case): string => Object.values(c.args).some(a => a.dtype === 'float64') ? 'float64' : 'float32'
const formsOf = (c: Case): Form[] => c.forms ?? (dtypeOf(c) === 'float64' ? ['flat', 'base64'] : ['nested', 'flat', 'base64'])
const bodyOf = (c: Case, form: Form, grad = true): Record<string, unknown> => ({
  tensors: Object.fromEntries(Object.entries(c.args).map(([n, v]) => [n, toForm(v, form)])),
  terms: c.options.terms,
  grad
})

t.test(`${cases.length} PyTorch fixtures: total, term values and gradients in every tensor form`, async t => {
  const app = await build(t)
  for (const c of cases) {
    const { rtol, atol } = tolerance(dtypeOf(c))
    for (const form of formsOf(c)) {
      const label = `${c.name} [${form}]`
      const runsBefore = app.losshub.batcher.stats.runs
      const res = await postLosses(app, bodyOf(c, form))
      if (res.status !== 200) {
        t.fail(`${label}: status ${res.status}: ${JSON.stringify(res.body)}`)
        continue
      }
      t.equal(app.losshub.batcher.stats.runs - runsBefore, 1, `${label}: one kernel run for ${c.options.terms.length} terms`)
      t.equal(typeof res.body.total, 'number', `${label}: total is a JSON number`)
      t.equal(mismatch([res.body.total], fromForm(c.expected.loss).data, rtol, atol), undefined, `${label}: total`)
      t.equal(res.body.terms.length, c.options.terms.length, `${label}: one result per term`)
      c.options.terms.forEach((term, i) => {
        const got = res.body.terms[i]
        t.equal(got.loss, term.loss, `${label}: terms[${i}].loss`)
        t.equal(got.name, term.name, `${label}: terms[${i}].name`)
        const want = c.term_values[i]
        if (want.shape.length === 0) t.equal(typeof got.value, 'number', `${label}: terms[${i}] value is a JSON number`)
        const value = fromForm(got.value)
        t.same(value.shape, want.shape, `${label}: terms[${i}] shape`)
        t.equal(mismatch(value.data, fromForm(want).data, rtol, atol), undefined, `${label}: terms[${i}] value`)
      })
      t.same(Object.keys(res.body.grad), Object.keys(c.expected.grad), `${label}: gradients of exactly the differentiated tensors, in order`)
      for (const [name, g] of Object.entries(c.expected.grad)) {
        const got = fromForm(res.body.grad[name])
        t.same(got.shape, g.shape, `${label}: grad ${name} shape`)
        if (form !== 'nested') t.equal(got.dtype, dtypeOf(c), `${label}: grad ${name} dtype`)
        t.equal(mismatch(got.data, fromForm(g).data, rtol, atol), undefined, `${label}: grad ${name}`)
      }
    }
  }
})

t.test('the total and gradients equal the weighted sums of the terms sent one by one to /loss/{name}', async t => {
  const app = await build(t)
  for (const c of cases) {
    const form = formsOf(c)[0]
    const { rtol, atol } = tolerance(dtypeOf(c))
    const res = await postLosses(app, bodyOf(c, form))
    t.equal(res.status, 200, `${c.name}: composite`)
    let total = 0
    const grads = new Map<string, number[]>()
    for (const [i, term] of c.options.terms.entries()) {
      const single: Record<string, unknown> = { ...term.options, grad: true }
      for (const [arg, tensor] of Object.entries(term.args)) single[arg] = toForm(c.args[tensor], form)
      const r = await postLoss(app, term.loss, single)
      t.equal(r.status, 200, `${c.name}: ${term.loss} alone`)
      const value = fromForm(r.body.loss).data
      t.equal(mismatch(fromForm(res.body.terms[i].value).data, value, rtol, atol), undefined, `${c.name}: terms[${i}] equals /loss/${term.loss}`)
      const w = term.weight ?? 1
      if (w === 0) continue
      total += w * value[0]
      for (const [arg, g] of Object.entries(r.body.grad as Record<string, unknown>)) {
        const tensor = term.args[arg]
        const sum = grads.get(tensor) ?? new Array<number>(fromForm(g).data.length).fill(0)
        fromForm(g).data.forEach((v, k) => { sum[k] += w * v })
        grads.set(tensor, sum)
      }
    }
    t.equal(mismatch([res.body.total], [total], rtol, atol), undefined, `${c.name}: total = sum of weight * value`)
    t.same(Object.keys(res.body.grad).sort(), [...grads.keys()].sort(), `${c.name}: the same tensors get gradients`)
    for (const [tensor, sum] of grads) {
      t.equal(mismatch(fromForm(res.body.grad[tensor]).data, sum, rtol, atol), undefined, `${c.name}: grad ${tensor} = sum of weight * grad`)
    }
  }
})

t.test('forms, dtypes, weights and names', async t => {
  const app = await build(t)
  const x = [0.5, -1, 2]
  const y = [1, 0, 1.5]

  t.test('the first entry of tensors sets the form; total and reduced values stay JSON numbers', async t => {
    const b64 = toForm({ dtype: 'float32', shape: [3], data: y }, 'base64')
    const body = (first: 'x' | 'y') => ({
      tensors: first === 'x' ? { x, y: b64 } : { y: b64, x },
      terms: [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'l1', weight: 0, args: { input: 'x', target: 'y' }, options: { reduction: 'none' } }],
      grad: true
    })
    const nested = await postLosses(app, body('x'))
    t.equal(nested.status, 200)
    t.ok(Array.isArray(nested.body.grad.x), 'nested first: nested gradient')
    t.ok(Array.isArray(nested.body.terms[1].value), 'nested first: the reduction none value is nested')
    const typed = await postLosses(app, body('y'))
    t.equal(typed.status, 200)
    t.equal(typeof typed.body.total, 'number', 'base64 first: total still a number')
    t.equal(typeof typed.body.terms[0].value, 'number', 'base64 first: a reduced value still a number')
    t.match(typed.body.grad.x, { dtype: 'float32', shape: [3] }, 'base64 first: base64 gradient')
    t.equal(typeof typed.body.grad.x.data, 'string')
    t.same(typed.body.terms[1].value.shape, [3], 'base64 first: the reduction none value is base64')
    t.equal(mismatch(fromForm(typed.body.grad.x).data, fromForm(nested.body.grad.x).data, 1e-6, 0), undefined, 'the same gradient')
  })

  t.test('one float64 tensor makes the whole request float64', async t => {
    const mixed = await postLosses(app, {
      tensors: { x: { dtype: 'float32', shape: [3], data: x }, y: { dtype: 'float64', shape: [3], data: y } },
      terms: [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'log_cosh', args: { input: 'x', target: 'y' } }],
      grad: true
    })
    const f64 = await postLosses(app, {
      tensors: { x: { dtype: 'float64', shape: [3], data: x }, y: { dtype: 'float64', shape: [3], data: y } },
      terms: [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'log_cosh', args: { input: 'x', target: 'y' } }],
      grad: true
    })
    t.equal(mixed.status, 200)
    t.equal(mixed.body.grad.x.dtype, 'float64', 'the float32 tensor\'s gradient is float64')
    t.same(mixed.body, f64.body, 'the same as an all-float64 request')
    // hand-computed: mse = mean((0.5-1)^2, 1, 0.25) = 0.5; log_cosh = mean(log cosh(-0.5), log cosh(-1), log cosh(0.5))
    const logCosh = (Math.log(Math.cosh(0.5)) * 2 + Math.log(Math.cosh(1))) / 3
    t.equal(mismatch([mixed.body.total], [0.5 + logCosh], 1e-12, 0), undefined)
  })

  t.test('weight defaults to 1; weight-0 terms are reported but stay out of the total and the gradient', async t => {
    const r = await postLosses(app, {
      tensors: { p: x, q: [1, 'NaN', 0], r: y },
      terms: [
        { loss: 'mse', weight: 0, args: { input: 'p', target: 'q' } },
        { loss: 'l1', args: { input: 'p', target: 'r' } }
      ],
      grad: true
    })
    t.equal(r.status, 200)
    t.equal(r.body.terms[0].value, 'NaN', 'the NaN term\'s value, as a string')
    // l1 = mean(|0.5-1|, |-1-0|, |2-1.5|) = 2/3; its gradient sign(p - r)/3
    t.equal(mismatch([r.body.total], [2 / 3], 1e-6, 1e-7), undefined, 'total: l1 alone, no NaN')
    t.equal(mismatch(r.body.grad.p, [-1 / 3, -1 / 3, 1 / 3], 1e-6, 1e-7), undefined, 'grad p: l1\'s only')
  })

  t.test('a tensor whose only differentiating terms have weight 0 gets a zero gradient', async t => {
    const r = await postLosses(app, {
      tensors: { a: x, b: y },
      terms: [{ loss: 'mse', weight: 0, args: { input: 'a', target: 'b' } }, { loss: 'l1', weight: 3, args: { input: 'b', target: 'a' } }],
      grad: true
    })
    t.equal(r.status, 200)
    t.same(r.body.grad.a, [0, 0, 0], 'a: zeros (a target elsewhere contributes nothing)')
    // 3 * d mean|b - a| / db = sign(b - a)
    t.same(r.body.grad.b, [1, 1, -1])
    const none = await postLosses(app, { tensors: { a: x, b: y }, terms: [{ loss: 'mse', weight: 0, args: { input: 'a', target: 'b' } }], grad: true })
    t.equal(none.body.total, 0, 'every weight 0: the total is 0')
    t.same(none.body.grad.a, [0, 0, 0])
  })

  t.test('no grad: no gradients; tensor names that are JavaScript built-ins stay plain keys, prototype keys are refused', async t => {
    const noGrad = await postLosses(app, { tensors: { a: x, b: y }, terms: [{ loss: 'mse', args: { input: 'a', target: 'b' } }] })
    t.equal(noGrad.status, 200)
    t.notOk('grad' in noGrad.body)
    const odd = { tensors: { toString: [0.5, -1, 2], hasOwnProperty: [1, 0, 1.5] }, terms: [{ loss: 'mse', args: { input: 'toString', target: 'hasOwnProperty' } }], grad: true }
    const r = await postLosses(app, odd)
    t.equal(r.status, 200)
    t.same(Object.keys(r.body.grad), ['toString'])
    t.equal(mismatch(fromForm(r.body.grad.toString).data, [-1 / 3, -2 / 3, 1 / 3], 1e-6, 1e-7), undefined)
    // keys that reach a prototype are refused as the body is read, wherever they stand, naming them
    for (const name of ['__proto__', 'constructor', 'prototype']) {
      const proto = await postLosses(app, JSON.parse(`{"tensors": {"${name}": [0.5, -1, 2], "b": [1, 0, 1.5]}, "terms": [{"loss": "mse", "args": {"input": "${name}", "target": "b"}}]}`))
      t.equal(proto.status, 400, name)
      t.equal(proto.body.code, 'INVALID_REQUEST', name)
      t.equal(proto.body.message, `tensors.${name}: unknown field; __proto__, constructor and prototype are never field or tensor names`)
    }
    const inTerm = await postLosses(app, JSON.parse('{"tensors": {"a": [1], "b": [0]}, "terms": [{"loss": "mse", "args": {"input": "a", "target": "b"}, "options": {"constructor": 1}}]}'))
    t.same([inTerm.status, inTerm.body.code], [400, 'INVALID_REQUEST'])
    t.match(inTerm.body.message, /^terms\[0\]\.options\.constructor: unknown field/)
  })

  t.test('numeric options and weights are per-term graph inputs', async t => {
    const a = await postLosses(app, { tensors: { u: x, v: y }, terms: [{ loss: 'smooth_l1', weight: 2, args: { input: 'u', target: 'v' }, options: { beta: 0.5 } }], grad: true })
    const b = await postLosses(app, { tensors: { s: x, w: y }, terms: [{ loss: 'smooth_l1', weight: 0.5, args: { input: 's', target: 'w' }, options: { beta: 2 } }], grad: true })
    t.equal(a.status, 200)
    t.equal(b.status, 200)
    // smooth_l1 beta 0.5: |d| = 0.5, 1, 0.5 -> 0.25, 0.75, 0.25 (mean 5/12); beta 2: d^2/4 -> 1/16, 1/4, 1/16 (mean 1/8)
    t.equal(mismatch([a.body.total, b.body.total], [2 * 5 / 12, 0.5 / 8], 1e-6, 1e-7), undefined)
  })
})

t.test('the kernel key follows the structure, not tensor names, weights or numeric option values', async t => {
  const losses = new Map(LOSSES.map(d => [d.name, d]))
  // options given in full, so that the validator has no defaults to fill in
  const env = { losses, validateOptions: (_def: unknown, o: Record<string, unknown>) => o }
  const key = (tensors: string[], weight: number, beta: number, loss = 'smooth_l1'): string => kernelKey(prepareComposite({
    tensors: { [tensors[0]]: [1, 2], [tensors[1]]: [0, 0] },
    terms: [{ loss, weight, args: { input: tensors[0], target: tensors[1] }, options: loss === 'smooth_l1' ? { beta, reduction: 'mean' } : { delta: beta, reduction: 'mean' } }],
    grad: true
  }, env).call)
  const base = key(['u', 'v'], 2, 0.5)
  t.equal(key(['s', 'w'], 0.5, 2), base, 'renamed tensors, another weight and beta: the same kernel')
  t.not(key(['u', 'v'], 0, 0.5), base, 'weight 0 leaves the term out of the total: another kernel')
  t.not(key(['u', 'v'], 2, 0.5, 'huber'), base, 'another loss: another kernel')
})

t.test('every error rule: status, code, and a message naming the term and field', async t => {
  const app = await build(t, { maxElements: 64 })
  const logits = [[[[1.2, -0.5], [0.3, 2.0]]]]
  const mask = [[[[1, 0], [0, 1]]]]
  const ok = { tensors: { logits, mask }, terms: [{ loss: 'bce_with_logits', args: { input: 'logits', target: 'mask' } }, { loss: 'dice', name: 'dice', args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' } }], grad: true }
  const withTerm = (i: number, patch: Partial<Term>): unknown => ({ ...ok, terms: ok.terms.map((term, k) => k === i ? { ...term, ...patch } : term) })
  const cases: Array<[string, unknown, number, string, RegExp]> = [
    ['tensor name not an identifier', { ...ok, tensors: { logits, mask, '1st': [1] } }, 400, 'INVALID_REQUEST', /^tensors: "1st" is not a tensor name: names are identifiers/],
    ['tensor no term uses', { ...ok, tensors: { logits, mask, spare: [1] } }, 400, 'INVALID_REQUEST', /^tensors\.spare: no term uses it/],
    ['reduction none with a weight', withTerm(0, { options: { reduction: 'none' } }), 400, 'INVALID_OPTION', /^terms\[0\] \(bce_with_logits\): weight: a term with reduction "none" .*give it weight 0.*\(weight is 1\)/],
    ['reduction none with an explicit weight', withTerm(0, { weight: 0.5, options: { reduction: 'none' } }), 400, 'INVALID_OPTION', /^terms\[0\] \(bce_with_logits\): weight: .*\(weight is 0\.5\)/],
    ['unknown loss', withTerm(1, { loss: 'dcie', name: undefined }), 404, 'UNKNOWN_LOSS', /^terms\[1\] \(dcie\): loss 'dcie' is not served; known losses: .*dice/],
    ['unknown argument', withTerm(0, { args: { input: 'logits', target: 'mask', targets: 'mask' } }), 400, 'INVALID_REQUEST', /^terms\[0\] \(bce_with_logits\): args\.targets: bce_with_logits has no argument 'targets' \(its arguments: input, target, weight, pos_weight\)/],
    ['argument bound to no tensor', withTerm(0, { args: { input: 'logit', target: 'mask' } }), 400, 'INVALID_REQUEST', /^terms\[0\] \(bce_with_logits\): args\.input: no tensor named 'logit' \(tensors: logits, mask\)/],
    ['required argument unbound', withTerm(1, { args: { input: 'logits' } }), 400, 'INVALID_REQUEST', /^terms\[1\] \(dice\): args\.target: required argument is missing/],
    ['missing required option', withTerm(1, { options: {} }), 400, 'INVALID_REQUEST', /^terms\[1\] \(dice\): mode: required field is missing/],
    ['bad option value', withTerm(1, { options: { mode: 'binry' } }), 400, 'INVALID_REQUEST', /^terms\[1\] \(dice\): mode: must be one of "binary", "multiclass", "multilabel"/],
    ['bad option type', withTerm(1, { options: { mode: 'binary', smooth: 'lots' } }), 400, 'INVALID_REQUEST', /^terms\[1\] \(dice\): smooth: must be number/],
    ['option of another loss', withTerm(0, { options: { beta: 1 } }), 400, 'INVALID_REQUEST', /^terms\[0\] \(bce_with_logits\): beta: unknown field/],
    ['grad is not a term option', withTerm(0, { options: { grad: true } }), 400, 'INVALID_REQUEST', /^terms\[0\] \(bce_with_logits\): grad: unknown field/],
    ['reduction the loss refuses', withTerm(1, { options: { mode: 'binary', reduction: 'sum' } }), 400, 'INVALID_REQUEST', /^terms\[1\] \(dice\): reduction: must be one of "mean"/],
    ['option the loss refuses with another', { tensors: { x: [[[1.2, -0.5]]], m: [[[1, 0]]] }, terms: [{ loss: 'lovasz_hinge', args: { input: 'x', target: 'm' }, options: { per_image: false, reduction: 'none' }, weight: 0 }] }, 400, 'INVALID_OPTION', /^terms\[0\] \(lovasz_hinge\): reduction: /],
    ['tensors not an object', { ...ok, tensors: [logits] }, 400, 'INVALID_REQUEST', /^tensors: must be object/],
    ['shapes that do not fit', { ...ok, tensors: { logits, mask: [[1, 0], [0, 1]] } }, 400, 'SHAPE_MISMATCH', /^terms\[0\] \(bce_with_logits\): .*target/],
    ['class index out of range', { tensors: { x: [[1, 2], [0, 1]], k: [0, 2] }, terms: [{ loss: 'cross_entropy', args: { input: 'x', target: 'k' } }] }, 400, 'INDEX_OUT_OF_RANGE', /^terms\[0\] \(cross_entropy\): target: class index 2 at flat position 1 is out of range \[0, 2\)/],
    ['floats as class indices', { tensors: { x: [[1, 2], [0, 1]], k: { dtype: 'float32', shape: [2, 2], data: [0, 1, 1, 0] } }, terms: [{ loss: 'lovasz_softmax', args: { input: 'x', target: 'k' } }] }, 400, 'INVALID_DTYPE', /^terms\[0\] \(lovasz_softmax\): target: class indices must be int32 or int64, got float32/],
    ['domain', { tensors: { p: [0.5, 1.5], y: [1, 0] }, terms: [{ loss: 'mse', args: { input: 'p', target: 'y' } }, { loss: 'bce', name: 'probabilities', args: { input: 'p', target: 'y' } }] }, 400, 'DOMAIN_ERROR', /^terms\[1\] \(probabilities\): input: elements must lie in \[0, 1\], got 1\.5/],
    ['malformed tensor', { ...ok, tensors: { logits: { a: 1 }, mask } }, 400, 'INVALID_TENSOR', /^tensors\.logits\.a: unknown field; a typed tensor has dtype, shape and data/],
    ['tensor data that does not match its shape', { ...ok, tensors: { logits: { dtype: 'float32', shape: [1, 1, 2, 2], data: [1, 2, 3] }, mask } }, 400, 'INVALID_TENSOR', /^tensors\.logits\.data: shape \[1,1,2,2\] needs 4 elements, got 3/],
    ['MAX_ELEMENTS', { tensors: { x: new Array(65).fill(0.5), y: new Array(65).fill(1) }, terms: [{ loss: 'mse', args: { input: 'x', target: 'y' } }] }, 400, 'TOO_LARGE', /^terms\[0\] \(mse\): input \[65\]: needs 65 elements, more than the 64 one request may use \(MAX_ELEMENTS\)/],
    // each term alone fits (40 elements), together they do not: their graphs run as one
    ['MAX_ELEMENTS over the terms together', { tensors: { x: new Array(40).fill(0.5), y: new Array(40).fill(1) }, terms: [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'l1', args: { input: 'x', target: 'y' } }] },
      400, 'TOO_LARGE', /^terms: together need 80 elements \(terms\[0\] 40, terms\[1\] 40: each term's largest tensor\), more than the 64 one request may use \(MAX_ELEMENTS\); split the composite/],
    ['no terms', { ...ok, terms: [] }, 400, 'INVALID_REQUEST', /^terms: must NOT have fewer than 1 items/],
    [`more than ${MAX_TERMS} terms`, { ...ok, terms: new Array(MAX_TERMS + 1).fill(ok.terms[0]) }, 400, 'INVALID_REQUEST', new RegExp(`^terms: must NOT have more than ${MAX_TERMS} items`)],
    ['no tensors', { ...ok, tensors: {} }, 400, 'INVALID_REQUEST', /^tensors: must NOT have fewer than 1 properties/],
    ['missing terms', { tensors: ok.tensors }, 400, 'INVALID_REQUEST', /^terms: required field is missing/],
    ['unknown field', { ...ok, reduction: 'sum' }, 400, 'INVALID_REQUEST', /^reduction: unknown field/],
    ['unknown term field', withTerm(0, { mode: 'binary' } as Partial<Term>), 400, 'INVALID_REQUEST', /^terms\.0\.mode: unknown field/],
    ['weight not a number', withTerm(0, { weight: '1' as unknown as number }), 400, 'INVALID_REQUEST', /^terms\.0\.weight: must be number/],
    ['grad not boolean', { ...ok, grad: 'yes' }, 400, 'INVALID_REQUEST', /^grad: must be boolean/]
  ]
  for (const [label, body, status, code, message] of cases) {
    const r = await postLosses(app, body)
    t.equal(r.status, status, `${label}: status`)
    t.equal(r.body.code, code, `${label}: code`)
    t.match(r.body.message, message, `${label}: message`)
  }
  const after = await postLosses(app, ok)
  t.equal(after.status, 200, 'the service still answers')
})

t.test('the OpenAPI example works and gives its documented answer; the generated client calls it', async t => {
  const app = await build(t)
  const request = CompositeRequest.examples[0]
  const expected = CompositeResponse.examples[0]
  const r = await postLosses(app, request)
  t.equal(r.status, 200)
  t.equal(mismatch([r.body.total], [expected.total], 0, 1e-4), undefined, 'total as documented')
  t.equal(mismatch(r.body.terms.map((x: { value: number }) => x.value), expected.terms.map((x: { value: number }) => x.value), 0, 1e-4), undefined, 'term values as documented')
  t.equal(mismatch(fromForm(r.body.grad.logits).data, fromForm(expected.grad.logits).data, 0, 1e-4), undefined, 'gradient as documented')

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  const viaClient = await clientComposite(connect(`http://127.0.0.1:${address.port}`))
  t.equal(mismatch([viaClient.total], [r.body.total], 1e-6, 0), undefined, 'examples/client: the same total')
  t.equal(mismatch(viaClient.grad, fromForm(r.body.grad.logits).data, 1e-6, 1e-7), undefined, 'examples/client: the same gradient')
})

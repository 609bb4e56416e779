/**
 * Model `composite`: `POST /losses` over the Open Inference Protocol. The composite PyTorch
 * fixtures through V2 JSON and V2 binary answer what `POST /losses` answers (and PyTorch);
 * outputs, forms and dtypes; every error names the parameter, input, output or term at fault;
 * metadata and readiness.
 */
import fs from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import path from 'node:path'
import { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { LOSSES } from '../../../src/losses'
import { v2Models } from '../../../src/protocols/v2/models'
import { V2InferenceRequest } from '../../../schemas/v2'
import { build } from '../../helpers/app'
import { type Case, COMPOSITE_CASES, type Term } from '../../helpers/composite-fixtures'
import { type Flat, fromForm, mismatch, tolerance } from '../../helpers/tensors'
import { grpcApp, outputsOf, params, rawInputs, typedInput } from './grpc'
import { binaryBody, bytesOf, DATATYPE, inferBinary, inferJson, jsonInput, NO_SHEDDING, readResponse } from './v2'

// a case limited to nested arrays uses one tensor as floats and as class indices, which only a
// value without a dtype can be: a V2 input has one datatype
const all = COMPOSITE_CASES
const cases = all.filter(c => c.forms === undefined || c.forms.includes('flat'))

/** The documented output name of term `i`: its name, else `term<i>_<loss>`. */
const termOutput = (term: Term, i: number): string => term.name ?? `term${i}_${term.loss}`
const dtypeOf = (c: Case): Flat['dtype'] => Object.values(c.args).some(a => a.dtype === 'float64') ? 'float64' : 'float32'

// the losses the fixtures and the tests below use
const used = new Set([...cases.flatMap(c => c.options.terms.map(term => term.loss)), 'mse', 'l1'])
let app: FastifyInstance
t.before(async () => { app = await build(t, NO_SHEDDING, { losses: LOSSES.filter(d => used.has(d.name)) }) })

async function postLosses (body: unknown): Promise<{ status: number, body: any }> {
  const r = await app.inject({ method: 'POST', url: '/losses', payload: body as object })
  return { status: r.statusCode, body: r.json() }
}

t.test(`${cases.length} PyTorch fixtures through V2 JSON and V2 binary: the values and gradients of POST /losses`, async t => {
  t.equal(cases.length, all.length - 1, 'every fixture but the nested-only one')
  for (const c of cases) {
    const dtype = dtypeOf(c)
    const { rtol, atol } = tolerance(dtype)
    const reference = await postLosses({ tensors: c.args, terms: c.options.terms, grad: true })
    t.equal(reference.status, 200, `${c.name}: POST /losses answers`)
    const terms = JSON.stringify(c.options.terms)
    const inputs = Object.entries(c.args).map(([name, a]) => ({ name, t: a }))
    const answers = {
      json: await inferJson(app, 'composite', { id: `${c.name}-json`, parameters: { terms, grad: true }, inputs: inputs.map(i => jsonInput(i.name, i.t)) }),
      binary: await inferBinary(app, 'composite', { id: `${c.name}-binary`, parameters: { terms, grad: true, binary_data_output: true }, inputs })
    }
    for (const [form, r] of Object.entries(answers)) {
      const label = `${c.name} [${form}]`
      if (r.statusCode !== 200) { t.fail(`${label}: status ${r.statusCode}: ${r.body}`); continue }
      const { json, outputs } = readResponse(r)
      t.same([json.model_name, json.model_version, json.id], ['composite', '1', `${c.name}-${form}`], `${label}: model, version and id`)
      const grads = Object.keys(c.expected.grad)
      t.same([...outputs.keys()], ['total', ...c.options.terms.map(termOutput), ...grads.map(n => `grad_${n}`)], `${label}: total, one output per term, the gradients in the order of inputs`)
      for (const o of outputs.values()) {
        t.equal(o.datatype, DATATYPE[dtype], `${label}: ${o.name} is ${DATATYPE[dtype]}`)
        t.equal(o.binary, form === 'binary', `${label}: ${o.name} as ${form}`)
      }

      const total = outputs.get('total')!
      t.same(total.shape, [], `${label}: total is 0-d`)
      t.equal(mismatch(total.data, [reference.body.total], rtol, atol), undefined, `${label}: total as POST /losses`)
      t.equal(mismatch(total.data, fromForm(c.expected.loss).data, rtol, atol), undefined, `${label}: total as PyTorch`)
      c.options.terms.forEach((term, i) => {
        const got = outputs.get(termOutput(term, i))!
        t.same(got.shape, c.term_values[i].shape, `${label}: terms[${i}] shape`)
        t.equal(mismatch(got.data, fromForm(reference.body.terms[i].value).data, rtol, atol), undefined, `${label}: terms[${i}] as POST /losses`)
        t.equal(mismatch(got.data, fromForm(c.term_values[i]).data, rtol, atol), undefined, `${label}: terms[${i}] as PyTorch`)
      })
      for (const [name, g] of Object.entries(c.expected.grad)) {
        const got = outputs.get(`grad_${name}`)!
        t.same(got.shape, g.shape, `${label}: grad_${name} shape`)
        t.equal(mismatch(got.data, fromForm(reference.body.grad[name]).data, rtol, atol), undefined, `${label}: grad_${name} as POST /losses`)
        t.equal(mismatch(got.data, fromForm(g).data, rtol, atol), undefined, `${label}: grad_${name} as PyTorch`)
      }
    }
  }
})

// hand-computed below: mse(x, y) = mean(0.25, 1, 0.25) = 0.5, l1(x, y) = mean(0.5, 1, 0.5) = 2/3
const x: Flat = { dtype: 'float32', shape: [3], data: [0.5, -1, 2] }
const y: Flat = { dtype: 'float32', shape: [3], data: [1, 0, 1.5] }
const mseL1 = [{ loss: 'mse', args: { input: 'x', target: 'y' } }, { loss: 'l1', weight: 0.5, args: { input: 'x', target: 'y' }, name: 'l1' }]
const request = (extra: Record<string, unknown> = {}, terms: unknown = mseL1, inputs = [jsonInput('x', x), jsonInput('y', y)]): Record<string, unknown> => ({
  ...extra, parameters: { terms: JSON.stringify(terms), ...(extra.parameters as object) }, inputs
})

t.test('outputs: all by default; those asked for, in their order and form; a gradient output turns grad on', async t => {
  const plain = readResponse(await inferJson(app, 'composite', request()))
  t.same([...plain.outputs.keys()], ['total', 'term0_mse', 'l1'], 'no grad: total and the terms')
  t.equal(mismatch(plain.outputs.get('total')!.data, [0.5 + 0.5 * 2 / 3], 1e-6, 1e-7), undefined, 'total = mse + 0.5 l1')
  t.equal(mismatch(plain.outputs.get('l1')!.data, [2 / 3], 1e-6, 1e-7), undefined, 'the term\'s value, unweighted')

  const r = await inferJson(app, 'composite', request({ outputs: [{ name: 'grad_x', parameters: { binary_data: true } }, { name: 'l1' }] }))
  t.equal(r.statusCode, 200, r.body)
  t.match(r.headers['content-type'], /^application\/octet-stream/, 'a binary output: the binary form')
  const picked = readResponse(r).outputs
  t.same([...picked.keys()], ['grad_x', 'l1'])
  t.ok(picked.get('grad_x')?.binary)
  t.notOk(picked.get('l1')?.binary)
  // d/dx [mean((x - y)^2) + 0.5 mean|x - y|] = 2 (x - y) / 3 + 0.5 sign(x - y) / 3
  t.equal(mismatch(picked.get('grad_x')!.data, [(-1 - 0.5) / 3, (-2 - 0.5) / 3, (1 + 0.5) / 3], 1e-6, 1e-7), undefined, 'grad x by hand')
})

t.test('the order of inputs orders the gradients; FP64 makes every output FP64; a reduction none term has weight 0', async t => {
  const a: Flat = { dtype: 'float64', shape: [3], data: x.data }
  const terms = [
    { loss: 'mse', args: { input: 'a', target: 'b' } },
    { loss: 'l1', args: { input: 'b', target: 'a' } },
    { loss: 'mse', weight: 0, args: { input: 'a', target: 'b' }, options: { reduction: 'none' }, name: 'per_element' }
  ]
  const r = await inferJson(app, 'composite', request({ parameters: { grad: true } }, terms, [jsonInput('b', y), jsonInput('a', a)]))
  t.equal(r.statusCode, 200, r.body)
  const out = readResponse(r).outputs
  t.same([...out.keys()], ['total', 'term0_mse', 'term1_l1', 'per_element', 'grad_b', 'grad_a'])
  t.same([...out.values()].map(o => o.datatype), new Array(6).fill('FP64'))
  t.same(out.get('per_element')?.shape, [3])
  t.same(out.get('per_element')?.data, [0.25, 1, 0.25], '(a - b)^2')
  t.equal(mismatch(out.get('total')!.data, [0.5 + 2 / 3], 1e-12, 0), undefined, 'the weight-0 term stays out of the total')
  // grad a: 2 (a - b) / 3 (l1 uses a as its target: no gradient); grad b: sign(b - a) / 3 (mse uses b as its target)
  t.equal(mismatch(out.get('grad_a')!.data, [-1 / 3, -2 / 3, 1 / 3], 1e-12, 0), undefined)
  t.equal(mismatch(out.get('grad_b')!.data, [1 / 3, 1 / 3, -1 / 3], 1e-12, 0), undefined)
})

t.test('one kernel run per request; timeout and priority are taken', async t => {
  const before = app.losshub.batcher.stats.runs
  const terms = [{ loss: 'mse', args: { input: 'toString', target: 'hasOwnProperty' } }]
  const r = await inferBinary(app, 'composite', { parameters: { terms: JSON.stringify(terms), grad: true, timeout: 60_000_000, priority: 1 }, inputs: [{ name: 'toString', t: x }, { name: 'hasOwnProperty', t: y }] })
  t.equal(r.statusCode, 200, r.body)
  t.equal(app.losshub.batcher.stats.runs - before, 1)
  const out = readResponse(r).outputs
  t.same([...out.keys()], ['total', 'term0_mse', 'grad_toString'])
  t.equal(mismatch(out.get('grad_toString')!.data, [-1 / 3, -2 / 3, 1 / 3], 1e-6, 1e-7), undefined)
})

t.test('inputs named __proto__, constructor or prototype are refused as POST /losses refuses such tensors; so are such keys in parameters.terms', async t => {
  const reserved = (place: string): string => `${place}: unknown field; __proto__, constructor and prototype are never field or tensor names`
  for (const name of ['__proto__', 'constructor', 'prototype']) {
    const terms = JSON.stringify([{ loss: 'mse', args: { input: name, target: 'y' } }])
    rejects(t, await inferJson(app, 'composite', { parameters: { terms }, inputs: [jsonInput(name, x), jsonInput('y', y)] }), 400, 'INVALID_REQUEST', reserved(`tensors.${name}`), `${name}: JSON`)
    rejects(t, await inferBinary(app, 'composite', { parameters: { terms }, inputs: [{ name, t: x }, { name: 'y', t: y }] }), 400, 'INVALID_REQUEST', reserved(`tensors.${name}`), `${name}: binary`)
    const keyed = `[{"loss": "mse", "args": {"input": "x", "target": "y"}, "options": {"${name}": 1}}]`
    rejects(t, await inferJson(app, 'composite', { parameters: { terms: keyed }, inputs: [jsonInput('x', x), jsonInput('y', y)] }), 400, 'INVALID_REQUEST', reserved(`parameters.terms[0].options.${name}`), `${name}: a key in terms`)
  }
})

t.test('the example of parameters.terms in the spec works', async t => {
  const terms = (V2InferenceRequest.properties.parameters.properties.terms.examples as string[])[0]
  const r = await inferJson(app, 'composite', { parameters: { terms }, inputs: [jsonInput('x', x), jsonInput('y', y)] })
  t.equal(r.statusCode, 200, r.body)
  t.equal(mismatch(readResponse(r).outputs.get('total')!.data, [0.5 + 0.5 * 2 / 3], 1e-6, 1e-7), undefined)
})

t.test('the README\'s example of model composite answers what the README shows', async t => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8')
  const blocks = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(m => ({ lang: m[1], body: m[2] }))
  const i = blocks.findIndex(b => b.lang === 'sh' && b.body.includes('/v2/models/composite/infer'))
  t.ok(i >= 0, 'the README has the example')
  t.equal(blocks[i + 1]?.lang, 'json', 'followed by its answer')
  // the body is the shell's single-quoted -d argument, taken literally
  const payload = /-d '([^']*)'/.exec(blocks[i].body)?.[1] ?? ''
  const r = await app.inject({ method: 'POST', url: '/v2/models/composite/infer', headers: { 'content-type': 'application/json' }, payload })
  t.equal(r.statusCode, 200, r.body)
  const shown = JSON.parse(blocks[i + 1].body)
  const got = r.json()
  t.same({ ...got, outputs: got.outputs.map((o: { data: number[] }) => ({ ...o, data: [] })) }, { ...shown, outputs: shown.outputs.map((o: { data: number[] }) => ({ ...o, data: [] })) }, 'the same outputs')
  for (const [k, o] of (shown.outputs as Array<{ name: string, data: number[] }>).entries()) {
    t.equal(mismatch(got.outputs[k].data, o.data, 1e-5, 1e-6), undefined, `${o.name} as shown`)
  }
})

/** Checks status, code and the whole `error` string (or a pattern of it); the body has nothing else. */
function rejects (t: Test, r: LightMyRequestResponse, status: number, code: string, error: string | RegExp, label: string): void {
  t.equal(r.statusCode, status, `${label}: status ${status}: ${r.body}`)
  const body = r.json()
  t.same(Object.keys(body).sort(), ['code', 'error'], `${label}: the protocol's error body`)
  t.equal(body.code, code, `${label}: code`)
  if (typeof error === 'string') t.equal(body.error, `${code}: ${error}`, `${label}: error`)
  else t.match(body.error, error, `${label}: error`)
}

t.test('every error names the parameter, input, output or term at fault', async t => {
  const logits: Flat = { dtype: 'float32', shape: [1, 1, 2, 2], data: [1.2, -0.5, 0.3, 2] }
  const mask: Flat = { dtype: 'float32', shape: [1, 1, 2, 2], data: [1, 0, 0, 1] }
  const seg = [{ loss: 'bce_with_logits', args: { input: 'logits', target: 'mask' } }, { loss: 'dice', name: 'dice', args: { input: 'logits', target: 'mask' }, options: { mode: 'binary' } }]
  const segInputs = [jsonInput('logits', logits), jsonInput('mask', mask)]
  const withTerm = (i: number, patch: Record<string, unknown>): unknown[] => seg.map((term, k) => k === i ? { ...term, ...patch } : term)
  const segRequest = (terms: unknown, extra: Record<string, unknown> = {}, inputs = segInputs): Record<string, unknown> => request(extra, terms, inputs)
  const known = "model composite takes terms, grad, binary_data_output, priority, timeout (a term's options go in its `options`)"
  const cases: Array<[string, unknown, number, string, string | RegExp]> = [
    ['no terms', { inputs: segInputs }, 400, 'INVALID_REQUEST', 'parameters.terms: required field is missing'],
    ['terms not JSON', { parameters: { terms: '[{loss: "mse"}]' }, inputs: segInputs }, 400, 'INVALID_JSON', /^INVALID_JSON: parameters\.terms: .*position 2/],
    ['terms not a string', { parameters: { terms: 3 }, inputs: segInputs }, 400, 'INVALID_REQUEST', 'parameters.terms: must be string'],
    ['terms not an array', segRequest(seg[0]), 400, 'INVALID_REQUEST', 'parameters.terms: must be array'],
    ['no term', segRequest([]), 400, 'INVALID_REQUEST', 'parameters.terms: must NOT have fewer than 1 items'],
    ['a term field of the wrong type', segRequest(withTerm(0, { weight: '1' })), 400, 'INVALID_REQUEST', 'parameters.terms.0.weight: must be number'],
    ['an unknown term field', segRequest(withTerm(1, { mode: 'binary' })), 400, 'INVALID_REQUEST', 'parameters.terms.1.mode: unknown field'],
    ['a loss option as a parameter', segRequest(seg, { parameters: { reduction: 'sum' } }), 400, 'INVALID_REQUEST', `parameters.reduction: unknown field; ${known}`],
    ['a sequence parameter', segRequest(seg, { parameters: { sequence_id: 1 } }), 400, 'INVALID_REQUEST', `parameters.sequence_id: unknown field; ${known}`],
    ['grad not boolean', segRequest(seg, { parameters: { grad: 'yes' } }), 400, 'INVALID_REQUEST', 'parameters.grad: must be boolean'],
    ['an argument bound to no input', segRequest(withTerm(0, { args: { input: 'logit', target: 'mask' } })), 400, 'INVALID_REQUEST',
      "terms[0] (bce_with_logits): args.input: no tensor named 'logit' (tensors: logits, mask)"],
    ['an input no term uses', segRequest(seg, {}, [...segInputs, jsonInput('spare', x)]), 400, 'INVALID_REQUEST', /^INVALID_REQUEST: tensors\.spare: no term uses it/],
    ['reduction none with a weight', segRequest(withTerm(0, { weight: 0.5, options: { reduction: 'none' } })), 400, 'INVALID_OPTION',
      /^INVALID_OPTION: terms\[0\] \(bce_with_logits\): weight: a term with reduction "none" .*\(weight is 0\.5\)$/],
    ['a bad option', segRequest(withTerm(1, { options: { mode: 'binry' } })), 400, 'INVALID_REQUEST', 'terms[1] (dice): mode: must be one of "binary", "multiclass", "multilabel"'],
    ['an unknown loss', segRequest(withTerm(1, { loss: 'dcie', name: undefined })), 404, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: terms\[1\] \(dcie\): loss 'dcie' is not served; known losses: /],
    ['shapes that do not fit', segRequest(seg, {}, [jsonInput('logits', logits), jsonInput('mask', { ...mask, shape: [4] })]), 400, 'SHAPE_MISMATCH', /^SHAPE_MISMATCH: terms\[0\] \(bce_with_logits\): .*target/],
    ['two terms of one name', segRequest(withTerm(0, { name: 'dice' })), 400, 'INVALID_REQUEST',
      "terms[1] (dice): name: 'dice' is also the output of terms[0]; each term's output needs a name of its own"],
    ['a name that is another term\'s default', segRequest(withTerm(1, { name: 'term0_bce_with_logits' })), 400, 'INVALID_REQUEST',
      "terms[1] (term0_bce_with_logits): name: 'term0_bce_with_logits' is also the output of terms[0]; each term's output needs a name of its own"],
    ['a term named total', segRequest(withTerm(0, { name: 'total' })), 400, 'INVALID_REQUEST',
      "terms[0] (total): name: 'total' is kept for the outputs total and grad_<input>; give the term another name"],
    ['a term named as a gradient', segRequest(withTerm(1, { name: 'grad_x' })), 400, 'INVALID_REQUEST',
      "terms[1] (grad_x): name: 'grad_x' is kept for the outputs total and grad_<input>; give the term another name"],
    ['an unknown output', segRequest(seg, { outputs: [{ name: 'loss' }] }), 400, 'INVALID_REQUEST',
      "outputs[0]: composite has no output 'loss' for these terms; its outputs are total, term0_bce_with_logits, dice"],
    ['the gradient of a target', segRequest(seg, { outputs: [{ name: 'grad_mask' }] }), 400, 'INVALID_REQUEST',
      "outputs[0]: composite has no output 'grad_mask' for these terms; its outputs are total, term0_bce_with_logits, dice, grad_logits"],
    ['a gradient output with grad false', segRequest(seg, { parameters: { grad: false }, outputs: [{ name: 'grad_logits' }] }), 400, 'INVALID_OPTION',
      "outputs[0]: 'grad_logits' is a gradient, but parameters.grad is false"],
    ['an output asked twice', segRequest(seg, { outputs: [{ name: 'dice' }, { name: 'dice' }] }), 400, 'INVALID_REQUEST', "outputs[1]: output 'dice' is asked for twice"],
    ['classification', segRequest(seg, { outputs: [{ name: 'dice', parameters: { classification: 2 } }] }), 400, 'INVALID_REQUEST',
      "outputs[0].parameters.classification: 'dice' holds a loss or a gradient, not class scores; only 0 (no classification) is accepted"],
    ['an input given twice', segRequest(seg, {}, [...segInputs, jsonInput('mask', mask)]), 400, 'INVALID_REQUEST', "inputs[2]: input 'mask' is given twice"],
    ['a datatype not served', segRequest(seg, {}, [{ ...jsonInput('logits', logits), datatype: 'FP16' }, segInputs[1]]), 400, 'INVALID_DTYPE',
      'inputs[0] (logits).datatype: expected one of FP32, FP64, INT32, INT64, got "FP16"'],
    ['model_name of another model', segRequest(seg, { model_name: 'dice' }), 400, 'INVALID_REQUEST', "model_name: 'dice' is not the model of the URL, 'composite'"]
  ]
  for (const [label, body, status, code, error] of cases) rejects(t, await inferJson(app, 'composite', body), status, code, error, label)

  // the binary form: a binary_data_size that does not match the shape
  const head = { parameters: { terms: JSON.stringify(seg) }, inputs: [{ name: 'logits', datatype: 'FP32', shape: [1, 1, 2, 2], parameters: { binary_data_size: 12 } }, jsonInput('mask', mask)] }
  const { payload, headers } = binaryBody(head, [bytesOf(logits).subarray(0, 12)])
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/composite/infer', headers, payload }), 400, 'INVALID_TENSOR',
    'inputs[0] (logits): binary_data_size is 12 bytes, but shape [1,1,2,2] of FP32 takes 16', 'binary size')
  t.equal((await inferJson(app, 'composite', segRequest(seg))).statusCode, 200, 'the service still answers')
})

t.test('metadata and readiness of model composite; it is listed among the models', async t => {
  const expected = { name: 'composite', versions: ['1'], platform: 'onnxruntime_onnx', inputs: [], outputs: [{ name: 'total', datatype: 'FP32', shape: [] }] }
  for (const url of ['/v2/models/composite', '/v2/models/composite/versions/1']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 200, url)
    t.same(r.json(), expected, url)
  }
  for (const url of ['/v2/models/composite/ready', '/v2/models/composite/versions/1/ready']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 200, url)
    t.same(r.json(), { name: 'composite', ready: true }, url)
  }
  rejects(t, await app.inject('/v2/models/composite/versions/2'), 404, 'NOT_FOUND', "model 'composite' has no version '2'; its only version is 1", 'version 2')
  rejects(t, await inferJson(app, 'compsite', { inputs: [] }), 404, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: model 'compsite' is not served; known models: .*\bmse\b.*, composite$/, 'unknown model')
})

t.test('over gRPC: the same model, with typed or raw contents, its metadata and its errors', async t => {
  const s = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => ['mse', 'l1'].includes(d.name)) })
  const parameters = params({ terms: JSON.stringify(mseL1), grad: true })
  const answers = {
    typed: await s.call('ModelInfer', { model_name: 'composite', id: 'g', parameters, inputs: [typedInput('x', x), typedInput('y', y)] }),
    raw: await s.call('ModelInfer', { model_name: 'composite', id: 'g', parameters, ...rawInputs([{ name: 'x', t: x }, { name: 'y', t: y }]) })
  }
  for (const [form, r] of Object.entries(answers)) {
    if (!r.ok) { t.fail(`${form}: ${r.error.details}`); continue }
    t.same([r.value.model_name, r.value.id], ['composite', 'g'], `${form}: model and id`)
    const out = outputsOf(r.value)
    t.same([...out.keys()], ['total', 'term0_mse', 'l1', 'grad_x'], `${form}: outputs`)
    t.equal(mismatch(out.get('total')!.data, [0.5 + 0.5 * 2 / 3], 1e-6, 1e-7), undefined, `${form}: total`)
    t.equal(mismatch(out.get('grad_x')!.data, [-0.5, -5 / 6, 0.5], 1e-6, 1e-7), undefined, `${form}: grad x`)
  }
  const metadata = await s.call('ModelMetadata', { name: 'composite' })
  t.ok(metadata.ok)
  if (metadata.ok) t.same([metadata.value.name, metadata.value.inputs, metadata.value.outputs.map((o: { name: string }) => o.name)], ['composite', [], ['total']])
  const bad = await s.call('ModelInfer', { model_name: 'composite', parameters: params({ terms: '[' }), inputs: [typedInput('x', x)] })
  t.notOk(bad.ok)
  if (!bad.ok) {
    t.equal(bad.error.code, grpc.status.INVALID_ARGUMENT)
    t.equal(bad.error.metadata['losshub-code'], 'INVALID_JSON')
    t.match(bad.error.details, /^INVALID_JSON: parameters\.terms: /)
  }
  // a tensor named as POST /losses and V2 REST refuse it
  const terms = params({ terms: JSON.stringify([{ loss: 'mse', args: { input: 'constructor', target: 'y' } }]) })
  for (const [form, r] of Object.entries({
    typed: await s.call('ModelInfer', { model_name: 'composite', parameters: terms, inputs: [typedInput('constructor', x), typedInput('y', y)] }),
    raw: await s.call('ModelInfer', { model_name: 'composite', parameters: terms, ...rawInputs([{ name: 'constructor', t: x }, { name: 'y', t: y }]) })
  })) {
    t.notOk(r.ok, form)
    if (!r.ok) {
      t.equal(r.error.code, grpc.status.INVALID_ARGUMENT, form)
      t.equal(r.error.metadata['losshub-code'], 'INVALID_REQUEST', form)
      t.equal(r.error.details, 'INVALID_REQUEST: tensors.constructor: unknown field; __proto__, constructor and prototype are never field or tensor names', form)
    }
  }
})

t.test('no loss is named composite, and a loss of that name could not be served beside the model', async t => {
  t.notOk(LOSSES.some(d => d.name === 'composite'), 'the registry has no loss named composite')
  const mse = LOSSES.find(d => d.name === 'mse')!
  const options = { batcher: app.losshub.batcher, requestTimeoutMs: 0 }
  t.same([...v2Models({ ...options, losses: [mse] }).keys()], ['composite'])
  t.throws(() => v2Models({ ...options, losses: [mse, { ...mse, name: 'composite' }] }), /the V2 model 'composite' has the name of a served loss/)
})

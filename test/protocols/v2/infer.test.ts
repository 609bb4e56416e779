/**
 * POST /v2/models/{model}/infer in the JSON and the binary form: values against PyTorch (or by
 * hand), dtypes, gradients, selected outputs, id, content types, batching with /loss.
 */
import { type FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp } from '../../../src/app'
import { LOSSES } from '../../../src/losses'
import { build, postLoss } from '../../helpers/app'
import { mismatch } from '../../helpers/tensors'
import { binaryBody, bytesOf, inferBinary, inferJson, NO_SHEDDING, readResponse } from './v2'

// F.cross_entropy(tensor([[1.,2],[1,3],[1,3]], requires_grad=True), tensor([0,1,1])) and its .grad
const CE_LOSS = 0.5223726
const CE_GRAD = [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343]
const ceInputs = (datatype = 'FP32'): unknown[] => [
  { name: 'input', datatype, shape: [3, 2], data: [1, 2, 1, 3, 1, 3] },
  { name: 'target', datatype: 'INT64', shape: [3], data: [0, 1, 1] }
]

// one app for the tests below, with the losses they call
let app: FastifyInstance
t.before(async () => { app = await build(t, NO_SHEDDING, { losses: LOSSES.filter(d => ['mse', 'huber', 'gaussian_nll', 'cross_entropy'].includes(d.name)) }) })

t.test('JSON form: cross_entropy with its gradient, id echoed', async t => {
  const r = await inferJson(app, 'cross_entropy', { id: 'abc-1', parameters: { grad: true }, inputs: ceInputs() })
  t.equal(r.statusCode, 200)
  t.match(r.headers['content-type'], /^application\/json/)
  t.equal(r.headers['inference-header-content-length'], undefined, 'no binary part')
  const body = r.json()
  t.same(Object.keys(body), ['model_name', 'model_version', 'id', 'outputs'])
  t.same([body.model_name, body.model_version, body.id], ['cross_entropy', '1', 'abc-1'])
  const [loss, grad] = body.outputs
  t.same([loss.name, loss.datatype, loss.shape], ['loss', 'FP32', []])
  t.notOk(mismatch(loss.data, [CE_LOSS], 1e-4, 1e-5), `loss ${loss.data}`)
  t.same([grad.name, grad.datatype, grad.shape], ['grad_input', 'FP32', [3, 2]])
  t.notOk(mismatch(grad.data, CE_GRAD, 1e-4, 1e-5), `grad ${grad.data}`)

  const noId = (await inferJson(app, 'cross_entropy', { inputs: ceInputs() })).json()
  t.notOk('id' in noId, 'no id asked, none answered')
  t.same(noId.outputs.map((o: { name: string }) => o.name), ['loss'], 'without grad: the loss only')
})

t.test('JSON form: nested data, the versioned route, FP64 and INT32', async t => {
  const nested = [
    { name: 'input', datatype: 'FP64', shape: [3, 2], data: [[1, 2], [1, 3], [1, 3]] },
    { name: 'target', datatype: 'INT32', shape: [3], data: [0, 1, 1] }
  ]
  const r = await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/versions/1/infer', payload: { inputs: nested } })
  t.equal(r.statusCode, 200, r.body)
  const [loss] = r.json().outputs
  t.equal(loss.datatype, 'FP64', 'an FP64 input makes the call float64')
  // float64: mean over rows of logsumexp(x) - x[t], evaluated here in double precision
  const lse = (a: number, b: number): number => Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)))
  const expected = (lse(1, 2) - 1 + 2 * (lse(1, 3) - 3)) / 3
  t.notOk(mismatch(loss.data, [expected], 1e-9, 1e-12), `${loss.data} vs ${expected}`)
})

t.test('parameters: options, reduction and grad as in /loss; grad_output as an input', async t => {
  // mse, reduction none: (x - t)^2; with grad_output g the gradient is g * 2 (x - t)
  const r = await inferJson(app, 'mse', {
    parameters: { reduction: 'none', grad: true },
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [3], data: [0.5, 1, -1] },
      { name: 'target', datatype: 'FP32', shape: [3], data: [0, -1, 1] },
      { name: 'grad_output', datatype: 'FP32', shape: [3], data: [1, 0.5, 1] }
    ]
  })
  t.equal(r.statusCode, 200, r.body)
  const out = readResponse(r).outputs
  t.same(out.get('loss')?.data, [0.25, 4, 4])
  t.same(out.get('grad_input')?.data, [1, 2, -4])

  // huber with delta 0.5: |d| <= delta: d^2 / 2, else delta (|d| - delta / 2); mean of [0.02, 0.625, 1.375]
  const h = await inferJson(app, 'huber', {
    parameters: { delta: 0.5 },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [3], data: [0.2, -1.5, 3] }, { name: 'target', datatype: 'FP32', shape: [3], data: [0, 0, 0] }]
  })
  t.notOk(mismatch(h.json().outputs[0].data, [(0.02 + 0.625 + 1.375) / 3], 1e-4, 1e-5), h.body)

  // the same call through /loss answers the same
  const viaLoss = await postLoss(app, 'huber', { input: [0.2, -1.5, 3], target: [0, 0, 0], delta: 0.5 })
  t.notOk(mismatch(h.json().outputs[0].data, [viaLoss.body.loss], 0, 0))
})

t.test('outputs: selected, in the order asked; a gradient asked for turns grad on', async t => {
  const inputs = [
    { name: 'input', datatype: 'FP32', shape: [2, 2], data: [0.5, 1, 2, -1] },
    { name: 'target', datatype: 'FP32', shape: [2, 2], data: [0, 1, 1, 1] },
    { name: 'var', datatype: 'FP32', shape: [2, 2], data: [1, 1, 1, 1] }
  ]
  const r = await inferJson(app, 'gaussian_nll', { inputs, outputs: [{ name: 'grad_var' }, { name: 'loss' }] })
  t.equal(r.statusCode, 200, r.body)
  t.same(r.json().outputs.map((o: { name: string }) => o.name), ['grad_var', 'loss'])
  // gaussian_nll with var 1: mean of 0.5 (x - t)^2 = (0.125 + 0 + 0.5 + 2) / 4
  t.notOk(mismatch(r.json().outputs[1].data, [2.625 / 4], 1e-4, 1e-5))
  // d/dvar of 0.5 (log v + d^2 / v) at v = 1, over the mean's 4: (1 - d^2) / 8
  t.notOk(mismatch(r.json().outputs[0].data, [0.75 / 8, 1 / 8, 0, -3 / 8], 1e-4, 1e-5), JSON.stringify(r.json().outputs[0].data))

  const one = await inferJson(app, 'gaussian_nll', { parameters: { grad: true }, inputs, outputs: [{ name: 'grad_input' }] })
  t.same(one.json().outputs.map((o: { name: string }) => o.name), ['grad_input'], 'only what is asked')

  // an empty list asks for nothing in particular: every output, as with no list (Triton reads it so)
  const empty = await inferJson(app, 'gaussian_nll', { parameters: { grad: true }, inputs, outputs: [] })
  const all = await inferJson(app, 'gaussian_nll', { parameters: { grad: true }, inputs })
  t.same(empty.json().outputs.map((o: { name: string }) => o.name), ['loss', 'grad_input', 'grad_var'], 'outputs: [] is every output')
  t.same(empty.json(), all.json(), 'as with no list')

  const off = await inferJson(app, 'gaussian_nll', { parameters: { grad: false }, inputs, outputs: [{ name: 'grad_input' }] })
  t.equal(off.statusCode, 400)
  t.same(off.json(), { error: "INVALID_OPTION: outputs[0]: 'grad_input' is a gradient, but parameters.grad is false", code: 'INVALID_OPTION' })
})

t.test('Triton\'s parameters are understood: binary_data_output, binary_data, classification 0, priority, timeout', async t => {
  const r = await inferJson(app, 'cross_entropy', {
    parameters: { grad: true, binary_data_output: true, priority: 1, timeout: 10_000_000 },
    inputs: ceInputs(),
    outputs: [{ name: 'loss', parameters: { binary_data: false, classification: 0 } }, { name: 'grad_input' }]
  })
  t.equal(r.statusCode, 200, r.body)
  t.equal(r.headers['content-type'], 'application/octet-stream')
  const { json, outputs } = readResponse(r)
  t.same(json.outputs[0].data !== undefined, true, 'binary_data false wins over binary_data_output')
  t.same(json.outputs[1].parameters, { binary_data_size: 24 }, 'grad_input: six float32')
  t.notOk(mismatch(outputs.get('loss')!.data, [CE_LOSS], 1e-4, 1e-5))
  t.notOk(mismatch(outputs.get('grad_input')!.data, CE_GRAD, 1e-4, 1e-5))
})

t.test('input and output parameters losshub has no use for are ignored, as Triton ignores them (MLServer sends content_type on every input)', async t => {
  const inputs = ceInputs().map(i => ({ ...(i as object), parameters: { content_type: 'np' } }))
  const r = await inferJson(app, 'cross_entropy', { parameters: { grad: true }, inputs, outputs: [{ name: 'loss', parameters: { content_type: 'np', note: 1 } }, { name: 'grad_input' }] })
  t.equal(r.statusCode, 200, r.body)
  t.notOk(mismatch(r.json().outputs[0].data, [CE_LOSS], 1e-4, 1e-5))
  t.notOk(mismatch(r.json().outputs[1].data, CE_GRAD, 1e-4, 1e-5))
  // request parameters stay the loss's options: an unknown one is still refused
  const unknown = await inferJson(app, 'cross_entropy', { parameters: { content_type: 'np' }, inputs: ceInputs() })
  t.equal(unknown.statusCode, 400)
  t.match(unknown.json().error, /^INVALID_REQUEST: parameters\.content_type: unknown/)
})

t.test('binary form: raw tensors in, raw tensors out, with no Content-Type (as tritonclient sends it)', async t => {
  const input = { dtype: 'float32' as const, shape: [3, 2], data: [1, 2, 1, 3, 1, 3] }
  const target = { dtype: 'int64' as const, shape: [3], data: [0, 1, 1] }
  const { payload, headers } = binaryBody({
    id: 'bin',
    parameters: { grad: true },
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } },
      { name: 'target', datatype: 'INT64', shape: [3], parameters: { binary_data_size: 24 } }
    ],
    outputs: [{ name: 'loss', parameters: { binary_data: true } }, { name: 'grad_input', parameters: { binary_data: true } }]
  }, [bytesOf(input), bytesOf(target)])
  t.notOk('content-type' in headers)
  const r = await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers, payload })
  t.equal(r.statusCode, 200, r.body)
  t.equal(r.headers['content-type'], 'application/octet-stream')
  const header = Number(r.headers['inference-header-content-length'])
  t.equal(r.rawPayload.length, header + 4 + 24, 'JSON header, then 4 bytes of loss and 24 of gradient')
  const json = JSON.parse(r.rawPayload.subarray(0, header).toString())
  t.same(json, {
    model_name: 'cross_entropy',
    model_version: '1',
    id: 'bin',
    outputs: [
      { name: 'loss', datatype: 'FP32', shape: [], parameters: { binary_data_size: 4 } },
      { name: 'grad_input', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: 24 } }
    ]
  })
  const floats = Array.from({ length: 7 }, (_, i) => r.rawPayload.readFloatLE(header + 4 * i))
  t.notOk(mismatch(floats, [CE_LOSS, ...CE_GRAD], 1e-4, 1e-5), `${floats}`)

  // the same bytes under the JSON-only /loss route: no Content-Type there is a 415
  const control = await app.inject({ method: 'POST', url: '/loss/cross_entropy', payload })
  t.equal(control.statusCode, 415, 'the request carried no Content-Type')

  for (const type of ['application/octet-stream', 'application/json']) {
    const typed = await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers: { ...headers, 'content-type': type }, payload })
    t.equal(typed.statusCode, 200, `Content-Type ${type}`)
  }
})

t.test('binary form: every datatype, inputs at any byte offset, JSON and binary inputs mixed', async t => {
  // the header lengths 1..8 bytes longer move the tensors off any alignment
  for (let pad = 0; pad < 8; pad++) {
    const r = await inferBinary(app, 'cross_entropy', {
      id: 'x'.repeat(pad),
      parameters: { grad: true, binary_data_output: true },
      inputs: [
        { name: 'input', t: { dtype: 'float64', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] } },
        { name: 'target', t: { dtype: 'int32', shape: [3], data: [0, 1, 1] } }
      ]
    })
    t.equal(r.statusCode, 200, r.body)
    const out = readResponse(r).outputs
    t.equal(out.get('loss')?.datatype, 'FP64')
    t.notOk(mismatch(out.get('loss')!.data, [CE_LOSS], 1e-6, 0), `offset ${pad}: ${out.get('loss')!.data}`)
    t.notOk(mismatch(out.get('grad_input')!.data, CE_GRAD, 1e-5, 1e-6))
  }
  // input as JSON, target (INT64) as bytes: the binary part holds only target's 24 bytes
  const target = { dtype: 'int64' as const, shape: [3], data: [0, 1, 1] }
  const { payload, headers } = binaryBody({
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] },
      { name: 'target', datatype: 'INT64', shape: [3], parameters: { binary_data_size: 24 } }
    ]
  }, [bytesOf(target)])
  const r = await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers, payload })
  t.equal(r.statusCode, 200, r.body)
  t.notOk(mismatch(r.json().outputs[0].data, [CE_LOSS], 1e-4, 1e-5), 'JSON answer: no binary output asked for')
})

t.test('non-finite values travel both ways', async t => {
  // mse, reduction none: (NaN - 0)^2 = NaN, (inf - 0)^2 = inf
  const r = await inferJson(app, 'mse', {
    parameters: { reduction: 'none' },
    inputs: [{ name: 'input', datatype: 'FP32', shape: [3], data: ['NaN', 'Infinity', 2] }, { name: 'target', datatype: 'FP32', shape: [3], data: [0, 0, 0] }]
  })
  t.same(r.json().outputs[0].data, ['NaN', 'Infinity', 4])
  const b = await inferBinary(app, 'mse', {
    parameters: { reduction: 'none', binary_data_output: true },
    inputs: [{ name: 'input', t: { dtype: 'float32', shape: [3], data: ['NaN', '-Infinity', 2] } }, { name: 'target', t: { dtype: 'float32', shape: [3], data: [0, 0, 0] } }]
  })
  const data = readResponse(b).outputs.get('loss')!.data
  t.ok(Number.isNaN(data[0]))
  t.same(data.slice(1), [Infinity, 4])
})

t.test('a V2 request and a /loss request for the same kernel share a batch; Triton\'s timeout shortens the deadline', async t => {
  // the batcher waits up to 2 s for a second request, and runs as soon as two are queued; the
  // warm-up's calls (reduction none) are another kernel, so the test need not wait for them
  const solo = await buildApp({ kernelWorkers: 0, maxEventLoopDelayMs: 0, batchMaxSize: 2, batchMaxDelayUs: 2_000_000 }, { logger: false, losses: LOSSES.filter(d => d.name === 'mse') })
  t.teardown(async () => { await solo.close() })
  const before = solo.losshub.batcher.stats.sizes.get(2) ?? 0
  const [v2, loss] = await Promise.all([
    inferJson(solo, 'mse', { parameters: { reduction: 'sum' }, inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3, 4] }, { name: 'target', datatype: 'FP32', shape: [2, 2], data: [0, 0, 0, 0] }] }),
    postLoss(solo, 'mse', { input: [[1, 1], [1, 1]], target: [[3, 3], [3, 3]], reduction: 'sum' })
  ])
  t.equal((solo.losshub.batcher.stats.sizes.get(2) ?? 0) - before, 1, 'one kernel run of two requests')
  t.same(v2.json().outputs[0].data, [30], 'V2: 1 + 4 + 9 + 16')
  t.equal(loss.body.loss, 16, '/loss: 4 * 2^2')

  // alone, a request would wait the 2 s for a partner: Triton's timeout (µs) ends it first
  const late = await inferJson(solo, 'mse', { parameters: { timeout: 1000 }, inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [1] }, { name: 'target', datatype: 'FP32', shape: [1], data: [0] }] })
  t.equal(late.statusCode, 504, late.body)
  t.equal(late.json().code, 'DEADLINE_EXCEEDED')
  t.match(late.json().error, /^DEADLINE_EXCEEDED: deadline exceeded: waited [0-9.]+ ms in the queue, past the request's timeout parameter \(1 ms\)/, 'the message names what set the deadline')
})

t.test('one request, one answer: the binary form\'s tensors wherever the JSON header ends, bit for bit the /loss answer', async t => {
  // ONNX Runtime answered this request a last bit differently when its tensors sat 8 bytes off a
  // 16-byte boundary (TENSOR_ALIGN): the header's length moved them in 8-byte steps
  const app = await build(t, NO_SHEDDING, { losses: LOSSES.filter(d => d.name === 'categorical_crossentropy') })
  const input = Buffer.from('euyUPXxTmz5D4Io9qlwOPqpcDj6qXA4+qlwOPtazzz54z9U9TVNuPWRPFz7Q+Zk9eM/VPXjP1T0=', 'base64')
  const target = Buffer.from('AAAAAAAAAAAAAAAAAACAPwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgD8=', 'base64')
  const tensor = (b: Buffer): object => ({ dtype: 'float32', shape: [2, 7], data: b.toString('base64') })
  const solo = await app.inject({ method: 'POST', url: '/loss/categorical_crossentropy', payload: { input: tensor(input), target: tensor(target), from_logits: false, grad: true } })
  t.equal(solo.statusCode, 200)
  const want = Buffer.concat([Buffer.from(solo.json().loss.data, 'base64'), Buffer.from(solo.json().grad.input.data, 'base64')]).toString('hex')
  const inputs = [input, target].map((b, i) => ({ name: i === 0 ? 'input' : 'target', datatype: 'FP32', shape: [2, 7], parameters: { binary_data_size: b.length } }))
  for (let pad = 0; pad < 16; pad++) {
    const header = Buffer.from(JSON.stringify({ inputs, parameters: { from_logits: false, grad: true, binary_data_output: true } }) + ' '.repeat(pad))
    const r = await app.inject({
      method: 'POST',
      url: '/v2/models/categorical_crossentropy/infer',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      payload: Buffer.concat([header, input, target])
    })
    t.equal(r.statusCode, 200, `header of ${header.length} bytes`)
    const tail = r.rawPayload.subarray(Number(r.headers['inference-header-content-length']))
    t.equal(tail.toString('hex'), want, `header of ${header.length} bytes: the loss and the gradient, bit for bit`)
  }
})

/**
 * The Open Inference Protocol over gRPC (inference.GRPCInferenceService) and grpc.health.v1,
 * through a client generated from proto/ at test time: metadata, readiness, inference with
 * typed and raw contents (values against PyTorch or by hand), parameters, selected outputs,
 * errors as gRPC status codes with losshub's code, deadlines, metrics.
 */
import http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import t, { type Test } from 'tap'
import { buildApp } from '../../../src/app'
import { MAX_MESSAGE } from '../../../src/errors'
import { LOSSES } from '../../../src/losses'
import { mismatch } from '../../helpers/tensors'
import { version } from '../../../package.json'
import { clients, grpcApp, type Outcome, outputsOf, params, rawInputs, typedInput } from './grpc'
import { framed } from './h2'
import { inferJson, NO_SHEDDING } from './v2'

// F.cross_entropy(tensor([[1.,2],[1,3],[1,3]], requires_grad=True), tensor([0,1,1])) and its .grad
const CE_LOSS = 0.5223726
const CE_GRAD = [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343]
const ceInput = { dtype: 'float32' as const, shape: [3, 2], data: [1, 2, 1, 3, 1, 3] }
const ceTarget = { dtype: 'int64' as const, shape: [3], data: [0, 1, 1] }
const ceTyped = [typedInput('input', ceInput), typedInput('target', ceTarget)]
const ceRaw = rawInputs([{ name: 'input', t: ceInput }, { name: 'target', t: ceTarget }])

const LOSS_NAMES = ['mse', 'huber', 'gaussian_nll', 'cross_entropy']
let s: Awaited<ReturnType<typeof grpcApp>>
t.before(async () => { s = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => LOSS_NAMES.includes(d.name)) }) })

/** The answer of a call that must succeed. */
function ok (t: Test, r: Outcome): any {
  if (!r.ok) t.fail(`${grpc.status[r.error.code]}: ${r.error.details}`)
  return r.ok ? r.value : undefined
}

/** Checks a failure: gRPC status, losshub's code in the metadata, and the whole details string (or a pattern of it). */
function fails (t: Test, r: Outcome, status: grpc.status, code: string, details: string | RegExp): void {
  if (r.ok) { t.fail(`expected ${grpc.status[status]}, got an answer`); return }
  t.equal(grpc.status[r.error.code], grpc.status[status], `status ${grpc.status[status]}: ${r.error.details}`)
  t.equal(r.error.metadata['losshub-code'], code, 'losshub\'s code in the trailing metadata')
  if (typeof details === 'string') t.equal(r.error.details, `${code}: ${details}`)
  else t.match(r.error.details, details)
}

t.test('ServerLive, ServerReady, ServerMetadata', async t => {
  t.same(ok(t, await s.call('ServerLive', {})), { live: true })
  t.same(ok(t, await s.call('ServerReady', {})), { ready: true })
  t.same(ok(t, await s.call('ServerMetadata', {})), { name: 'losshub', version, extensions: ['binary_tensor_data', 'parameters'] })
})

t.test('ModelMetadata: the REST metadata in the protocol\'s message; unknown models and versions are NOT_FOUND', async t => {
  for (const name of LOSS_NAMES) {
    const m = ok(t, await s.call('ModelMetadata', { name }))
    const rest = (await s.app.inject(`/v2/models/${name}`)).json()
    const tensors = (list: any[]): unknown[] => list.map(x => ({ name: x.name, datatype: x.datatype, shape: x.shape.map(Number) }))
    t.same({ name: m.name, versions: m.versions, platform: m.platform, inputs: tensors(m.inputs), outputs: tensors(m.outputs) }, rest, `${name}: as GET /v2/models/${name}`)
  }
  // cross_entropy: input [N,C] logits, target class indices [N], weight [C]; loss 0-d, the gradient w.r.t. input
  const ce = ok(t, await s.call('ModelMetadata', { name: 'cross_entropy', version: '1' }))
  t.same(ce.inputs.map((i: any) => [i.name, i.datatype, i.shape.map(Number)]), [['input', 'FP32', [-1, -1]], ['target', 'INT64', [-1]], ['weight', 'FP32', [-1]], ['grad_output', 'FP32', [-1]]])
  t.same(ce.outputs.map((o: any) => [o.name, o.datatype, o.shape.map(Number)]), [['loss', 'FP32', []], ['grad_input', 'FP32', [-1, -1]]])

  fails(t, await s.call('ModelMetadata', { name: 'crossentropy' }), grpc.status.NOT_FOUND, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: model 'crossentropy' is not served; known models: mse, huber, /)
  fails(t, await s.call('ModelMetadata', { name: 'mse', version: '2' }), grpc.status.NOT_FOUND, 'NOT_FOUND', "model 'mse' has no version '2'; its only version is 1")
  fails(t, await s.call('ModelReady', { name: 'crossentropy' }), grpc.status.NOT_FOUND, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: model 'crossentropy' is not served/)
})

t.test('readiness follows GET /readyz: ServerReady, ModelReady and the health service are false while draining', async t => {
  t.same(ok(t, await s.call('ModelReady', { name: 'mse' })), { ready: true })
  t.same(ok(t, await s.call('Check', { service: '' }, { service: 'health' })), { status: 'SERVING' })
  t.same(ok(t, await s.call('Check', { service: 'inference.GRPCInferenceService' }, { service: 'health' })), { status: 'SERVING' })
  const unknown = await s.call('Check', { service: 'no.such.Service' }, { service: 'health' })
  t.equal(unknown.ok ? undefined : unknown.error.code, grpc.status.NOT_FOUND, 'an unknown service is NOT_FOUND (grpc.health.v1)')
  t.equal(unknown.ok ? undefined : unknown.error.metadata['losshub-code'], 'NOT_FOUND', 'with losshub-code NOT_FOUND')
  // a 100,000-character name echoed whole made a status header past grpc-js's 64 KiB: no answer until the deadline
  const long = await s.call('Check', { service: 'x'.repeat(100000) }, { service: 'health', deadline: new Date(Date.now() + 10000) })
  t.equal(long.ok ? undefined : long.error.code, grpc.status.NOT_FOUND, 'a huge unknown name: NOT_FOUND all the same')
  t.match(long.ok ? undefined : long.error.details, /^unknown service 'x{150,}\.\.\. \(99\d{3} more characters\)'; known: "" \(the server\), /, 'the name cut, the known services still said')

  s.app.losshub.draining = true
  try {
    t.equal((await s.app.inject('/readyz')).statusCode, 503, 'the rule: /readyz fails while draining')
    t.same(ok(t, await s.call('ServerReady', {})), { ready: false })
    t.same(ok(t, await s.call('ModelReady', { name: 'mse', version: '1' })), { ready: false })
    t.same(ok(t, await s.call('ServerLive', {})), { live: true }, 'still live')
    t.same(ok(t, await s.call('Check', { service: '' }, { service: 'health' })), { status: 'NOT_SERVING' })
  } finally {
    s.app.losshub.draining = false
  }
  t.same(ok(t, await s.call('Check', { service: '' }, { service: 'health' })), { status: 'SERVING' }, 'serving again')
})

t.test('health Watch: the status now, then its change', async t => {
  const seen: string[] = []
  const stream = s.health.Watch({ service: '' })
  stream.on('error', () => {}) // the cancel below ends it with CANCELLED
  await new Promise<void>(resolve => {
    stream.on('data', (m: { status: string }) => {
      seen.push(m.status)
      if (seen.length === 1) s.app.losshub.draining = true
      else resolve()
    })
  })
  s.app.losshub.draining = false
  stream.cancel()
  t.same(seen, ['SERVING', 'NOT_SERVING'])
})

t.test('ModelInfer, typed contents: cross_entropy with its gradient, id echoed, typed outputs', async t => {
  const r = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', id: 'abc-1', parameters: params({ grad: true }), inputs: ceTyped }))
  t.same([r.model_name, r.model_version, r.id], ['cross_entropy', '1', 'abc-1'])
  t.same(r.raw_output_contents, [], 'typed in, typed out')
  const out = outputsOf(r)
  t.same([...out.keys()], ['loss', 'grad_input'])
  t.same([out.get('loss')?.datatype, out.get('loss')?.shape], ['FP32', []])
  t.notOk(mismatch(out.get('loss')!.data, [CE_LOSS], 1e-4, 1e-5), `loss ${out.get('loss')!.data}`)
  t.same([out.get('grad_input')?.datatype, out.get('grad_input')?.shape], ['FP32', [3, 2]])
  t.notOk(mismatch(out.get('grad_input')!.data, CE_GRAD, 1e-4, 1e-5))

  const plain = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', model_version: '1', inputs: ceTyped }))
  t.equal(plain.id, '', 'no id asked, none answered')
  t.same(plain.outputs.map((o: any) => o.name), ['loss'], 'without grad: the loss only')
})

t.test('ModelInfer, raw_input_contents: raw outputs back; binary_data_output chooses either way', async t => {
  const r = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ grad: true }), ...ceRaw }))
  t.equal(r.raw_output_contents.length, 2, 'raw in, raw out: one entry per output')
  t.same(r.raw_output_contents.map((b: Buffer) => b.length), [4, 24], 'float32 loss, six float32 gradients')
  t.equal(r.outputs[0].contents, null, 'no typed contents beside raw ones')
  const out = outputsOf(r)
  t.notOk(mismatch(out.get('loss')!.data, [CE_LOSS], 1e-4, 1e-5))
  t.notOk(mismatch(out.get('grad_input')!.data, CE_GRAD, 1e-4, 1e-5))

  const typed = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ grad: true, binary_data_output: false }), ...ceRaw }))
  t.same(typed.raw_output_contents, [], 'binary_data_output false: typed outputs')
  t.notOk(mismatch(outputsOf(typed).get('grad_input')!.data, CE_GRAD, 1e-4, 1e-5))
  const raw = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ binary_data_output: true }), inputs: ceTyped }))
  t.same(raw.raw_output_contents.map((b: Buffer) => b.length), [4], 'binary_data_output true: raw outputs')

  // every datatype raw, and int32 indices
  const r64 = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', ...rawInputs([{ name: 'input', t: { ...ceInput, dtype: 'float64' } }, { name: 'target', t: { ...ceTarget, dtype: 'int32' } }]) }))
  t.equal(r64.outputs[0].datatype, 'FP64')
  t.notOk(mismatch(outputsOf(r64).get('loss')!.data, [CE_LOSS], 1e-6, 0))
})

t.test('FP64: a float64 input makes the call float64, to double precision', async t => {
  const lse = (a: number, b: number): number => Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)))
  const expected = (lse(1, 2) - 1 + 2 * (lse(1, 3) - 3)) / 3
  const r = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', inputs: [typedInput('input', { ...ceInput, dtype: 'float64' }), typedInput('target', { ...ceTarget, dtype: 'int32' })] }))
  const loss = outputsOf(r).get('loss')!
  t.equal(loss.datatype, 'FP64')
  t.notOk(mismatch(loss.data, [expected], 1e-12, 1e-15), `${loss.data} vs ${expected}`)
})

t.test('parameters: bool, int64, uint64, double and string values reach the loss as in /loss', async t => {
  // int64: ignore_index 1 leaves row 0 of cross_entropy: logsumexp(1, 2) - 1 = log(1 + e)
  const ignored = ok(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ ignore_index: 1 }), inputs: ceTyped }))
  t.notOk(mismatch(outputsOf(ignored).get('loss')!.data, [Math.log1p(Math.E)], 1e-5, 1e-6), 'int64_param')
  // double: huber with delta 0.5: |d| <= delta: d^2 / 2, else delta (|d| - delta / 2); mean of [0.02, 0.625, 1.375]
  const huber = ok(t, await s.call('ModelInfer', {
    model_name: 'huber',
    parameters: params({ delta: 0.5 }),
    inputs: [typedInput('input', { dtype: 'float32', shape: [3], data: [0.2, -1.5, 3] }), typedInput('target', { dtype: 'float32', shape: [3], data: [0, 0, 0] })]
  }))
  t.notOk(mismatch(outputsOf(huber).get('loss')!.data, [(0.02 + 0.625 + 1.375) / 3], 1e-4, 1e-5), 'double_param')
  // string and bool: mse, reduction none, with grad_output g: loss (x - t)^2, gradient g * 2 (x - t)
  const mse = ok(t, await s.call('ModelInfer', {
    model_name: 'mse',
    // uint64: Triton's priority, accepted and ignored; int64: its timeout (µs), ample here
    parameters: { ...params({ reduction: 'none', grad: true, timeout: 10_000_000 }), priority: { uint64_param: 3 } },
    inputs: [
      typedInput('input', { dtype: 'float32', shape: [3], data: [0.5, 1, -1] }),
      typedInput('target', { dtype: 'float32', shape: [3], data: [0, -1, 1] }),
      typedInput('grad_output', { dtype: 'float32', shape: [3], data: [1, 0.5, 1] })
    ]
  }))
  const out = outputsOf(mse)
  t.same(out.get('loss')?.data, [0.25, 4, 4], 'string_param')
  t.same(out.get('grad_input')?.data, [1, 2, -4], 'bool_param, and grad_output as an input')

  // a value of the wrong type is refused by the loss's own schema, as over REST
  fails(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ ignore_index: 1.5 }), inputs: ceTyped }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', 'parameters.ignore_index: must be integer')
  fails(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: params({ reduction: 'avg' }), inputs: ceTyped }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', 'parameters.reduction: must be one of "none", "mean", "sum"')
  fails(t, await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: { grad: {} }, inputs: ceTyped }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    'parameters.grad: no value set (bool_param, int64_param, string_param, double_param or uint64_param)')
})

t.test('a parameter named __proto__, constructor or prototype is refused, on the request, an input or an output, as REST refuses it', async t => {
  // JSON.parse: a map whose own key is `__proto__`, as a decoder of the message gives it
  const reserved = (key: string): Record<string, object> => JSON.parse(`{${JSON.stringify(key)}: {"bool_param": true}}`)
  const refusal = (at: string): string => `${at}: unknown field; __proto__, constructor and prototype are never field or tensor names`
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    const request = await s.call('ModelInfer', { model_name: 'cross_entropy', parameters: reserved(key), inputs: ceTyped })
    fails(t, request, grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', refusal(`parameters.${key}`))
    const rest = await s.app.inject({
      method: 'POST',
      url: '/v2/models/cross_entropy/infer',
      headers: { 'content-type': 'application/json' },
      payload: `{"inputs":[{"name":"input","datatype":"FP32","shape":[3,2],"data":[1,2,1,3,1,3]},{"name":"target","datatype":"INT64","shape":[3],"data":[0,1,1]}],"parameters":{${JSON.stringify(key)}:true}}`
    })
    t.equal(request.ok ? undefined : request.error.details, rest.json().error, `${key}: REST's error string`)
    fails(t, await s.call('ModelInfer', { model_name: 'cross_entropy', inputs: [{ ...ceTyped[0], parameters: reserved(key) }, ceTyped[1]] }),
      grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', refusal(`inputs[0] (input).parameters.${key}`))
    fails(t, await s.call('ModelInfer', { model_name: 'cross_entropy', inputs: ceTyped, outputs: [{ name: 'loss', parameters: reserved(key) }] }),
      grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', refusal(`outputs[0].parameters.${key}`))
  }
})

t.test('selected outputs, in the order asked; asking for a gradient turns grad on', async t => {
  const inputs = [
    typedInput('input', { dtype: 'float32', shape: [2, 2], data: [0.5, 1, 2, -1] }),
    typedInput('target', { dtype: 'float32', shape: [2, 2], data: [0, 1, 1, 1] }),
    typedInput('var', { dtype: 'float32', shape: [2, 2], data: [1, 1, 1, 1] })
  ]
  const r = ok(t, await s.call('ModelInfer', { model_name: 'gaussian_nll', inputs, outputs: [{ name: 'grad_var' }, { name: 'loss' }] }))
  t.same(r.outputs.map((o: any) => o.name), ['grad_var', 'loss'])
  const out = outputsOf(r)
  // gaussian_nll with var 1: mean of 0.5 (x - t)^2; d/dvar of 0.5 (log v + d^2 / v) at v = 1, over the mean's 4: (1 - d^2) / 8
  t.notOk(mismatch(out.get('loss')!.data, [2.625 / 4], 1e-4, 1e-5))
  t.notOk(mismatch(out.get('grad_var')!.data, [0.75 / 8, 1 / 8, 0, -3 / 8], 1e-4, 1e-5))
  const one = ok(t, await s.call('ModelInfer', { model_name: 'gaussian_nll', parameters: params({ grad: true }), inputs, outputs: [{ name: 'grad_input' }] }))
  t.same(one.outputs.map((o: any) => o.name), ['grad_input'], 'only what is asked')
  fails(t, await s.call('ModelInfer', { model_name: 'gaussian_nll', parameters: params({ grad: false }), inputs, outputs: [{ name: 'grad_input' }] }),
    grpc.status.INVALID_ARGUMENT, 'INVALID_OPTION', "outputs[0]: 'grad_input' is a gradient, but parameters.grad is false")
  fails(t, await s.call('ModelInfer', { model_name: 'gaussian_nll', inputs, outputs: [{ name: 'total' }] }),
    grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', "outputs[0]: gaussian_nll has no output 'total'; its outputs are loss, grad_input, grad_var")
})

t.test('rejected requests: the gRPC status of the code, losshub\'s code and message (REST\'s error string)', async t => {
  const infer = async (request: object): Promise<Outcome> => await s.call('ModelInfer', { model_name: 'cross_entropy', ...request })
  fails(t, await s.call('ModelInfer', { model_name: 'crossentropy', inputs: ceTyped }), grpc.status.NOT_FOUND, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: model 'crossentropy' is not served; known models: /)
  fails(t, await infer({ model_version: '3', inputs: ceTyped }), grpc.status.NOT_FOUND, 'NOT_FOUND', "model 'cross_entropy' has no version '3'; its only version is 1")
  for (const datatype of ['FP16', 'BYTES', 'fp32']) {
    fails(t, await infer({ inputs: [{ ...ceTyped[0], datatype }, ceTyped[1]] }), grpc.status.INVALID_ARGUMENT, 'INVALID_DTYPE',
      `inputs[0] (input).datatype: expected one of FP32, FP64, INT32, INT64, got "${datatype}"`)
  }
  fails(t, await infer({ inputs: ceRaw.inputs, raw_input_contents: [ceRaw.raw_input_contents[0].subarray(4), ceRaw.raw_input_contents[1]] }), grpc.status.INVALID_ARGUMENT, 'INVALID_TENSOR',
    'inputs[0] (input): raw_input_contents[0] holds 20 bytes, but shape [3,2] of FP32 takes 24')
  fails(t, await infer({ inputs: ceRaw.inputs, raw_input_contents: [ceRaw.raw_input_contents[0], Buffer.concat([ceRaw.raw_input_contents[1], Buffer.alloc(8)])] }), grpc.status.INVALID_ARGUMENT, 'INVALID_TENSOR',
    'inputs[1] (target): raw_input_contents[1] holds 32 bytes, but shape [3] of INT64 takes 24')
  fails(t, await infer({ inputs: ceRaw.inputs, raw_input_contents: ceRaw.raw_input_contents.slice(0, 1) }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    'raw_input_contents: 1 entries for 2 inputs; give one per input, in the order of inputs')
  fails(t, await infer({ inputs: [ceTyped[0], ceRaw.inputs[1]], raw_input_contents: ceRaw.raw_input_contents }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    'inputs[0] (input): has contents, but raw_input_contents is given: send every input raw or none')
  fails(t, await infer({ inputs: [{ ...ceTyped[0], contents: { fp64_contents: [1, 2, 1, 3, 1, 3] } }, ceTyped[1]] }), grpc.status.INVALID_ARGUMENT, 'INVALID_TENSOR',
    'inputs[0] (input).contents: FP32 elements go in fp32_contents, got fp64_contents')
  fails(t, await infer({ inputs: [ceTyped[0], typedInput('target', { dtype: 'int64', shape: [4], data: [0, 1, 1, 0] })] }), grpc.status.INVALID_ARGUMENT, 'SHAPE_MISMATCH',
    "target: class indices for input [3,2] must have shape [3] (the input's shape without dim C), got [4]")
  fails(t, await infer({ inputs: [ceTyped[0], typedInput('target', { dtype: 'int64', shape: [3], data: [0, 1, 2] })] }), grpc.status.INVALID_ARGUMENT, 'INDEX_OUT_OF_RANGE',
    'target: class index 2 at flat position 2 is out of range [0, 2) (ignore_index is -100)')
  fails(t, await infer({ inputs: [{ ...ceTyped[0], shape: [-3, 2] }, ceTyped[1]] }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', 'inputs.0.shape.0: must be >= 0')
  fails(t, await infer({ inputs: [ceTyped[0], { ...ceTyped[1], name: 'labels' }] }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    "inputs[1]: cross_entropy has no input 'labels'; its inputs are input, target, weight, grad_output")
  // REST's binary-form parameters, and others losshub has no use for, are ignored, as Triton ignores them
  const ignored = await infer({
    inputs: [{ ...ceRaw.inputs[0], parameters: params({ binary_data_size: 24, content_type: 'np' }) }, ceRaw.inputs[1]],
    raw_input_contents: ceRaw.raw_input_contents,
    outputs: [{ name: 'loss', parameters: params({ binary_data: true }) }]
  })
  t.notOk(mismatch(outputsOf(ok(t, ignored)).get('loss')?.data ?? [], [CE_LOSS], 1e-4, 1e-5), 'served, the parameters ignored')
  // but Triton's shared memory is refused by name
  fails(t, await infer({ inputs: [{ ...ceRaw.inputs[0], parameters: params({ shared_memory_region: 'r' }) }, ceRaw.inputs[1]], raw_input_contents: ceRaw.raw_input_contents }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    /^INVALID_REQUEST: inputs\.0\.parameters\.shared_memory_region: Triton's shared-memory extension is not served; /)
  fails(t, await infer({ parameters: params({ sequence_id: 7 }), inputs: ceTyped }), grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST',
    'parameters.sequence_id: sequences are not supported: every loss is stateless')

  // the same requests over REST answer the same error strings
  const rest = await inferJson(s.app, 'cross_entropy', { inputs: [{ name: 'input', datatype: 'FP16', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] }, { name: 'target', datatype: 'INT64', shape: [3], data: [0, 1, 1] }] })
  const viaGrpc = await infer({ inputs: [{ ...ceTyped[0], datatype: 'FP16' }, ceTyped[1]] })
  t.equal(viaGrpc.ok ? undefined : viaGrpc.error.details, rest.json().error)
})

t.test('a message that does not decode is INVALID_ARGUMENT saying so, on every method and the health service (grpc-js alone answers INTERNAL)', async t => {
  const app = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => d.name === 'mse') })
  const session = http2.connect(`http://127.0.0.1:${app.port}`)
  t.teardown(() => session.close())
  /** One call with `message` as its bytes, framed by hand: the status, its message and losshub's code. */
  const send = async (path: string, message: Buffer): Promise<{ status?: string, details: string, code?: string }> => await new Promise(resolve => {
    const frame = framed(message)
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' })
    let last: http2.IncomingHttpHeaders = {}
    stream.on('response', h => { if (h['grpc-status'] !== undefined) last = h })
    stream.on('trailers', h => { last = h })
    stream.on('data', () => {})
    stream.on('close', () => resolve({ status: last['grpc-status'] as string | undefined, details: decodeURIComponent(String(last['grpc-message'] ?? '')), code: last['losshub-code'] as string | undefined }))
    stream.end(frame)
  })
  // field 1, length-delimited, with its length missing: no message of any type
  const broken = Buffer.from([0x0a])
  const methods = ['ServerLive', 'ServerReady', 'ModelReady', 'ServerMetadata', 'ModelMetadata', 'ModelInfer'].map(m => [`/inference.GRPCInferenceService/${m}`, m])
  for (const [path, m] of [...methods, ['/grpc.health.v1.Health/Check', 'Check'], ['/grpc.health.v1.Health/Watch', 'Watch']]) {
    const r = await send(path, broken)
    t.same([r.status, r.code], [String(grpc.status.INVALID_ARGUMENT), 'INVALID_REQUEST'], `${m}: INVALID_ARGUMENT, INVALID_REQUEST`)
    t.match(r.details, new RegExp(`^INVALID_REQUEST: request: not a ${m} request message of the \\.proto \\(.+\\)$`), r.details)
  }
  const text = (await app.app.inject('/metrics')).body
  t.match(text, /^losshub_requests_total\{protocol="grpc",loss="unknown",status="400"\} 1$/m, 'ModelInfer\'s counted as a 400')
  t.same((await send('/inference.GRPCInferenceService/ServerLive', Buffer.alloc(0))).status, String(grpc.status.OK), 'the connection serves on')
})

t.test('a status message that echoes a huge input is cut, so that it reaches the client and the calls behind it go on', async t => {
  const deadline = (): Date => new Date(Date.now() + 5000)
  const huge = await s.call('ModelInfer', { model_name: 'm'.repeat(100_000), inputs: [] }, { deadline: deadline() })
  t.equal(huge.ok ? undefined : huge.error.code, grpc.status.NOT_FOUND, 'NOT_FOUND arrives')
  const details = huge.ok ? '' : huge.error.details
  t.ok(details.length <= MAX_MESSAGE && details.length > MAX_MESSAGE - 40, `cut to MAX_MESSAGE characters, a note among them, ${details.length}`)
  t.match(details, /^UNKNOWN_LOSS: model 'm+\.\.\. \(\d+ more characters\)$/)
  const next = await s.call('ServerLive', {}, { deadline: deadline() })
  t.equal(next.ok, true, 'the next call on the channel is served')
})

t.test('limits: MAX_ELEMENTS is RESOURCE_EXHAUSTED; the largest message is BODY_LIMIT_MB', async t => {
  const small = await grpcApp(t, { ...NO_SHEDDING, maxElements: 4, bodyLimitMb: 0.001 }, { losses: LOSSES.filter(d => d.name === 'cross_entropy') })
  fails(t, await small.call('ModelInfer', { model_name: 'cross_entropy', inputs: ceTyped }), grpc.status.RESOURCE_EXHAUSTED, 'TOO_LARGE', /^TOO_LARGE: /)
  // 0.001 MiB: 1049 bytes; 2048 raw bytes make a larger message, refused by grpc-js before any handler (with the API's code)
  const big = await small.call('ModelInfer', { model_name: 'cross_entropy', ...rawInputs([{ name: 'input', t: { dtype: 'float32', shape: [256, 2], data: new Array(512).fill(0) } }, { name: 'target', t: { dtype: 'int64', shape: [256], data: new Array(256).fill(0) } }]) })
  t.equal(big.ok ? undefined : big.error.code, grpc.status.RESOURCE_EXHAUSTED)
  t.match(big.ok ? '' : big.error.details, /^PAYLOAD_TOO_LARGE: request: a message of \d+ bytes is more than the 1049 that BODY_LIMIT_MB allows$/)
  t.equal(big.ok ? undefined : big.error.metadata['losshub-code'], 'PAYLOAD_TOO_LARGE')
  // and the default limit (64 MiB) takes a [4096,1000] float32 tensor, past grpc-js's own default of 4 MiB
  const n = 4096 * 1000
  const input = Buffer.alloc(n * 4)
  const r = ok(t, await s.call('ModelInfer', { model_name: 'mse', parameters: params({ reduction: 'sum' }), inputs: [{ name: 'input', datatype: 'FP32', shape: [4096, 1000] }, { name: 'target', datatype: 'FP32', shape: [4096, 1000] }], raw_input_contents: [input, input] }))
  t.same(outputsOf(r).get('loss')?.data, [0], `a ${input.length}-byte tensor, twice`)
})

t.test('shutting down, overloaded and deadlines: UNAVAILABLE with a retry hint, DEADLINE_EXCEEDED; a cancelled call leaves the queue', async t => {
  s.app.losshub.refusing = true
  try {
    const r = await s.call('ModelInfer', { model_name: 'cross_entropy', inputs: ceTyped })
    fails(t, r, grpc.status.UNAVAILABLE, 'SHUTTING_DOWN', 'draining: this instance is shutting down; retry')
    t.equal(r.ok ? undefined : r.error.metadata['retry-after'], '1', 'retry after 1 s')
  } finally {
    s.app.losshub.refusing = false
  }

  // the batcher waits up to 1 s for a second request to batch with; the queue holds one
  const app = await buildApp({ kernelWorkers: 0, maxEventLoopDelayMs: 0, batchMaxSize: 2, batchMaxDelayUs: 1_000_000, queueMaxRequests: 1 }, { logger: false, losses: LOSSES.filter(d => d.name === 'mse') })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const c = clients(await app.losshub.grpc.listen(0, '127.0.0.1'))
  t.teardown(() => c.close())
  await app.losshub.warmed
  const mse = { model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [3] }), typedInput('target', { dtype: 'float32', shape: [1], data: [1] })] }

  // Triton's timeout (µs) shortens the deadline: alone, the request would wait the 1 s for a partner
  fails(t, await c.call('ModelInfer', { ...mse, parameters: params({ timeout: 1000 }) }), grpc.status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED', /^DEADLINE_EXCEEDED: deadline exceeded: waited [0-9.]+ ms in the queue/)
  // the client's own deadline: gRPC ends the call, and the request leaves the queue
  const late = await c.call('ModelInfer', mse, { deadline: new Date(Date.now() + 200) })
  t.equal(late.ok ? undefined : late.error.code, grpc.status.DEADLINE_EXCEEDED)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(app.losshub.batcher.queued, 0, 'nothing left in the queue')
  // one request queued (waiting for a partner), the next finds the queue full
  const first = c.call('ModelInfer', mse)
  await new Promise(resolve => setTimeout(resolve, 50))
  const full = await c.call('ModelInfer', mse)
  fails(t, full, grpc.status.UNAVAILABLE, 'OVERLOADED', 'overloaded: 1 requests are queued (QUEUE_MAX_REQUESTS); retry')
  t.equal(full.ok ? undefined : full.error.metadata['retry-after'], '1')
  t.same(outputsOf(ok(t, await first)).get('loss')?.data, [4], 'the queued one is answered: (3 - 1)^2')
})

t.test('a gRPC request and a /loss request for the same kernel share a batch', async t => {
  // the batcher waits up to 2 s for a second request, and runs as soon as two are queued
  const app = await buildApp({ kernelWorkers: 0, maxEventLoopDelayMs: 0, batchMaxSize: 2, batchMaxDelayUs: 2_000_000 }, { logger: false, losses: LOSSES.filter(d => d.name === 'mse') })
  t.teardown(async () => { await app.close() })
  await app.ready()
  const c = clients(await app.losshub.grpc.listen(0, '127.0.0.1'))
  t.teardown(() => c.close())
  const before = app.losshub.batcher.stats.sizes.get(2) ?? 0
  const [viaGrpc, viaLoss] = await Promise.all([
    c.call('ModelInfer', { model_name: 'mse', parameters: params({ reduction: 'sum' }), inputs: [typedInput('input', { dtype: 'float32', shape: [2, 2], data: [1, 2, 3, 4] }), typedInput('target', { dtype: 'float32', shape: [2, 2], data: [0, 0, 0, 0] })] }),
    app.inject({ method: 'POST', url: '/loss/mse', payload: { input: [[1, 1], [1, 1]], target: [[3, 3], [3, 3]], reduction: 'sum' } })
  ])
  t.equal((app.losshub.batcher.stats.sizes.get(2) ?? 0) - before, 1, 'one kernel run of two requests')
  t.same(outputsOf(ok(t, viaGrpc)).get('loss')?.data, [30], 'gRPC: 1 + 4 + 9 + 16')
  t.equal(viaLoss.json().loss, 16, '/loss: 4 * 2^2')
})

t.test('metrics: requests by protocol, loss and status; /loss, V2 REST and gRPC told apart', async t => {
  const app = await grpcApp(t, NO_SHEDDING, { losses: LOSSES.filter(d => d.name === 'cross_entropy') })
  for (let i = 0; i < 2; i++) ok(t, await app.call('ModelInfer', { model_name: 'cross_entropy', inputs: ceTyped }))
  await app.call('ModelInfer', { model_name: 'cross_entropy', inputs: [ceTyped[0]] })
  await app.call('ModelInfer', { model_name: 'nope', inputs: ceTyped })
  t.equal((await inferJson(app.app, 'cross_entropy', { inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] }, { name: 'target', datatype: 'INT64', shape: [3], data: [0, 1, 1] }] })).statusCode, 200)
  t.equal((await inferJson(app.app, 'nope', { inputs: [] })).statusCode, 404)
  t.equal((await app.app.inject({ method: 'POST', url: '/loss/cross_entropy', payload: { input: [[1, 2]], target: [0] } })).statusCode, 200)
  const text = (await app.app.inject('/metrics')).body
  const sample = (labels: string): number => Number(new RegExp(`^losshub_requests_total\\{${labels}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  t.equal(sample('protocol="grpc",loss="cross_entropy",status="200"'), 2)
  t.equal(sample('protocol="grpc",loss="cross_entropy",status="400"'), 1, 'a missing input: INVALID_REQUEST, 400')
  t.equal(sample('protocol="grpc",loss="unknown",status="404"'), 1, 'unknown models share one label')
  t.equal(sample('protocol="v2",loss="cross_entropy",status="200"'), 1)
  t.equal(sample('protocol="v2",loss="unknown",status="404"'), 1)
  t.equal(sample('protocol="loss",loss="cross_entropy",status="200"'), 1)
  t.match(text, /^losshub_request_duration_seconds_count\{protocol="grpc",loss="cross_entropy"\} 3$/m)
})

t.test('closing the app lets a call in progress finish, then refuses connections', async t => {
  const app = await buildApp({ kernelWorkers: 0, maxEventLoopDelayMs: 0, batchMaxSize: 2, batchMaxDelayUs: 300_000 }, { logger: false, losses: LOSSES.filter(d => d.name === 'mse') })
  await app.ready()
  const c = clients(await app.losshub.grpc.listen(0, '127.0.0.1'))
  t.teardown(() => c.close())
  await app.losshub.warmed
  const queued = c.call('ModelInfer', { model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [3] }), typedInput('target', { dtype: 'float32', shape: [1], data: [1] })] })
  await new Promise(resolve => setTimeout(resolve, 50))
  await app.close()
  t.same(outputsOf(ok(t, await queued)).get('loss')?.data, [4], 'answered before the server closed')
  const after = await c.call('ServerLive', {}, { deadline: new Date(Date.now() + 2000) })
  t.equal(after.ok ? undefined : after.error.code, grpc.status.UNAVAILABLE, 'nothing listens any more')
})

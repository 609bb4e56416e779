/**
 * Rejected V2 inference requests: the protocol's `{"error": "<code>: <message>"}` body with
 * losshub's code beside it, the HTTP status of the code, and a message naming what is wrong.
 */
import { gzipSync } from 'node:zlib'
import { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { LOSSES } from '../../../src/losses'
import { build } from '../../helpers/app'
import { binaryBody, bytesOf, inferJson, NO_SHEDDING } from './v2'

let app: FastifyInstance
t.before(async () => { app = await build(t, NO_SHEDDING, { losses: LOSSES.filter(d => ['mse', 'cross_entropy', 'dice'].includes(d.name)) }) })

const input = { name: 'input', datatype: 'FP32', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] }
const target = { name: 'target', datatype: 'INT64', shape: [3], data: [0, 1, 1] }
const f32 = (shape: number[], data: number[]): { dtype: 'float32', shape: number[], data: number[] } => ({ dtype: 'float32', shape, data })
const i64 = (shape: number[], data: number[]): { dtype: 'int64', shape: number[], data: number[] } => ({ dtype: 'int64', shape, data })

/** Checks status, code and the whole `error` string (or a pattern of it); the body has nothing else. */
function rejects (t: Test, r: LightMyRequestResponse, status: number, code: string, error: string | RegExp): void {
  t.equal(r.statusCode, status, `status ${status}: ${r.body}`)
  t.match(r.headers['content-type'], /^application\/json/)
  const body = r.json()
  t.same(Object.keys(body).sort(), ['code', 'error'], 'the protocol\'s error body, with the code')
  t.equal(body.code, code)
  if (typeof error === 'string') t.equal(body.error, `${code}: ${error}`)
  else t.match(body.error, error)
}

async function binary (header: unknown, tail: Buffer[], extra: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const { payload, headers } = binaryBody(header, tail)
  return await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers: { ...headers, ...extra }, payload })
}

t.test('unknown model: 404 listing the models', async t => {
  const r = await inferJson(app, 'crossentropy', { inputs: [input, target] })
  rejects(t, r, 404, 'UNKNOWN_LOSS', "model 'crossentropy' is not served; known models: mse, cross_entropy, dice, composite")
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/versions/3/infer', payload: { inputs: [] } }), 404, 'NOT_FOUND', "model 'mse' has no version '3'; its only version is 1")
  // before any check of the body, as POST /loss/{name} and gRPC's ModelInfer
  rejects(t, await inferJson(app, 'crossentropy', {}), 404, 'UNKNOWN_LOSS', /^UNKNOWN_LOSS: model 'crossentropy' is not served; /)
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/versions/3/infer', payload: { outputs: 'none' } }), 404, 'NOT_FOUND', "model 'mse' has no version '3'; its only version is 1")
})

t.test('losshub\'s own checks keep their codes and messages', async t => {
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { ...target, shape: [4], data: [0, 1, 1, 0] }] }), 400, 'SHAPE_MISMATCH',
    "target: class indices for input [3,2] must have shape [3] (the input's shape without dim C), got [4]")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { ...target, data: [0, 1, 2] }] }), 400, 'INDEX_OUT_OF_RANGE',
    'target: class index 2 at flat position 2 is out of range [0, 2) (ignore_index is -100)')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, datatype: 'INT64' }, target] }), 400, 'INVALID_DTYPE',
    'input: expected float32 or float64 elements, got int64')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data: [1, 2, 3] }, target] }), 400, 'INVALID_TENSOR',
    'input.data: shape [3,2] needs 6 elements, got 3')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data: [1, 2, 3, 4, 5, 'x'] }, target] }), 400, 'INVALID_TENSOR',
    'input.data[5]: expected a number or "NaN", "Infinity", "-Infinity", got "x"')
})

t.test('data the reader takes as numbers is checked as any other: count, integers, and an array at all', async t => {
  // regular nested data is flattened before its count is checked; its own shape need not be the input's
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data: [[1, 2], [1, 3]] }, target] }), 400, 'INVALID_TENSOR',
    'input.data: shape [3,2] needs 6 elements, got 4')
  const regrouped = await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data: [[1, 2, 1], [3, 1, 3]] }, target] })
  t.same([regrouped.statusCode, regrouped.json()], [200, (await inferJson(app, 'cross_entropy', { inputs: [input, target] })).json()], 'nested [2,3] for shape [3,2]: its elements in order')
  // ragged nesting is refused wherever the irregularity is, even when the count would fit
  const ragged: Array<[unknown[], string]> = [
    [[[1, 2], [1], [3, 1, 3]], 'data[1]: ragged nested arrays: expected length 2 at depth 1, got 1'],
    [[[1], 2, 1, 3, 1, 3], 'data[1]: ragged nested arrays: expected an array of length 1 at depth 1, got number'],
    [[1, 2, 1, 3, 1, [3]], 'data[5]: ragged nested arrays: expected a number at depth 1, got an array'],
    [[[1, 2], [1, 3], [1, [3]]], 'data[2][1]: ragged nested arrays: expected a number at depth 2, got an array'],
    [[[], [], [1, 2, 1, 3, 1, 3]], 'data[2]: ragged nested arrays: expected length 0 at depth 1, got 6']
  ]
  for (const [data, message] of ragged) {
    rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data }, target] }), 400, 'INVALID_TENSOR', `inputs[0] (input).${message}`)
  }
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { ...target, data: [[0], [1.5], [1]] }] }), 400, 'INVALID_TENSOR',
    'target.data[1]: int64 elements must be integers, got 1.5')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { ...target, datatype: 'INT32', data: [0, 2 ** 31, 1] }] }), 400, 'INVALID_TENSOR',
    'target.data[1]: 2147483648 does not fit int32')
  for (const data of [5, 'abc', { a: 1 }, null]) {
    rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, data }, target] }), 400, 'INVALID_REQUEST', 'inputs.0.data: must be array')
  }
})

t.test('datatypes other than FP32, FP64, INT32, INT64', async t => {
  for (const datatype of ['FP16', 'BF16', 'UINT8', 'BOOL', 'BYTES', 'fp32']) {
    rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, datatype }, target] }), 400, 'INVALID_DTYPE',
      `inputs[0] (input).datatype: expected one of FP32, FP64, INT32, INT64, got "${datatype}"`)
  }
})

t.test('parameters are checked by the loss\'s schema', async t => {
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { reduction: 'avg' }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.reduction: must be one of "none", "mean", "sum"')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { label_smoothing: 2 }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.label_smoothing: must be <= 1')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { ignore_index: 'none' }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.ignore_index: must be integer')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { grad: 'yes' }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.grad: must be boolean')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { smoothing: 0.1 }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.smoothing: unknown field')
  // keys that could reach a prototype are unknown fields too, named by their place and never assigned
  const reserved = 'unknown field; __proto__, constructor and prototype are never field or tensor names'
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { constructor: 1 }, inputs: [input, target] }), 400, 'INVALID_REQUEST', `parameters.constructor: ${reserved}`)
  rejects(t, await inferJson(app, 'cross_entropy', JSON.parse(`{"inputs": [${JSON.stringify(input)}, {"name": "target", "__proto__": {"datatype": "FP32"}}]}`)), 400, 'INVALID_REQUEST', `inputs[1].__proto__: ${reserved}`)
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target], prototype: 1 }), 400, 'INVALID_REQUEST', `prototype: ${reserved}`)
  rejects(t, await inferJson(app, 'dice', { inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.mode: required field is missing')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { target: 1 }, inputs: [input] }), 400, 'INVALID_REQUEST', "parameters.target: 'target' is a tensor: send it in inputs")
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { sequence_id: 7 }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.sequence_id: sequences are not supported: every loss is stateless')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { binary_data_output: 'yes' }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.binary_data_output: must be boolean')
  // a parameter is a scalar: an object or array is refused as one, whatever the loss's schema wants
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { grad: { on: true } }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.grad: must be string, number or boolean')
  rejects(t, await inferJson(app, 'cross_entropy', { parameters: { label_smoothing: [0.1] }, inputs: [input, target] }), 400, 'INVALID_REQUEST', 'parameters.label_smoothing: must be string, number or boolean')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, parameters: { content_type: {} } }, target] }), 400, 'INVALID_REQUEST', 'inputs.0.parameters.content_type: must be string, number or boolean')
  rejects(t, await inferJson(app, 'mse', { parameters: { reduction: 'mean' }, inputs: [{ ...input, name: 'input' }, { ...input, name: 'target' }, { name: 'grad_output', datatype: 'FP32', shape: [], data: [1] }] }), 400, 'INVALID_OPTION',
    'grad_output: only meaningful with grad: true')
})

t.test('inputs and outputs must be the model\'s', async t => {
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input] }), 400, 'INVALID_REQUEST', 'inputs.target: required field is missing')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target, { ...target, name: 'label' }] }), 400, 'INVALID_REQUEST',
    "inputs[2]: cross_entropy has no input 'label'; its inputs are input, target, weight, grad_output")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target, target] }), 400, 'INVALID_REQUEST', "inputs[2]: input 'target' is given twice")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { name: 'target', datatype: 'INT64', shape: [3] }] }), 400, 'INVALID_TENSOR',
    'inputs[1] (target): no data, and no parameters.binary_data_size')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target], outputs: [{ name: 'grad_target' }] }), 400, 'INVALID_REQUEST',
    "outputs[0]: cross_entropy has no output 'grad_target'; its outputs are loss, grad_input")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target], outputs: [{ name: 'loss' }, { name: 'loss' }] }), 400, 'INVALID_REQUEST', "outputs[1]: output 'loss' is asked for twice")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target], outputs: [{ name: 'loss', parameters: { classification: 2 } }] }), 400, 'INVALID_REQUEST',
    "outputs[0].parameters.classification: 'loss' holds a loss or a gradient, not class scores; only 0 (no classification) is accepted")
  // Triton's shared-memory extension is refused by name, on inputs and outputs
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, target], outputs: [{ name: 'loss', parameters: { shared_memory_region: 'r' } }] }), 400, 'INVALID_REQUEST',
    'outputs.0.parameters.shared_memory_region: Triton\'s shared-memory extension is not served; tensors travel in the request (data, the binary form or raw_input_contents) and outputs come back in the response')
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [input, { name: 'target', datatype: 'INT64', shape: [3], parameters: { shared_memory_region: 'r', shared_memory_byte_size: 24 } }] }), 400, 'INVALID_REQUEST',
    /^INVALID_REQUEST: inputs\.1\.parameters\.shared_memory_region: Triton's shared-memory extension is not served; /)
  rejects(t, await inferJson(app, 'cross_entropy', { model_name: 'mse', inputs: [input, target] }), 400, 'INVALID_REQUEST', "model_name: 'mse' is not the model of the URL, 'cross_entropy'")
  rejects(t, await inferJson(app, 'cross_entropy', { inputs: [{ ...input, shape: [3, -2] }, target] }), 400, 'INVALID_REQUEST', 'inputs.0.shape.1: must be >= 0')
  // a /loss body sent to V2
  rejects(t, await inferJson(app, 'cross_entropy', { input: [[1, 2]], target: [0] }), 400, 'INVALID_REQUEST', 'inputs: required field is missing')
})

t.test('bodies: malformed JSON, empty, other content types, over the limit', async t => {
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': 'application/json' }, payload: '{"inputs": [' }), 400, 'INVALID_JSON', /^INVALID_JSON: body: /)
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer' }), 400, 'INVALID_REQUEST', 'body: must be a JSON object')
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': 'text/plain' }, payload: '{}' }), 415, 'UNSUPPORTED_MEDIA_TYPE',
    'content-type: expected application/json, application/octet-stream or none (or application/x-www-form-urlencoded, curl -d\'s, read as JSON), got "text/plain"')
  // curl -d's type, as Triton's examples send it: read as JSON
  const curlD = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [3] }, { name: 'target', datatype: 'FP32', shape: [1], data: [1] }] }) })
  t.same([curlD.statusCode, curlD.json().outputs?.[0].data], [200, [4]], 'application/x-www-form-urlencoded is read as JSON')
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1' }), 400, 'INVALID_JSON', /^INVALID_JSON: body: /)
  // a type that only begins like a welcome one is another type
  for (const type of ['application/json-seq', 'application/jsonx', 'application/octet-streams']) {
    rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': type }, payload: '{}' }), 415, 'UNSUPPORTED_MEDIA_TYPE', new RegExp(`got "${type}"$`))
  }
  const withCharset = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: { inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [2] }, { name: 'target', datatype: 'FP32', shape: [1], data: [0] }] } })
  t.equal(withCharset.statusCode, 200, 'application/json with parameters is JSON')
  const emptyType = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-type': '' }, payload: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [2] }, { name: 'target', datatype: 'FP32', shape: [1], data: [0] }] }) })
  t.same([emptyType.statusCode, emptyType.json().outputs?.[0].data], [200, [4]], 'an empty Content-Type is taken as none')

  // compressed bodies are refused app-wide (tritonclient compresses only when asked to)
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/mse/infer', headers: { 'content-encoding': 'gzip' }, payload: gzipSync('{}') }), 415, 'UNSUPPORTED_MEDIA_TYPE',
    /^UNSUPPORTED_MEDIA_TYPE: content-encoding: "gzip" /)

  const small = await build(t, { ...NO_SHEDDING, bodyLimitMb: 0.001 }, { losses: LOSSES.filter(d => d.name === 'mse') })
  const big = bytesOf(f32([300], new Array(300).fill(1)))
  const { payload, headers } = binaryBody({ inputs: [{ name: 'input', datatype: 'FP32', shape: [300], parameters: { binary_data_size: 1200 } }] }, [big])
  rejects(t, await small.inject({ method: 'POST', url: '/v2/models/mse/infer', headers, payload }), 413, 'PAYLOAD_TOO_LARGE', 'body: larger than the configured limit (BODY_LIMIT_MB)')
})

t.test('binary form: a truncated or oversized payload is a clear 400', async t => {
  const x = bytesOf(f32([3, 2], [1, 2, 1, 3, 1, 3]))
  const y = bytesOf(i64([3], [0, 1, 1]))
  const header = (sizes: [number, number]): unknown => ({
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [3, 2], parameters: { binary_data_size: sizes[0] } },
      { name: 'target', datatype: 'INT64', shape: [3], parameters: { binary_data_size: sizes[1] } }
    ]
  })
  t.equal((await binary(header([24, 24]), [x, y])).statusCode, 200, 'the intact request passes')

  rejects(t, await binary(header([24, 24]), [x, y.subarray(0, 20)]), 400, 'INVALID_TENSOR',
    'inputs[1] (target): binary_data_size 24 runs past the end of the body: 20 bytes remain after the JSON header and the binary inputs before it')
  rejects(t, await binary(header([24, 24]), [x.subarray(0, 10)]), 400, 'INVALID_TENSOR',
    'inputs[0] (input): binary_data_size 24 runs past the end of the body: 10 bytes remain after the JSON header')
  rejects(t, await binary(header([24, 24]), [x, y, Buffer.alloc(3)]), 400, 'INVALID_TENSOR',
    "body: 3 bytes follow the JSON header and the binary inputs (48 bytes); each binary input's parameters.binary_data_size must count all of its bytes")
  // a size that does not match the shape (here: more than the body holds)
  rejects(t, await binary(header([24, 800]), [x, y]), 400, 'INVALID_TENSOR', 'inputs[1] (target): binary_data_size is 800 bytes, but shape [3] of INT64 takes 24')
  rejects(t, await binary(header([20, 24]), [x.subarray(0, 20), y]), 400, 'INVALID_TENSOR', 'inputs[0] (input): binary_data_size is 20 bytes, but shape [3,2] of FP32 takes 24')

  // the header length itself
  const { payload, headers } = binaryBody(header([24, 24]), [x, y])
  const post = async (length: string): Promise<LightMyRequestResponse> => await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers: { ...headers, 'inference-header-content-length': length }, payload })
  rejects(t, await post(String(payload.length + 1)), 400, 'INVALID_REQUEST', `Inference-Header-Content-Length: ${payload.length + 1} is more than the ${payload.length} bytes of the body`)
  // a length past any double is said as sent, not as Infinity
  rejects(t, await post('9'.repeat(400)), 400, 'INVALID_REQUEST', `Inference-Header-Content-Length: ${'9'.repeat(400)} is more than the ${payload.length} bytes of the body`)
  rejects(t, await post('12abc'), 400, 'INVALID_REQUEST', 'Inference-Header-Content-Length: expected the byte length of the JSON header, got "12abc"')
  rejects(t, await post('0'), 400, 'INVALID_REQUEST', 'Inference-Header-Content-Length: 0 leaves no JSON header; it is the byte length of the JSON that starts the body')
  rejects(t, await post(String(Number(headers['inference-header-content-length']) - 2)), 400, 'INVALID_JSON',
    /^INVALID_JSON: body: .*; the JSON header is read as the first \d+ bytes \(Inference-Header-Content-Length\): is that its byte length\?$/)
  // the binary form without its header: read as JSON, the tensor bytes are what follows it
  const { 'inference-header-content-length': _, ...noLength } = headers
  rejects(t, await app.inject({ method: 'POST', url: '/v2/models/cross_entropy/infer', headers: noLength, payload }), 400, 'INVALID_JSON',
    /^INVALID_JSON: body: .* after JSON .*; a body in the binary form needs an Inference-Header-Content-Length header, the byte length of its JSON$/)

  // binary sizes without the binary form, and data given twice
  rejects(t, await inferJson(app, 'cross_entropy', header([24, 24])), 400, 'INVALID_REQUEST',
    'inputs[0] (input): parameters.binary_data_size needs the binary form: an Inference-Header-Content-Length header and the tensor bytes after the JSON')
  rejects(t, await binary({ inputs: [{ ...input, parameters: { binary_data_size: 24 } }, target] }, [x]), 400, 'INVALID_REQUEST', 'inputs[0] (input): has both data and parameters.binary_data_size')
})

t.test('errors keep Retry-After: shedding load answers 503 OVERLOADED', async t => {
  const shedding = await build(t, {}, { losses: LOSSES.filter(d => d.name === 'mse') })
  // what the pressure plugin decides is read through isUnderPressure(): force it
  shedding.isUnderPressure = () => true
  const r = await inferJson(shedding, 'mse', { inputs: [] })
  rejects(t, r, 503, 'OVERLOADED', 'overloaded: shedding load; retry')
  t.equal(r.headers['retry-after'], '1')
  t.equal((await shedding.inject('/v2/health/live')).statusCode, 200, 'probes still answer')
})

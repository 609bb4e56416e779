import { Type, type TObject, type TSchema } from '@sinclair/typebox'
import { fail } from '../../errors'
import { type Deadline } from '../../batching/batcher'
import { type LossDef } from '../../losses/loss'
import { DecodedTensor, type TensorData, type WireDType, fmtShape, sizeOf } from '../../tensor/tensor'
import { MAX_DIM, MAX_RANK, eachNested, nestedShape } from '../../tensor/decode'
import { lossRequestSchema } from '../../../schemas/loss-request'
import { type V2InferenceRequestJson, type V2RequestInputJson } from '../../../schemas/v2'
import { ELEMENT_BYTES, type V2DataType, typedView, wireDType } from './datatypes'

/** An output to return, and whether as binary data. */
export interface OutputChoice { name: string, binary: boolean }

/** A V2 inference request in losshub's terms: the body `POST /loss/{name}` would take, and what to answer. */
export interface Translated {
  body: Record<string, unknown>
  /** The outputs asked for, in order; undefined: every output, `binaryAll` deciding their form. */
  outputs?: OutputChoice[]
  binaryAll: boolean
  /** Triton's `timeout` parameter in microseconds (0 or absent: none). */
  timeoutUs?: number
}

/**
 * Tensor bytes that travel beside the request's JSON: REST's binary form (the body after the
 * JSON header, split by each input's `binary_data_size`) or gRPC's `raw_input_contents` (one
 * entry per input, in order).
 */
export type RawTensors = { tail: Buffer } | { contents: Buffer[] }

/** Checks (and fills the defaults of) a loss's options object; throws the API's 400 when it is invalid. */
export type OptionsCheck = (options: Record<string, unknown>) => void

/** Triton's request parameters: understood here, never passed on as loss options. */
const TRITON_PARAMETERS = new Set(['binary_data_output', 'priority', 'timeout'])
const SEQUENCE_PARAMETERS = new Set(['sequence_id', 'sequence_start', 'sequence_end'])

/** The names a loss takes tensors under: its arguments and grad_output. */
export function tensorNames (def: LossDef): ReadonlySet<string> {
  let names = TENSOR_NAMES.get(def)
  if (names === undefined) TENSOR_NAMES.set(def, names = new Set([...def.args.map(a => a.name), 'grad_output']))
  return names
}

/** tensorNames by loss, made once: it is asked for each input of each request. */
const TENSOR_NAMES = new WeakMap<LossDef, ReadonlySet<string>>()

/**
 * The loss's request schema (`lossRequestSchema`) with each tensor property reduced to "present":
 * V2 carries tensors in `inputs`, so the options object it checks holds `true` under each input's
 * name. The option schemas, the required list and additionalProperties are the loss's own.
 */
export function optionsSchema (def: LossDef): TObject {
  const full = lossRequestSchema(def)
  const tensors = tensorNames(def)
  const required = new Set(full.required ?? [])
  const props: Record<string, TSchema> = {}
  for (const [k, s] of Object.entries(full.properties)) props[k] = !tensors.has(k) ? s : required.has(k) ? Type.Literal(true) : Type.Optional(Type.Literal(true))
  return Type.Object(props, { additionalProperties: false })
}

/**
 * Translates a V2 inference request for `def` into the body of `POST /loss/{name}`: inputs
 * become tensor arguments (binary ones read from `raw`), parameters the options, checked by
 * `checkOptions` against the loss's own schema.
 */
export function translateRequest (def: LossDef, req: V2InferenceRequestJson, raw: RawTensors | undefined, checkOptions: OptionsCheck): Translated {
  if (req.model_name !== undefined && req.model_name !== def.name) fail('INVALID_REQUEST', `model_name: '${req.model_name}' is not the model of the URL, '${def.name}'`)
  if (req.model_version !== undefined && req.model_version !== '1') fail('INVALID_REQUEST', `model_version: '${req.model_version}' is not served; its only version is 1`)
  const params: Record<string, unknown> = req.parameters ?? {}
  const options = lossOptions(def, params)
  const binaryAll = params.binary_data_output === true
  const outputs = req.outputs === undefined ? undefined : chooseOutputs(def, req, binaryAll, options)
  const values = inputTensors(def, req, raw)
  const checked: Record<string, unknown> = { ...options }
  for (const name of Object.keys(values)) checked[name] = true
  checkOptions(checked)
  const timeout = params.timeout as number | undefined
  return { body: { ...checked, ...values }, outputs, binaryAll, timeoutUs: timeout !== undefined && timeout > 0 ? timeout : undefined }
}

/** The request parameters that are the loss's: all but Triton's own; sequences and tensors are refused. */
function lossOptions (def: LossDef, params: Record<string, unknown>): Record<string, unknown> {
  const tensors = tensorNames(def)
  const options: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(params)) {
    if (TRITON_PARAMETERS.has(k)) continue
    if (SEQUENCE_PARAMETERS.has(k)) fail('INVALID_REQUEST', `parameters.${k}: sequences are not supported: every loss is stateless`)
    if (tensors.has(k)) fail('INVALID_REQUEST', `parameters.${k}: '${k}' is a tensor: send it in inputs`)
    options[k] = v
  }
  return options
}

/**
 * Each input as a tensor argument `prepare()` decodes, by name, from its JSON data or its raw
 * bytes. Without `def`, inputs of any name are taken (the composite model's: its terms bind them).
 */
export function inputTensors (def: LossDef | undefined, req: V2InferenceRequestJson, raw: RawTensors | undefined): Record<string, unknown> {
  return raw !== undefined && 'contents' in raw ? rawInputValues(def, req, raw.contents) : inputValues(def, req, raw?.tail)
}

/**
 * Each input as a tensor argument `prepare()` decodes. Binary inputs take their
 * `binary_data_size` bytes of `tail` in order, which they must use up exactly.
 */
function inputValues (def: LossDef | undefined, req: V2InferenceRequestJson, tail: Buffer | undefined): Record<string, unknown> {
  // input names are the client's: a null prototype keeps `__proto__` or `constructor` plain keys
  const values: Record<string, unknown> = Object.create(null)
  let offset = 0
  req.inputs.forEach((input, i) => {
    const { where, dtype } = checkInput(def, input, i, values)
    const size = input.parameters?.binary_data_size
    if (size === undefined) {
      values[input.name] = jsonTensor(where, dtype, input)
      return
    }
    if (input.data !== undefined) fail('INVALID_REQUEST', `${where}: has both data and parameters.binary_data_size`)
    if (tail === undefined) fail('INVALID_REQUEST', `${where}: parameters.binary_data_size needs the binary form: an Inference-Header-Content-Length header and the tensor bytes after the JSON`)
    const datatype = input.datatype as V2DataType
    const n = sizeOf(input.shape)
    const want = n * ELEMENT_BYTES[datatype]
    if (size !== want) fail('INVALID_TENSOR', `${where}: binary_data_size is ${size} bytes, but shape ${fmtShape(input.shape)} of ${datatype} takes ${want}`)
    if (offset + size > tail.length) {
      fail('INVALID_TENSOR', `${where}: binary_data_size ${size} runs past the end of the body: ${tail.length - offset} bytes remain after the JSON header${offset > 0 ? ' and the binary inputs before it' : ''}`)
    }
    values[input.name] = preparable(where, dtype, input.shape, typedView(datatype, tail, offset, n))
    offset += size
  })
  if (tail !== undefined && offset !== tail.length) {
    fail('INVALID_TENSOR', `body: ${tail.length - offset} bytes follow the JSON header and the binary inputs (${offset} bytes); each binary input's parameters.binary_data_size must count all of its bytes`)
  }
  return values
}

/**
 * Each input as a tensor argument, its elements the `contents[i]` bytes of gRPC's
 * raw_input_contents: one entry per input, of exactly the size its shape takes.
 */
function rawInputValues (def: LossDef | undefined, req: V2InferenceRequestJson, contents: Buffer[]): Record<string, unknown> {
  if (contents.length !== req.inputs.length) {
    fail('INVALID_REQUEST', `raw_input_contents: ${contents.length} entries for ${req.inputs.length} inputs; give one per input, in the order of inputs`)
  }
  const values: Record<string, unknown> = Object.create(null)
  req.inputs.forEach((input, i) => {
    const { where, dtype } = checkInput(def, input, i, values)
    if (input.data !== undefined) fail('INVALID_REQUEST', `${where}: has contents, but raw_input_contents is given: send every input raw or none`)
    const datatype = input.datatype as V2DataType
    const bytes = contents[i]
    const n = sizeOf(input.shape)
    const want = n * ELEMENT_BYTES[datatype]
    if (bytes.length !== want) fail('INVALID_TENSOR', `${where}: raw_input_contents[${i}] holds ${bytes.length} bytes, but shape ${fmtShape(input.shape)} of ${datatype} takes ${want}`)
    values[input.name] = preparable(where, dtype, input.shape, typedView(datatype, bytes, 0, n))
  })
  return values
}

/** Checks an input's name (one of the loss's tensors, if a loss is given; given once) and datatype; its place for messages, its dtype. */
function checkInput (def: LossDef | undefined, input: V2RequestInputJson, i: number, seen: Record<string, unknown>): { where: string, dtype: WireDType } {
  if (def !== undefined && !tensorNames(def).has(input.name)) fail('INVALID_REQUEST', `inputs[${i}]: ${def.name} has no input '${input.name}'; its inputs are ${[...tensorNames(def)].join(', ')}`)
  if (input.name in seen) fail('INVALID_REQUEST', `inputs[${i}]: input '${input.name}' is given twice`)
  const where = `inputs[${i}] (${input.name})`
  return { where, dtype: wireDType(where, input.datatype) }
}

/** The outputs of a loss: `loss` and one `grad_<argument>` per differentiable argument. */
export function outputNames (def: LossDef): string[] {
  return ['loss', ...def.args.filter(a => a.grad === true).map(a => `grad_${a.name}`)]
}

/** The requested outputs, each with its form; asking for a gradient turns `grad` on unless it is set. */
function chooseOutputs (def: LossDef, req: V2InferenceRequestJson, binaryAll: boolean, options: Record<string, unknown>): OutputChoice[] {
  const known = outputNames(def)
  const seen = new Set<string>()
  return (req.outputs ?? []).map((o, i) => {
    if (!known.includes(o.name)) fail('INVALID_REQUEST', `outputs[${i}]: ${def.name} has no output '${o.name}'; its outputs are ${known.join(', ')}`)
    if (seen.has(o.name)) fail('INVALID_REQUEST', `outputs[${i}]: output '${o.name}' is asked for twice`)
    seen.add(o.name)
    const classes = o.parameters?.classification ?? 0
    if (classes > 0) fail('INVALID_REQUEST', `outputs[${i}].parameters.classification: '${o.name}' holds a loss or a gradient, not class scores; only 0 (no classification) is accepted`)
    if (o.name !== 'loss') {
      if (options.grad === false) fail('INVALID_OPTION', `outputs[${i}]: '${o.name}' is a gradient, but parameters.grad is false`)
      if (options.grad === undefined) options.grad = true
      const arg = o.name.slice('grad_'.length)
      if (!req.inputs.some(x => x.name === arg)) fail('INVALID_REQUEST', `outputs[${i}]: '${o.name}' needs the input '${arg}'`)
    }
    return { name: o.name, binary: o.parameters?.binary_data ?? binaryAll }
  })
}

/**
 * A JSON input as a typed flat tensor; nested data is flattened (decoding checks its count
 * against the shape). Data the body reader read as numbers (a DecodedTensor: REST's JSON form)
 * is already flat, in float64; a typed array (gRPC's float contents) is flat too.
 */
function jsonTensor (where: string, dtype: WireDType, input: V2RequestInputJson): unknown {
  // as the transport forms it: an array (REST: checkInputData), numbers REST's reader read, or
  // gRPC's float contents as a typed array
  const given = input.data as unknown[] | Float32Array | Float64Array | DecodedTensor | undefined
  if (given === undefined) fail('INVALID_TENSOR', `${where}: no data, and no parameters.binary_data_size`)
  if (given instanceof DecodedTensor) return { dtype, shape: input.shape, data: given.data }
  return { dtype, shape: input.shape, data: Array.isArray(given) ? rowMajor(`${where}.data`, given) : given }
}

/**
 * Data in the protocol's two forms, flat or nested in the tensor's natural shape, as the flat
 * row-major list; nested data must be regular (the shape itself is checked against the input's
 * after: only the element count must agree, as Triton reads it).
 */
function rowMajor (where: string, data: unknown[]): unknown[] {
  const shape = nestedShape(where, data)
  // flat data, the usual form, is taken as it is (an array among its numbers is ragged: the walk says where)
  if (shape.length === 1 && !data.some(Array.isArray)) return data
  const flat: unknown[] = []
  eachNested(where, data, shape, node => flat.push(node))
  return flat
}

/**
 * A binary input as the tensor argument itself, which `prepare()` takes as it is: its
 * elements are not copied into numbers (int64 stays exact past 2^53). The shape gets the
 * bounds decoding puts on any tensor's.
 */
function preparable (where: string, dtype: WireDType, shape: number[], data: TensorData): DecodedTensor {
  if (shape.length > MAX_RANK || shape.some(d => d > MAX_DIM)) fail('INVALID_TENSOR', `${where}.shape: expected at most ${MAX_RANK} dims in [0, ${MAX_DIM}], got ${fmtShape(shape)}`)
  return new DecodedTensor(dtype, shape, data, 'flat')
}

/**
 * A call's deadline when the request's `timeout` parameter (µs) or the transport's deadline
 * (gRPC's) is shorter than the server's (REQUEST_TIMEOUT_MS; 0: none), named for the message of
 * DEADLINE_EXCEEDED; undefined when the server's applies (the batcher's own).
 */
export function callDeadline (requestTimeoutMs: number, timeoutUs: number | undefined, transportUs: number | undefined): Deadline | undefined {
  const server = requestTimeoutMs > 0 ? requestTimeoutMs * 1000 : Infinity
  let deadline: Deadline | undefined
  if (timeoutUs !== undefined && timeoutUs > 0 && timeoutUs < server) deadline = { us: timeoutUs, name: 'the request\'s timeout parameter' }
  if (transportUs !== undefined && transportUs < (deadline?.us ?? server)) deadline = { us: transportUs, name: 'the call\'s gRPC deadline' }
  return deadline
}

import { fail } from '../../errors'
import { type KernelTensor } from '../../kernels/tensors'
import { RESERVED_KEYS, reservedKey } from '../../tensor/json-reader'
import { v2DataType } from './datatypes'
import { tensorBytes } from './response'
import { type V2Result } from './service'

/**
 * The gRPC messages of the Open Inference Protocol (proto/grpc_service.proto) as
 * @grpc/proto-loader reads them with GRPC_LOADER_OPTIONS, and their translation to and from
 * the protocol's JSON form, which the shared V2Service takes.
 */

/** How the messages are read: field names as in the .proto, int64 as numbers, oneofs named, repeated fields always arrays. */
export const GRPC_LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true, arrays: true }

/** An InferParameter: one of its fields set, `parameter_choice` naming which. */
export interface InferParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param'
  bool_param?: boolean
  int64_param?: number
  string_param?: string
  double_param?: number
  uint64_param?: number
}

type Parameters = Record<string, InferParameter> | undefined

/** InferTensorContents: the elements in the repeated field of the datatype. */
export interface TensorContents {
  bool_contents?: boolean[]
  int_contents?: number[]
  int64_contents?: Array<number | string>
  uint_contents?: number[]
  uint64_contents?: number[]
  /** A typed array when taken straight from the message's bytes (grpc-contents.ts). */
  fp32_contents?: number[] | Float32Array
  fp64_contents?: number[] | Float64Array
  bytes_contents?: Buffer[]
}

/** ModelInferRequest. */
export interface ModelInferRequest {
  model_name?: string
  model_version?: string
  id?: string
  parameters?: Record<string, InferParameter>
  inputs: Array<{ name?: string, datatype?: string, shape: number[], parameters?: Record<string, InferParameter>, contents?: TensorContents }>
  outputs: Array<{ name?: string, parameters?: Record<string, InferParameter> }>
  raw_input_contents: Buffer[]
}

/** ModelInferResponse, as written. */
export interface ModelInferResponse {
  model_name: string
  model_version: string
  id: string
  outputs: Array<{ name: string, datatype: string, shape: number[], contents?: TensorContents }>
  raw_output_contents: Buffer[]
}

/** The contents field that holds each datatype losshub takes. */
const CONTENTS_FIELD: Record<string, keyof TensorContents> = { FP32: 'fp32_contents', FP64: 'fp64_contents', INT32: 'int_contents', INT64: 'int64_contents' }

/** A ModelInferRequest in the form V2Service takes: model, version, the JSON request, the raw bytes; and whether to answer raw. */
export interface InferRequestJson {
  model: string
  version?: string
  request: Record<string, unknown>
  /** raw_input_contents, when given */
  raw?: { contents: Buffer[] }
  /** Answer with raw_output_contents (else typed contents): as the inputs came, unless `binary_data_output` says. */
  rawOutputs: boolean
}

/**
 * Translates a ModelInferRequest to the protocol's JSON form: parameters become JSON scalars,
 * typed contents `data`, raw_input_contents the raw tensors. REST's binary-form parameters
 * (`binary_data_size`, `binary_data`) have no meaning here and are ignored, as Triton ignores them.
 */
export function fromInferRequest (msg: ModelInferRequest): InferRequestJson {
  const rawIn = msg.raw_input_contents.length > 0
  const inputs = msg.inputs.map((input, i) => {
    const where = `inputs[${i}] (${input.name ?? ''})`
    const parameters = scalars(`${where}.parameters`, input.parameters)
    // REST's binary form has no meaning here, where the bytes go in raw_input_contents: ignored, as Triton ignores it
    if (parameters !== undefined) delete parameters.binary_data_size
    const json: Record<string, unknown> = { name: input.name ?? '', datatype: input.datatype ?? '', shape: input.shape }
    if (parameters !== undefined) json.parameters = parameters
    const data = contentsData(where, input.datatype ?? '', input.contents, rawIn)
    if (data !== undefined) json.data = data
    return json
  })
  const request: Record<string, unknown> = { inputs }
  if (msg.id !== undefined && msg.id !== '') request.id = msg.id
  const parameters = scalars('parameters', msg.parameters)
  if (parameters !== undefined) request.parameters = parameters
  if (msg.outputs.length > 0) {
    request.outputs = msg.outputs.map((o, i) => {
      // REST's binary_data is ignored here, as Triton ignores it: every output is raw or typed (`rawOutputs`)
      const params = scalars(`outputs[${i}].parameters`, o.parameters)
      return params === undefined ? { name: o.name ?? '' } : { name: o.name ?? '', parameters: params }
    })
  }
  const asked = parameters?.binary_data_output
  return {
    model: msg.model_name ?? '',
    version: msg.model_version === undefined || msg.model_version === '' ? undefined : msg.model_version,
    request,
    raw: rawIn ? { contents: msg.raw_input_contents } : undefined,
    rawOutputs: typeof asked === 'boolean' ? asked : rawIn
  }
}

/**
 * A parameter map as JSON scalars; undefined when empty. A parameter with no value set is
 * refused, and so is a key `__proto__`, `constructor` or `prototype`, as REST's body reader
 * refuses it (assigned, `__proto__` would vanish, the parameter silently dropped).
 */
function scalars (where: string, params: Parameters): Record<string, unknown> | undefined {
  const entries = Object.entries(params ?? {})
  if (entries.length === 0) return undefined
  const out: Record<string, unknown> = {}
  for (const [k, p] of entries) {
    if (RESERVED_KEYS.has(k)) throw reservedKey(`${where}.${k}`)
    const which = p.parameter_choice
    if (which === undefined) fail('INVALID_REQUEST', `${where}.${k}: no value set (bool_param, int64_param, string_param, double_param or uint64_param)`)
    out[k] = p[which]
  }
  return out
}

/**
 * An input's typed contents as flat `data`: the field of its datatype. Undefined when raw
 * contents are used and the input has none; elements in another field are refused.
 */
function contentsData (where: string, datatype: string, contents: TensorContents | undefined, rawIn: boolean): ArrayLike<unknown> | undefined {
  const given = (Object.entries(contents ?? {}) as Array<[keyof TensorContents, ArrayLike<unknown>]>).filter(([, v]) => (Array.isArray(v) || ArrayBuffer.isView(v)) && v.length > 0)
  if (rawIn) return given.length === 0 ? undefined : given[0][1]
  const field = CONTENTS_FIELD[datatype]
  if (field === undefined) return given[0]?.[1] ?? [] // the datatype itself is refused, naming it
  const stray = given.find(([k]) => k !== field)
  if (stray !== undefined) fail('INVALID_TENSOR', `${where}.contents: ${datatype} elements go in ${field}, got ${stray[0]}`)
  return contents?.[field] ?? []
}

/** The response message of an inference result: every output raw (raw_output_contents) or typed (contents). */
export function toInferResponse (result: V2Result, raw: boolean): ModelInferResponse {
  const outputs = result.outputs.map(({ name, tensor }) => {
    const head = { name, datatype: v2DataType(tensor.type), shape: [...tensor.dims] }
    return raw ? head : { ...head, contents: typedContents(tensor) }
  })
  return {
    model_name: result.def.name,
    model_version: '1',
    id: result.id ?? '',
    outputs,
    raw_output_contents: raw ? result.outputs.map(o => tensorBytes(o.tensor)) : []
  }
}

/**
 * A tensor's elements in the contents field of its datatype: floats as the typed array itself
 * (encoded as they are: grpc-contents.ts), int64 as decimal strings (exact past 2^53).
 */
function typedContents (t: KernelTensor): TensorContents {
  const field = CONTENTS_FIELD[v2DataType(t.type)]
  const d = t.data
  return { [field]: d instanceof BigInt64Array ? Array.from(d, v => v.toString()) : d }
}

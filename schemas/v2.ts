import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Double, Int32, Int64 } from './number'
import { NonFinite } from './tensor'

/**
 * The Open Inference Protocol (KServe V2) over REST, as Triton serves it, with its binary
 * tensor data extension: every loss is a model named after it, and `composite` evaluates several
 * (schemas/v2-composite.ts). Only the JSON parts are described here; the binary form appends
 * raw tensors after the JSON (see V2InferenceRequest).
 */

/** Element types a V2 tensor may have here. */
export const V2_DATATYPES = ['FP32', 'FP64', 'INT32', 'INT64'] as const

const datatype = Type.String({ description: `One of ${V2_DATATYPES.join(', ')}.`, examples: ['FP32'] })

/** `GET /v2`. */
export const V2ServerMetadata = Type.Object({
  name: Type.String(),
  version: Type.String(),
  extensions: Type.Array(Type.String(), { description: 'Protocol extensions served: `binary_tensor_data` (Triton\'s) and `parameters`.' })
}, { $id: 'V2ServerMetadata', examples: [{ name: 'losshub', version: '0.1.0', extensions: ['binary_tensor_data', 'parameters'] }] })

/** `GET /v2/health/live`. */
export const V2ServerLive = Type.Object({ live: Type.Boolean() }, { $id: 'V2ServerLive' })

/** `GET /v2/health/ready`. */
export const V2ServerReady = Type.Object({ ready: Type.Boolean() }, { $id: 'V2ServerReady' })

/** `GET /v2/models/{model}/ready`. */
export const V2ModelReady = Type.Object({ name: Type.String(), ready: Type.Boolean() }, { $id: 'V2ModelReady' })

/** One input or output of a model's metadata. */
export const V2MetadataTensor = Type.Object({
  name: Type.String(),
  datatype,
  shape: Type.Array(Int64({ minimum: -1 }), { description: 'Dims of the catalog example\'s rank; -1: any size.' })
}, { $id: 'V2MetadataTensor' })

/** `GET /v2/models/{model}`. */
export const V2ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(Type.Ref(V2MetadataTensor)),
  outputs: Type.Array(Type.Ref(V2MetadataTensor))
}, {
  $id: 'V2ModelMetadata',
  description: 'Inputs are the loss\'s tensor arguments (the optional ones and `grad_output` included), outputs `loss` and one `grad_<argument>` per differentiable argument; model `composite` has no fixed inputs (its terms name them) and `total` as its fixed output. Float inputs take FP32 or FP64, class indices INT32 or INT64; a target that takes either (cross_entropy\'s) is listed with the datatype of the catalog example.',
  examples: [{
    name: 'mse',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, -1] }, { name: 'target', datatype: 'FP32', shape: [-1, -1] }, { name: 'grad_output', datatype: 'FP32', shape: [-1, -1] }],
    outputs: [{ name: 'loss', datatype: 'FP32', shape: [] }, { name: 'grad_input', datatype: 'FP32', shape: [-1, -1] }]
  }]
})

/** Triton's request parameters, which every model takes. */
export const TRITON_PARAMETERS = {
  binary_data_output: Type.Optional(Type.Boolean({ description: 'Return every output as binary data unless the output says otherwise.' })),
  priority: Type.Optional(Int64({ minimum: 0, description: 'Accepted and ignored (one priority).' })),
  timeout: Type.Optional(Int64({ minimum: 0, description: 'Microseconds: answer 504 DEADLINE_EXCEEDED past it (at most REQUEST_TIMEOUT_MS).' }))
}

/** Request, input and output parameters: name → string, number or boolean. */
const scalar = Type.Union([Type.String(), Double(), Type.Boolean()])

/** What becomes of the input and output parameters losshub has no use for. */
const IGNORED_PARAMETERS = 'Other parameters (MLServer\'s `content_type`, say) are accepted and ignored, as Triton does; Triton\'s shared-memory parameters (`shared_memory_region`, ...) are refused: tensors travel in the request.'

/** One input tensor of an inference request. */
export const V2RequestInput = Type.Object({
  name: Type.String({ description: 'A tensor argument of the loss (`input`, `target`, `weight`, ...) or `grad_output`; for model `composite`, a tensor its terms bind (an identifier).' }),
  shape: Type.Array(Int64({ minimum: 0 }), { description: 'Dimensions; [] for a 0-d tensor.' }),
  datatype,
  parameters: Type.Optional(Type.Object({
    binary_data_size: Type.Optional(Int64({ minimum: 0, description: 'Binary tensor data extension: the tensor\'s bytes (little-endian, row-major) follow the JSON header; this many are this input\'s.' }))
  }, { additionalProperties: scalar, description: IGNORED_PARAMETERS })),
  data: Type.Optional(Type.Array(Type.Unknown(), { description: 'Row-major elements, flat or nested; non-finite floats as "NaN", "Infinity", "-Infinity". Absent when the tensor is binary.' }))
}, { $id: 'V2RequestInput', additionalProperties: false })

/** One output an inference request asks for. */
export const V2RequestOutput = Type.Object({
  name: Type.String({ description: '`loss` or `grad_<argument>`; for model `composite`, `total`, a term\'s output or `grad_<input>`.' }),
  parameters: Type.Optional(Type.Object({
    binary_data: Type.Optional(Type.Boolean({ description: 'Return this output as binary data (overrides `binary_data_output`).' })),
    classification: Type.Optional(Int64({ minimum: 0, description: 'Triton\'s classification extension: a loss has no class scores, so only 0 (off) is accepted.' }))
  }, { additionalProperties: scalar, description: IGNORED_PARAMETERS }))
}, { $id: 'V2RequestOutput', additionalProperties: false })

/** `POST /v2/models/{model}/infer`: the JSON object (in the binary form, the JSON header). */
export const V2InferenceRequest = Type.Object({
  id: Type.Optional(Type.String({ description: 'Echoed in the response.' })),
  model_name: Type.Optional(Type.String({ description: 'If given, the model of the URL.' })),
  model_version: Type.Optional(Type.String({ description: 'If given, "1".' })),
  parameters: Type.Optional(Type.Object({
    ...TRITON_PARAMETERS,
    terms: Type.Optional(Type.String({
      description: 'Model `composite` only: the terms, a JSON array as `terms` of `POST /losses` (CompositeTerm), whose `args` name inputs of this request.',
      examples: ['[{"loss": "mse", "args": {"input": "x", "target": "y"}}, {"loss": "l1", "weight": 0.5, "args": {"input": "x", "target": "y"}, "name": "l1"}]']
    }))
  }, {
    additionalProperties: scalar,
    description: 'A loss\'s options, `reduction` and `grad`, as in the body of `POST /loss/{name}` (same defaults and checks); for model `composite`, `terms` and `grad` only. Triton\'s `binary_data_output`, `priority` and `timeout` for every model.'
  })),
  inputs: Type.Array(Type.Ref(V2RequestInput)),
  outputs: Type.Optional(Type.Array(Type.Ref(V2RequestOutput), { description: 'The outputs to return, in this order; absent or empty: `loss` (model `composite`: `total` and one output per term) and, with grad, every gradient. Asking for a `grad_` output implies `grad: true` unless `grad` is false.' }))
}, {
  $id: 'V2InferenceRequest',
  additionalProperties: false,
  description: 'JSON form: this object is the body. Binary form (Triton\'s binary tensor data extension): the body is this object (its byte length in the `Inference-Header-Content-Length` header) followed by the raw little-endian bytes of each input that has `parameters.binary_data_size`, in the order of `inputs`. Content-Type application/json, application/octet-stream or none (as tritonclient sends it); application/x-www-form-urlencoded, which `curl -d` sends, is read as JSON too.',
  examples: [{
    id: '42',
    parameters: { grad: true },
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [3, 2], data: [1, 2, 1, 3, 1, 3] },
      { name: 'target', datatype: 'INT64', shape: [3], data: [0, 1, 1] }
    ]
  }]
})

/**
 * What the REST route validates: V2InferenceRequest with each input's `data` left to the body
 * reader, which reads numbers straight into a tensor (readJson's dataLists), and to the route,
 * which refuses data that is not an array (checkInputData). The spec documents V2InferenceRequest.
 * gRPC's requests are checked with it too: their data is an array or a typed array, as decoded.
 */
export const V2InferenceRequestRead = Type.Object({
  ...V2InferenceRequest.properties,
  inputs: Type.Array(Type.Object({ ...V2RequestInput.properties, data: Type.Optional(Type.Unknown()) }, { additionalProperties: false }))
}, { additionalProperties: false })

/** One output of an inference response. */
export const V2ResponseOutput = Type.Object({
  name: Type.String(),
  datatype,
  shape: Type.Array(Int64({ minimum: 0 })),
  parameters: Type.Optional(Type.Object({
    binary_data_size: Int64({ minimum: 0, description: 'The output is binary: this many bytes of the body after the JSON header are its.' })
  })),
  data: Type.Optional(Type.Array(Type.Union([Double(), Type.Ref(NonFinite)]), { description: 'Flat row-major elements; absent when the output is binary.' }))
}, { $id: 'V2ResponseOutput' })

/** The answer of `POST /v2/models/{model}/infer` (in the binary form, its JSON header). */
export const V2InferenceResponse = Type.Object({
  model_name: Type.String(),
  model_version: Type.String(),
  id: Type.Optional(Type.String()),
  outputs: Type.Array(Type.Ref(V2ResponseOutput))
}, {
  $id: 'V2InferenceResponse',
  description: 'When an output is binary, the body is this object (its byte length in the `Inference-Header-Content-Length` header, Content-Type application/octet-stream) followed by the raw little-endian bytes of each binary output, in the order of `outputs`.',
  examples: [{
    model_name: 'cross_entropy',
    model_version: '1',
    id: '42',
    outputs: [
      { name: 'loss', datatype: 'FP32', shape: [], data: [0.5223726] },
      { name: 'grad_input', datatype: 'FP32', shape: [3, 2], data: [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343] }
    ]
  }]
})

/** Every V2 error: the protocol's `error` string, with losshub's code in front and beside it. */
export const V2ErrorResponse = Type.Object({
  error: Type.String({ description: '`<code>: <message>`; the message names the input, parameter or value at fault.' }),
  code: Type.String({ description: 'Stable machine-readable error code (see docs/errors.md).' })
}, {
  $id: 'V2ErrorResponse',
  examples: [{ error: 'SHAPE_MISMATCH: target: expected shape [3] for input [3,2], got [4]', code: 'SHAPE_MISMATCH' }]
})

const retryAfter = { 'Retry-After': Int32({ minimum: 0, description: 'Seconds to wait before retrying.' }) }

/** A V2 error response with what the status means on its route. */
export function v2ErrorResponse (description: string, headers?: Record<string, unknown>): TSchema {
  return Type.Ref(V2ErrorResponse, { description, ...(headers === undefined ? {} : { headers }) })
}

/** 503 of the V2 readiness routes. */
export const v2NotReadyResponse = v2ErrorResponse('Not ready: kernels still loading (code STARTING), draining before exit (SHUTTING_DOWN) or shedding load (OVERLOADED), as `GET /readyz`.', retryAfter)

/** 404 of the model routes. */
export const v2UnknownModelResponse = v2ErrorResponse('No such model (code UNKNOWN_LOSS: the message lists the models served), or a version other than 1 (NOT_FOUND).')

/** The error responses of `POST /v2/models/{model}/infer` (codes in docs/errors.md). */
export const v2InferErrorResponses = {
  400: v2ErrorResponse('Invalid call: malformed JSON or binary layout (a binary_data_size that does not match its shape or the body), an unknown input, output or parameter, a bad option, or any error of `POST /loss/{name}` (shapes, dtypes, indices, domain), or for model `composite` of `POST /losses` (the message then names the term: `terms[i] (name): `). The message names the input or parameter at fault.'),
  404: v2ErrorResponse('No such model (code UNKNOWN_LOSS: the message lists the models served), a version other than 1 (NOT_FOUND), or a term of model `composite` naming a loss not served (UNKNOWN_LOSS).'),
  408: v2ErrorResponse('The request did not arrive within RECEIVE_TIMEOUT_MS, or (code RECEIVE_TIMEOUT) a large body arrives too slowly to be complete by then; the connection is closed.'),
  413: v2ErrorResponse('The body is larger than the configured limit (BODY_LIMIT_MB).'),
  415: v2ErrorResponse('A content type other than application/json, application/octet-stream, application/x-www-form-urlencoded or none.'),
  500: v2ErrorResponse('An unexpected failure (code INTERNAL): the details are logged with the request id (x-request-id), not returned.'),
  503: v2ErrorResponse('Overloaded (the queue is full, or shedding load) or shutting down: retry after `Retry-After` seconds.', retryAfter),
  504: v2ErrorResponse('Not answered within the request\'s `timeout` parameter or REQUEST_TIMEOUT_MS (code DEADLINE_EXCEEDED).')
}

/** Path parameters of the model routes. */
export const V2ModelParams = Type.Object({
  model: Type.String({ description: 'A loss name, e.g. cross_entropy, or `composite` (several losses at once, as `POST /losses`).' })
})

/** Path parameters of the versioned model routes. */
export const V2VersionParams = Type.Object({
  model: Type.String({ description: 'A loss name, e.g. cross_entropy, or `composite` (several losses at once, as `POST /losses`).' }),
  version: Type.String({ description: 'Always "1": each loss has one version.' })
})

/** The binary form's request header. */
export const V2InferHeaders = Type.Object({
  'inference-header-content-length': Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'Binary form: the byte length of the JSON header at the start of the body.' }))
})

export type V2InferenceRequestJson = Static<typeof V2InferenceRequest>
export type V2RequestInputJson = Static<typeof V2RequestInput>
export type V2RequestOutputJson = Static<typeof V2RequestOutput>
export type V2ResponseOutputJson = Static<typeof V2ResponseOutput>
export type V2MetadataTensorJson = Static<typeof V2MetadataTensor>
export type V2ModelMetadataJson = Static<typeof V2ModelMetadata>

/** Schemas referenced by $id; registered once by the V2 routes. */
export const v2Schemas = [
  V2ServerMetadata, V2ServerLive, V2ServerReady, V2ModelReady, V2MetadataTensor, V2ModelMetadata,
  V2RequestInput, V2RequestOutput, V2InferenceRequest, V2ResponseOutput, V2InferenceResponse, V2ErrorResponse
]

import { type FastifyInstance, type FastifyRequest } from 'fastify'
import { fail, LosshubError } from '../../errors'
import { DecodedTensor, readJson, type TensorMemory } from '../../tensor/json-reader'
import { type V2InferenceRequestJson } from '../../../schemas/v2'
import { type ReadAside } from '../../tensor/rows-ahead'
import { addBufferParser, requestMemory } from '../../http/raw-body'
import { alignedUp } from '../../tensor/tensor'

/** The binary tensor data extension's header: the byte length of the JSON at the start of the body. */
export const HEADER_LENGTH = 'inference-header-content-length'

/** The request's list whose objects carry tensor elements under `data`: read straight into numbers. */
const DATA_LISTS: ReadonlySet<string> = new Set(['inputs'])

/** The bytes after a binary-form request's JSON header, by request (absent: the JSON form). */
const tails = new WeakMap<FastifyRequest, Buffer>()

/** The binary bytes of a request, when it came in the binary form. */
export function binaryTail (request: FastifyRequest): Buffer | undefined { return tails.get(request) }

/**
 * Splits a body into its JSON object and, when `Inference-Header-Content-Length` is given, the
 * raw bytes after it (a view, not a copy). A length the body cannot hold is a 400. Inputs'
 * JSON data arrives read into numbers (readJson's dataLists, with its `memory` and `aside`).
 */
export function splitBody (body: Buffer, headerLength: string | string[] | undefined, memory?: TensorMemory, aside?: ReadAside): { json: unknown, tail?: Buffer } {
  if (headerLength === undefined) {
    return { json: hinted(() => readJson(body, DATA_LISTS, memory, aside), 'a body in the binary form needs an Inference-Header-Content-Length header, the byte length of its JSON', / after JSON /) }
  }
  const text = Array.isArray(headerLength) ? headerLength.join(', ') : headerLength
  if (!/^[0-9]+$/.test(text)) fail('INVALID_REQUEST', `Inference-Header-Content-Length: expected the byte length of the JSON header, got ${JSON.stringify(text)}`)
  const n = Number(text)
  if (n === 0) fail('INVALID_REQUEST', 'Inference-Header-Content-Length: 0 leaves no JSON header; it is the byte length of the JSON that starts the body')
  if (n > body.length) fail('INVALID_REQUEST', `Inference-Header-Content-Length: ${text} is more than the ${body.length} bytes of the body`)
  const json = hinted(() => readJson(body.subarray(0, n), DATA_LISTS), `the JSON header is read as the first ${text} bytes (Inference-Header-Content-Length): is that its byte length?`)
  return { json, tail: body.subarray(n) }
}

/**
 * `read`, whose INVALID_JSON errors (those matching `when`) say `hint` too: a binary body without
 * its header, or with a header length that does not end its JSON, fails as JSON at a position
 * that alone says little.
 */
function hinted<T> (read: () => T, hint: string, when = /./): T {
  try {
    return read()
  } catch (err) {
    if (err instanceof LosshubError && err.code === 'INVALID_JSON' && when.test(err.message)) throw new LosshubError('INVALID_JSON', `${err.message}; ${hint}`)
    throw err
  }
}

/**
 * The one check of V2InferenceRequest that the route's schema (V2InferenceRequestRead) leaves
 * to the body: each input's data, unless the reader took it in as numbers, is an array. Called
 * first, as the schema's own checks come first.
 */
export function checkInputData (body: V2InferenceRequestJson): void {
  body.inputs.forEach((input, i) => {
    const data: unknown = input.data
    if (data !== undefined && !(data instanceof DecodedTensor) && !Array.isArray(data)) fail('INVALID_REQUEST', `inputs.${i}.data: must be array`)
  })
}

/**
 * Body parsing of the V2 routes (this plugin's scope only): JSON, the binary form under any of
 * application/json, application/octet-stream or no Content-Type at all (as tritonclient sends
 * it), within the app's body limit. application/x-www-form-urlencoded, which `curl -d` sends
 * unless told otherwise, is read as JSON too, as Triton reads any type. Any other type is a 415. JSON data is read as POST /loss
 * reads tensors: into reused memory the route hands back (releaseBody), a large one's second
 * half perhaps on an idle kernel worker (`aside`).
 */
export function v2BodyParser (app: FastifyInstance, aside?: ReadAside): void {
  app.removeAllContentTypeParsers()
  const parse = (request: FastifyRequest, body: Buffer): unknown => {
    const { json, tail } = splitBody(body, request.headers[HEADER_LENGTH], size => requestMemory(request, size), aside)
    if (tail !== undefined) tails.set(request, tail)
    return json
  }
  const parser = (request: FastifyRequest, body: Buffer): unknown => {
    const type = request.headers['content-type']
    // '*' also catches every type no other parser takes: only "none" is welcome there
    if (type !== undefined && !/^application\/(json|octet-stream|x-www-form-urlencoded)\s*(;|$)/i.test(type)) {
      fail('UNSUPPORTED_MEDIA_TYPE', `content-type: expected application/json, application/octet-stream or none (or application/x-www-form-urlencoded, curl -d's, read as JSON), got ${JSON.stringify(type)}`)
    }
    return parse(request, body)
  }
  // the binary tensors start right after the JSON header: leave room so that they land aligned
  // (TENSOR_ALIGN), and so become typed arrays over the body's memory rather than copies
  const lead = (request: FastifyRequest): number => {
    const n = Number(request.headers[HEADER_LENGTH])
    return Number.isSafeInteger(n) && n >= 0 ? alignedUp(n) - n : 0
  }
  // the binary form's tensors are views into the body: its memory goes with them
  const keepsBody = (request: FastifyRequest): boolean => request.headers[HEADER_LENGTH] !== undefined
  addBufferParser(app, ['application/json', 'application/octet-stream'], parser, lead, keepsBody)
  addBufferParser(app, '*', parser, lead, keepsBody)
}

import { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify'
import { ERRORS, type ErrorCode, LosshubError, MAX_MESSAGE, shortened } from '../errors'
import { DISCARD_LIMIT_BYTES, discardBody } from './discard-body'

/** What the error mapping reads of an Ajv validation error. */
export interface AjvError { keyword: string, instancePath: string, message?: string, params: Record<string, unknown>, data?: unknown }

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 417: 'Expectation Failed', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable', 504: 'Gateway Timeout'
}

/** Codes answered before the rest of the body is read (src/http/body-admission.ts: too slow to arrive, or no room in the line; src/shutdown.ts: out of time). */
const UNREAD: ReadonlySet<ErrorCode> = new Set(['RECEIVE_TIMEOUT', 'OVERLOADED', 'SHUTTING_DOWN'])

/** Fields whose schema is a tensor: their errors are INVALID_TENSOR. */
export type TensorFields = (url: string) => ReadonlySet<string>

/**
 * Maps any thrown error to the API's error body; 5xx details are logged, never returned. A body
 * refused before it was read (413, 415) is read and dropped first, up to a bound, so that the
 * answer reaches a client still sending it (src/http/discard-body.ts).
 */
export function errorHandler (tensorFields: TensorFields) {
  return async (err: FastifyError | LosshubError, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const [code, message] = classify(err, request, tensorFields)
    const status = ERRORS[code].status
    // a defect of ours is an error, with its stack; a load or deadline answer (503, 504) is not
    if (code === 'INTERNAL') request.log.error({ err }, 'request failed')
    else if (status >= 500) request.log.warn({ code, message }, 'request not served')
    const retry = err instanceof LosshubError ? err.retryAfterSeconds : undefined
    if (retry !== undefined) void reply.header('Retry-After', String(retry))
    // answered at once, not after the rest of the body: one too slow to arrive in time (its
    // connection closes), or one refused for want of room before it was read (Node reads and
    // drops the rest after the answer, which a client that reads only once it has sent all still gets)
    if (!request.raw.readableEnded && !UNREAD.has(code)) {
      const ended = await discardBody(request.raw, Math.max(DISCARD_LIMIT_BYTES, request.routeOptions.bodyLimit ?? 0))
      // read to its end, the connection can serve the next request (Fastify asked to close it
      // in case more of the body came); otherwise closing it is what bounds the reading
      if (!ended) void reply.header('connection', 'close')
      else if (reply.hasHeader('connection')) reply.removeHeader('connection')
    } else if (request.raw.readableEnded && !UNREAD.has(code) && reply.getHeader('connection') === 'close') {
      // read to its end before it was refused (bad JSON, a ragged tensor): Fastify closes the
      // connection after any body error, in case more of the body came; none can have
      reply.removeHeader('connection')
    }
    return await reply.code(status).send(errorBody(code, message))
  }
}

/**
 * The JSON body of an error, its message cut so that `CODE: message` (V2's `error`) fits
 * MAX_MESSAGE: a message may echo a client's input of any size.
 */
export function errorBody (code: ErrorCode, message: string): { statusCode: number, code: ErrorCode, error: string, message: string } {
  const status = ERRORS[code].status
  return { statusCode: status, code, error: STATUS_TEXT[status] ?? 'Error', message: shortened(message, MAX_MESSAGE - code.length - 2) }
}

function classify (err: FastifyError | LosshubError, request: FastifyRequest, tensorFields: TensorFields): [ErrorCode, string] {
  if (err instanceof LosshubError) return [err.code, err.message]
  const validation = (err as { validation?: AjvError[] }).validation
  if (validation !== undefined && validation.length > 0) return validationMessage(validation, tensorFields(request.routeOptions.url ?? ''))
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return ['INVALID_JSON', `body: ${err.message}`]
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return ['PAYLOAD_TOO_LARGE', 'body: larger than the configured limit (BODY_LIMIT_MB)']
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return ['UNSUPPORTED_MEDIA_TYPE', `content-type: expected application/json, got ${JSON.stringify(request.headers['content-type'] ?? '')}`]
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return ['INVALID_JSON', 'body: its length does not match Content-Length']
  }
  if (err instanceof SyntaxError) return ['INVALID_JSON', `body: ${err.message}`]
  if (err.statusCode === 413) return ['PAYLOAD_TOO_LARGE', 'body: larger than the configured limit (BODY_LIMIT_MB)']
  if (err.statusCode === 415) return ['UNSUPPORTED_MEDIA_TYPE', `content-type: expected application/json, got ${JSON.stringify(request.headers['content-type'] ?? '')}`]
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return ['INVALID_REQUEST', err.message]
  return ['INTERNAL', 'internal error; the request id in the logs has the details']
}

/** Ajv's validation errors (the first, and what came with it) as the API's code and message, naming the field; `tensors` are the fields that hold tensors. */
export function validationMessage (errors: readonly AjvError[], tensors: ReadonlySet<string>): [ErrorCode, string] {
  const e = errors[0]
  const path = e.instancePath.split('/').filter(s => s !== '')
  const field = path.join('.')
  if (e.keyword === 'additionalProperties') {
    const name = String(e.params.additionalProperty)
    return ['INVALID_REQUEST', `${field === '' ? name : `${field}.${name}`}: unknown field`]
  }
  if (e.keyword === 'required') return ['INVALID_REQUEST', `${field === '' ? '' : `${field}.`}${String(e.params.missingProperty)}: required field is missing`]
  if (path.length > 0 && tensors.has(path[0])) {
    return ['INVALID_TENSOR', `${field}: not a tensor (${e.message ?? 'invalid'}); expected nested arrays of numbers, or {"dtype", "shape", "data"}`]
  }
  // Ajv's number and integer take finite numbers only: 1e400 in JSON (read as Infinity), or a
  // gRPC double NaN, would otherwise be told "must be number" (the value is the errors' `data`: Ajv's verbose)
  if (e.keyword === 'type' && typeof e.data === 'number' && !Number.isFinite(e.data)) {
    return ['INVALID_REQUEST', `${field}: must be a finite ${e.params.type === 'integer' ? 'integer' : 'number'}, got ${e.data}`]
  }
  if (e.keyword === 'enum') return ['INVALID_REQUEST', `${field}: must be one of ${(e.params.allowedValues as unknown[]).map(v => JSON.stringify(v)).join(', ')}`]
  if (e.keyword === 'type' && field === '') return ['INVALID_REQUEST', 'body: must be a JSON object']
  const types = unionTypes(e, errors)
  if (types !== undefined) return ['INVALID_REQUEST', `${field}: must be ${types.slice(0, -1).join(', ')} or ${types[types.length - 1]}`]
  return ['INVALID_REQUEST', `${field === '' ? 'body' : field}: ${e.message ?? 'invalid'}`]
}

/**
 * The types a value may take where it took none of a union's (one `anyOf` of types, as a V2
 * parameter's string, number or boolean): Ajv reports each branch's type error, then the anyOf,
 * and the first alone would say "must be string". Undefined for any other error.
 */
function unionTypes (e: AjvError, errors: readonly AjvError[]): string[] | undefined {
  if (e.keyword !== 'type' || !errors.some(x => x.keyword === 'anyOf' && x.instancePath === e.instancePath)) return undefined
  const types = new Set(errors.filter(x => x.keyword === 'type' && x.instancePath === e.instancePath).map(x => String(x.params.type)))
  return types.size > 1 ? [...types] : undefined
}

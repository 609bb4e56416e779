import { Type, type TSchema } from '@sinclair/typebox'
import { ErrorResponse } from './error'
import { Int32 } from './number'

/**
 * Documented responses for the route schemas. @fastify/swagger takes a response's description
 * from its schema's `description` (else "Default Response") and its headers from `headers`.
 */

const retryAfter = { 'Retry-After': Int32({ minimum: 0, description: 'Seconds to wait before retrying.' }) }

/** A response whose body is the ErrorResponse, with what the status means on this route. */
export function errorResponse (description: string, headers?: Record<string, unknown>): TSchema {
  return Type.Ref(ErrorResponse, { description, ...(headers === undefined ? {} : { headers }) })
}

/** A response with the given body schema and description. */
export function described (schema: TSchema, description: string): TSchema {
  return schema.$id === undefined ? { ...schema, description } : Type.Ref(schema, { description })
}

/** The error responses of `POST /loss/{name}` (codes in docs/errors.md). */
export const lossErrorResponses = {
  400: errorResponse('Invalid call: malformed JSON, a missing or unknown field, a bad option, a tensor whose data does not match its shape, shapes that do not fit the loss, class indices out of range, or values outside the loss\'s domain, or (`TOO_LARGE`) a tensor the call would make with more elements than MAX_ELEMENTS. `message` names the argument at fault.'),
  404: errorResponse('No such loss: the name in the path is not served (code UNKNOWN_LOSS), e.g. misspelt; `message` lists the losses served.'),
  408: errorResponse('The request did not arrive within RECEIVE_TIMEOUT_MS, or (code RECEIVE_TIMEOUT) a large body arrives too slowly to be complete by then; the connection is closed.'),
  413: errorResponse('The body is larger than the configured limit (BODY_LIMIT_MB). Up to 64 MiB (or the limit, if larger) of the body is read and dropped before this answer, so that a client still sending it gets the answer rather than a broken connection; past that the connection is closed.'),
  415: errorResponse('The content type is not application/json, or the body is compressed (a Content-Encoding other than identity, a Transfer-Encoding other than chunked; the answer\'s Accept-Encoding header says identity): send uncompressed JSON.'),
  500: errorResponse('An unexpected failure (code INTERNAL): the details are logged with the request id (x-request-id), not returned.'),
  503: errorResponse('Overloaded (the queue is full, in requests or in bytes), shutting down, or the kernel worker running the request was lost (WORKER_FAILED): retry after `Retry-After` seconds, on this or another instance.', retryAfter),
  504: errorResponse('Not answered within REQUEST_TIMEOUT_MS, queueing plus kernel time (code DEADLINE_EXCEEDED); a kernel still running then is abandoned.')
}

/** 503 of GET /readyz. */
export const notReadyResponse = errorResponse('Not ready: kernels still loading (code STARTING), draining before exit (code SHUTTING_DOWN) or shedding load (code OVERLOADED).', retryAfter)

/** 404 of GET /loss/{name}. */
export const unknownLossResponse = errorResponse('No such loss: `message` lists the losses served.')

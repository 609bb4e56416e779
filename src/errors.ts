/**
 * Every error the service answers with, in one table: code, HTTP status and meaning.
 * docs/errors.md documents the same table; test/errors.test.ts keeps the two in step.
 */
export const ERRORS = {
  INVALID_JSON: { status: 400, meaning: 'The body is not valid JSON, or is nested deeper than 32 levels of arrays and objects.' },
  INVALID_REQUEST: { status: 400, meaning: 'A field is missing, unknown, or of the wrong type, or an option has a bad value.' },
  INVALID_TENSOR: { status: 400, meaning: 'A tensor is malformed: ragged nested arrays, data that does not match its shape, bad base64, a non-number element, a dim past 2^31 - 1, an integer JSON cannot carry exactly (past 2^53 - 1).' },
  INVALID_DTYPE: { status: 400, meaning: 'A tensor has a dtype the argument does not take (e.g. floats for class indices).' },
  SHAPE_MISMATCH: { status: 400, meaning: 'Tensor shapes do not fit the loss or each other.' },
  INDEX_OUT_OF_RANGE: { status: 400, meaning: 'A class index (or length) is outside its valid range.' },
  DOMAIN_ERROR: { status: 400, meaning: "A value lies outside the loss's domain (e.g. bce input outside [0, 1])." },
  INVALID_OPTION: { status: 400, meaning: 'An option is not allowed with the others or for this loss (e.g. a reduction the loss does not support).' },
  TOO_LARGE: { status: 400, meaning: 'A tensor the request would make (an argument, a broadcast, an intermediate, the loss or a gradient) has more elements than MAX_ELEMENTS (a composite: its terms together), or its kernel more sequential steps (ctc\'s frames) than MAX_STEPS; the message names it and gives both numbers.' },
  UNKNOWN_LOSS: { status: 404, meaning: 'No loss has that name; the message lists the known names.' },
  NOT_FOUND: { status: 404, meaning: 'No such route.' },
  RECEIVE_TIMEOUT: { status: 408, meaning: 'The request did not arrive within RECEIVE_TIMEOUT_MS (its headers: HEADERS_TIMEOUT_MS), or a large body arrives too slowly to be complete by then; the connection is closed.' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: 'The body is larger than BODY_LIMIT_MB.' },
  EXPECTATION_FAILED: { status: 417, meaning: 'The request\'s Expect header asks for something other than 100-continue; the connection is closed.' },
  HEADERS_TOO_LARGE: { status: 431, meaning: 'The request\'s headers are larger than the 16 KiB the server reads; the connection is closed.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'The content type is not application/json, or the body is compressed (a Content-Encoding other than identity, a Transfer-Encoding other than chunked): send uncompressed JSON. Over gRPC (UNIMPLEMENTED): a message compressed in an encoding other than gzip or deflate.' },
  OVERLOADED: { status: 503, meaning: 'The queue is full or the process is under pressure; retry after Retry-After seconds.' },
  STARTING: { status: 503, meaning: 'The kernels are still loading (readiness only).' },
  SHUTTING_DOWN: { status: 503, meaning: 'The process is draining before exit; retry (on another instance) after Retry-After seconds.' },
  KERNEL_ABANDONED: { status: 503, meaning: 'No longer sent (kept so that clients that know it still read it): a batch now runs until its last member\'s deadline, and a member due sooner alone gets 504 DEADLINE_EXCEEDED.' },
  WORKER_FAILED: { status: 503, meaning: 'The kernel worker thread died while running this request, and again on a fresh worker (or took the request\'s own tensors with it, so that they could not be sent again); retry after Retry-After seconds.' },
  DEADLINE_EXCEEDED: { status: 504, meaning: 'The request was not answered within REQUEST_TIMEOUT_MS (queueing plus kernel time); a kernel still running then runs on for the other requests of its batch, and is abandoned once all of them are past their deadlines.' },
  INTERNAL: { status: 500, meaning: 'An unexpected failure; details are logged, not returned.' }
} as const

export type ErrorCode = keyof typeof ERRORS

/** An error with a code from the table; the HTTP layer turns it into the API's error body. */
export class LosshubError extends Error {
  readonly statusCode: number
  constructor (readonly code: ErrorCode, message: string, readonly retryAfterSeconds?: number) {
    super(message)
    this.statusCode = ERRORS[code].status
  }
}

/**
 * The most characters of an error's code and message together (`CODE: message`, as V2's
 * `error` and gRPC's status details carry them). Messages that echo a client's input (a 5 MB
 * key, a 100 KB model name) are cut to it: an answer that size helps no one, and over gRPC a
 * header block past a client's limit (64 KiB in grpc-js) is never delivered, so the client
 * waits out its deadline, and so do the calls behind it on its connection.
 */
export const MAX_MESSAGE = 2000

/** `text` cut to at most `max` characters, a note of how many were left out among them (never between the halves of a surrogate pair). */
export function shortened (text: string, max = MAX_MESSAGE): string {
  if (text.length <= max) return text
  // the note: "... (" and " more characters)" around at most as many digits as the length has
  let end = max - 22 - String(text.length).length
  if (/[\uD800-\uDBFF]/.test(text[end - 1])) end--
  return `${text.slice(0, end)}... (${text.length - end} more characters)`
}

/** Shorthand for throwing a coded error. */
export function fail (code: ErrorCode, message: string): never {
  throw new LosshubError(code, message)
}

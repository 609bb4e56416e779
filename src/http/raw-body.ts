import { type FastifyInstance, type FastifyRequest, errorCodes } from 'fastify'
import { copyBytes } from '../tensor/copy-bytes'
import { ownMemory } from '../tensor/tensor'
import { answeredWhileReceiving } from './body-admission'
import { giveKeptMemory, giveMemory, takeKeptMemory, takeMemory, takeSharedMemory } from './body-memory'

/**
 * Turns a request's raw body into its parsed value (throwing a coded error when it cannot).
 * `body` is the request's bytes, in memory of their own.
 */
export type BodyParser = (request: FastifyRequest, body: Buffer) => unknown

/**
 * How many bytes to leave before a request's body in its memory, so that an offset the parser
 * will read at lands aligned (the binary tensors after a V2 JSON header). Default: none.
 */
export type BodyLead = (request: FastifyRequest) => number

/** Whether the value parsed from a request's body may hold views into the body's memory. */
export type KeepsBody = (request: FastifyRequest) => boolean

/**
 * Installs `parse` for the content types `types` on `app`, in place of Fastify's buffer
 * collection: the body is read once, straight into one buffer of its declared length (no
 * chunk list, no concatenated copy), `lead` bytes into its memory. The body limit and the
 * errors are Fastify's own (413 over the limit, 400 for a length that does not match). Unless
 * `keepsBody` says the parsed value may hold views into it, the memory is reused for a later
 * body once parsed; when it does, the body's memory is reused once the route calls
 * `releaseBody` (src/http/body-memory.ts).
 */
export function addBufferParser (app: FastifyInstance, types: string | string[], parse: BodyParser, lead: BodyLead = () => 0, keepsBody: KeepsBody = () => false): void {
  app.addContentTypeParser(types, (request: FastifyRequest, payload: NodeJS.ReadableStream, done: (err: Error | null, body?: unknown) => void) => {
    const keeps = keepsBody(request)
    readBody(request, payload, lead(request), keeps, (err, body) => {
      // answered already (body-admission.ts: too slow to arrive in time): nothing more to say
      if (err !== null) return answeredWhileReceiving(request) ? undefined : done(err)
      const bytes = body as Buffer
      const release = (): void => { giveBack(bytes.buffer, keeps) }
      let value: unknown
      try {
        value = parse(request, bytes)
      } catch (error) {
        release()
        releaseBody(request)
        return done(error as Error)
      }
      if (keeps) keep(request, bytes.buffer)
      else release()
      done(null, value)
    })
  })
}

/** Gives a body's memory back to the pool it came from (`kept`: takeKeptMemory's, else takeMemory's). */
function giveBack (memory: ArrayBufferLike, kept: boolean): void {
  if (kept) giveKeptMemory(memory)
  else giveMemory(memory as ArrayBuffer)
}

/** Memory that a request's parsed value holds views into (its body's, its tensors'), until `releaseBody`. */
const kept = new WeakMap<FastifyRequest, ArrayBufferLike[]>()

/**
 * Memory for `bytes` bytes of a tensor decoded from `request`'s body, when it is large enough
 * to be worth reusing and the shared budget allows: shared memory from the pool (read in place
 * by a kernel worker), handed back by `releaseBody`. Undefined: the tensor takes memory of its own.
 */
export function requestMemory (request: FastifyRequest, bytes: number): ArrayBufferLike | undefined {
  const memory = takeSharedMemory(bytes)
  if (memory !== undefined) keep(request, memory)
  return memory
}

function keep (request: FastifyRequest, memory: ArrayBufferLike): void {
  const list = kept.get(request)
  if (list === undefined) kept.set(request, [memory])
  else list.push(memory)
}

/**
 * Hands the memory of `request`'s body and decoded tensors back for reuse (see `keepsBody` and
 * `requestMemory`): call it once nothing reads the request's tensors any more (its kernel has
 * run, or it never will). Memory not handed back is left to the garbage collector.
 */
export function releaseBody (request: FastifyRequest): void {
  const memories = kept.get(request)
  if (memories === undefined) return
  kept.delete(request)
  for (const memory of memories) giveKeptMemory(memory)
}

/**
 * Reads a body of at most the route's body limit into memory of its own, `lead` bytes in: into one
 * buffer of the Content-Length when there is one, else into chunks joined at the end. A body that
 * is `kept` goes into memory that a kernel worker can read in place (shared, when large).
 */
function readBody (request: FastifyRequest, payload: NodeJS.ReadableStream, lead: number, kept: boolean, done: (err: Error | null, body?: Buffer) => void): void {
  const limit = request.routeOptions.bodyLimit ?? Infinity
  const declared = Number(request.headers['content-length'])
  if (declared > limit) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())
  const known = Number.isSafeInteger(declared) && declared >= 0
  // exactly the declared length, uninitialised: every byte is written before the body is used
  const memoryOf = (size: number): Buffer => {
    const memory = kept ? takeKeptMemory(size) : takeMemory(size)
    // an ArrayBuffer holding only this body moves to a kernel worker with the views into it
    if (memory instanceof ArrayBuffer) ownMemory(memory)
    return Buffer.from(memory, 0, size)
  }
  const memory = known ? memoryOf(lead + declared) : undefined
  const chunks: Buffer[] = []
  let received = 0

  const stop = (): void => {
    payload.removeListener('data', onData)
    payload.removeListener('end', onEnd)
    payload.removeListener('error', onEnd)
    payload.removeListener('close', onClose)
  }
  // a body that never completes gives its memory back (shared memory, above all, is never
  // left to the garbage collector: see body-memory.ts)
  const fail = (err: Error): void => {
    stop()
    if (memory !== undefined) giveBack(memory.buffer, kept)
    done(err)
  }
  function onData (chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (received + bytes.length > limit) return fail(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())
    if (memory !== undefined && received + bytes.length <= declared) copyBytes(bytes, memory, lead + received)
    else if (memory === undefined) chunks.push(bytes)
    received += bytes.length
  }
  function onEnd (err?: Error & { statusCode?: number }): void {
    if (err != null) {
      if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400
      return fail(err)
    }
    if (known && received !== declared) return fail(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH())
    stop()
    if (memory !== undefined) return done(null, memory.subarray(lead))
    const joined = memoryOf(lead + received)
    let at = lead
    for (const c of chunks) at += c.copy(joined, at)
    done(null, joined.subarray(lead))
  }
  // closed before its end, with no error to say so: the client went away
  function onClose (): void {
    fail(Object.assign(new Error('body: the connection closed before the body ended'), { statusCode: 400 }))
  }
  payload.on('data', onData)
  payload.on('end', onEnd)
  payload.on('error', onEnd)
  payload.on('close', onClose)
  payload.resume()
}

import { type IncomingMessage } from 'node:http'

/**
 * Most bytes of a refused body read (and dropped) before its error answer, when the route's
 * body limit is lower. Past it the answer goes out at once and the connection is closed.
 */
export const DISCARD_LIMIT_BYTES = 64 * 2 ** 20

/**
 * Longest wait for the next byte of a refused body. A client that stops sending (a chunked body
 * declares no length to give up on) then gets its answer, and the connection is closed, instead
 * of waiting for the upload's own stall or receive timeout (408) to end it.
 */
export const DISCARD_IDLE_MS = 1000

/**
 * Reads and drops the rest of a request's body, so that an answer given before the body was
 * read (413, 415) reaches a client that is still sending it: most clients (Node's http,
 * Python's http.client) write the whole body before they read, and a connection closed under
 * them reports a broken pipe instead of the answer. Nothing is kept, so memory stays flat.
 * Resolves true once the body has ended, false (at once) when Content-Length announces more
 * than `maxBytes`, when more than `maxBytes` arrive, when no byte comes for `idleMs`, or when
 * the client goes away.
 */
export async function discardBody (raw: IncomingMessage, maxBytes: number, idleMs = DISCARD_IDLE_MS): Promise<boolean> {
  if (raw.readableEnded) return true
  if (raw.destroyed || Number(raw.headers['content-length']) > maxBytes) return false
  // a preParsing stream (a decompressor) stops getting the body: it is not read any more
  raw.unpipe()
  return await new Promise(resolve => {
    let received = 0
    const idle = setTimeout(() => { finish(false) }, idleMs)
    const finish = (ended: boolean): void => {
      clearTimeout(idle)
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('close', onGone)
      raw.off('error', onGone)
      if (!ended) raw.pause()
      resolve(ended)
    }
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      if (received > maxBytes) finish(false)
      else idle.refresh()
    }
    const onEnd = (): void => { finish(true) }
    const onGone = (): void => { finish(false) }
    raw.on('data', onData)
    raw.once('end', onEnd)
    raw.once('close', onGone)
    raw.once('error', onGone)
    raw.resume()
  })
}

import { type IncomingMessage } from 'node:http'

/**
 * Most bytes of a refused body read (and dropped) before its error answer, when the route's
 * body limit is lower. Past it the answer goes out at once and the connection is closed.
 */
export const DISCARD_LIMIT_BYTES = 64 * 2 ** 20

/**
 * Reads and drops the rest of a request's body, so that an answer given before the body was
 * read (413, 415) reaches a client that is still sending it: most clients (Node's http,
 * Python's http.client) write the whole body before they read, and a connection closed under
 * them reports a broken pipe instead of the answer. Nothing is kept, so memory stays flat.
 * Resolves true once the body has ended, false (at once) when Content-Length announces more
 * than `maxBytes`, when more than `maxBytes` arrive, or when the client goes away.
 */
export async function discardBody (raw: IncomingMessage, maxBytes: number): Promise<boolean> {
  if (raw.readableEnded) return true
  if (raw.destroyed || Number(raw.headers['content-length']) > maxBytes) return false
  // a preParsing stream (a decompressor) stops getting the body: it is not read any more
  raw.unpipe()
  return await new Promise(resolve => {
    let received = 0
    const finish = (ended: boolean): void => {
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

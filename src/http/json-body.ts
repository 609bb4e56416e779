import { type FastifyInstance, type FastifyRequest } from 'fastify'
import { fail } from '../errors'

/**
 * Deepest nesting of arrays and objects a body may have. A tensor is at most 8 deep, inside a
 * few levels of request object; without a bound, a body of 10^5 nested brackets sends the
 * schema validator's recursion past the stack.
 */
export const MAX_JSON_DEPTH = 32

/** Parses a JSON body and refuses one nested deeper than `MAX_JSON_DEPTH`, before anything recurses over it. */
export function parseJsonBody (text: string): unknown {
  if (text.length === 0) fail('INVALID_JSON', 'body: empty; expected a JSON object')
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    fail('INVALID_JSON', `body: ${(err as Error).message}`)
  }
  checkDepth(body)
  return body
}

/** Walks the value without recursion (an explicit stack of containers and their depths). */
function checkDepth (root: unknown): void {
  const stack: Array<[unknown, number]> = [[root, 0]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number]
    if (typeof node !== 'object' || node === null) continue
    if (depth >= MAX_JSON_DEPTH) fail('INVALID_JSON', `body: nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects (a tensor has at most 8 dims)`)
    const items = Array.isArray(node) ? node : Object.values(node)
    for (const child of items) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
  }
}

/** Installs the JSON parser on `app` (replacing Fastify's), keeping its body limit. */
export function jsonBodyParser (app: FastifyInstance): void {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request: FastifyRequest, text: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
    try {
      done(null, parseJsonBody(typeof text === 'string' ? text : text.toString('utf8')))
    } catch (err) {
      done(err as Error)
    }
  })
}

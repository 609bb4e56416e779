import { type FastifyReply, type FastifyRequest } from 'fastify'
import { fail } from '../errors'

/**
 * Refuses a compressed request body with 415, the Accept-Encoding answer header saying
 * identity (RFC 7694), before any of it is read: a Content-Encoding other than identity, or a
 * Transfer-Encoding other than chunked (Node would read a `gzip, chunked` body as if it were
 * not compressed). Bodies are taken uncompressed: the fast path for large tensors is base64 of
 * float bytes, which gzip barely shrinks, and every decompressed byte would be event-loop work
 * and a zip-bomb risk. A Fastify `preParsing` hook.
 */
export async function refuseContentEncoding (request: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
  if (!hasBody(request)) return payload
  const content = request.headers['content-encoding']
  const transfer = request.headers['transfer-encoding']
  if (content !== undefined && codings(content, 'identity').length > 0) {
    void reply.header('accept-encoding', 'identity')
    fail('UNSUPPORTED_MEDIA_TYPE', `content-encoding: ${JSON.stringify(content)} is not supported; send the body uncompressed (identity)`)
  }
  if (transfer !== undefined && codings(transfer, 'chunked').length > 0) {
    void reply.header('accept-encoding', 'identity')
    fail('UNSUPPORTED_MEDIA_TYPE', `transfer-encoding: ${JSON.stringify(transfer)} is not supported; send the body uncompressed (chunked, or with a Content-Length)`)
  }
  return payload
}

/** The codings a header lists, but `plain` (the one that leaves the bytes as they are). */
function codings (header: string, plain: string): string[] {
  return header.split(',').map(c => c.trim().toLowerCase()).filter(c => c !== '' && c !== plain)
}

function hasBody (request: FastifyRequest): boolean {
  return request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0
}

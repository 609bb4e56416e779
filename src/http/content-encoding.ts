import { type FastifyReply, type FastifyRequest } from 'fastify'
import { fail } from '../errors'

/**
 * Refuses a compressed request body (a Content-Encoding other than identity) with 415, the
 * Accept-Encoding answer header saying identity (RFC 7694), before any of it is read. Bodies
 * are taken uncompressed: the fast path for large tensors is base64 of float bytes, which gzip
 * barely shrinks, and every decompressed byte would be event-loop work and a zip-bomb risk.
 * A Fastify `preParsing` hook.
 */
export async function refuseContentEncoding (request: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> {
  const coding = request.headers['content-encoding']
  if (coding === undefined || !hasBody(request)) return payload
  const codings = coding.split(',').map(c => c.trim().toLowerCase()).filter(c => c !== '' && c !== 'identity')
  if (codings.length === 0) return payload
  void reply.header('accept-encoding', 'identity')
  fail('UNSUPPORTED_MEDIA_TYPE', `content-encoding: ${JSON.stringify(coding)} is not supported; send the body uncompressed (identity)`)
}

function hasBody (request: FastifyRequest): boolean {
  return request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0
}

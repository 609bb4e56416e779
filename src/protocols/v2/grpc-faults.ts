import type http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { LosshubError } from '../../errors'

/** A gRPC message's prefix: a compressed flag, then its length (4 bytes, big-endian). */
export const PREFIX_BYTES = 5

/** The message encodings grpc-js reads, as its grpc-accept-encoding says. */
export const ACCEPTED_ENCODINGS = ['identity', 'deflate', 'gzip']

/** A call as far as it has come: its RPC's name, its headers, and its request's bytes so far (`got`; `message`: the first message's, once its prefix is in). */
export interface CallSoFar {
  rpc: string
  headers: http2.IncomingHttpHeaders
  arrived: () => { got: number, message: number }
}

/**
 * What a client did wrong, by grpc-js's answer: grpc-js (1.14) answers some mistakes of the
 * client's itself, before any handler runs, without a losshub-code, logging or counting them,
 * two of them INTERNAL, as grpc-go does. Those answers (recognised by status and message) become
 * the API's: INVALID_REQUEST, PAYLOAD_TOO_LARGE or (a message compressed in an encoding not read,
 * UNIMPLEMENTED as gRPC asks) UNSUPPORTED_MEDIA_TYPE, with a message naming what was wrong.
 * Undefined for anything else.
 */
export function clientFault (status: number, encodedMessage: string, { rpc, headers, arrived }: CallSoFar): LosshubError | undefined {
  let message: string
  try {
    message = decodeURI(encodedMessage)
  } catch {
    return undefined
  }
  const invalid = (text: string): LosshubError => new LosshubError('INVALID_REQUEST', text)
  if (status === grpc.status.INTERNAL) {
    if (message.startsWith('Invalid grpc-timeout value')) return invalid(`grpc-timeout: ${JSON.stringify(String(headers['grpc-timeout']))} is not a timeout (1 to 8 digits, then a unit: H, M, S, m, u or n)`)
    if (message === 'Failed to decompress message') return invalid(`request: the message is flagged compressed (grpc-encoding ${String(headers['grpc-encoding'])}) but does not decompress`)
  } else if (status === grpc.status.UNIMPLEMENTED) {
    if (message.startsWith('Received no request message')) {
      const { got, message } = arrived()
      if (got === 0) return invalid(`request: no request message; ${rpc} takes exactly one`)
      return invalid(`request: the stream ended after ${got} bytes, ${message === Infinity ? `inside the message's ${PREFIX_BYTES}-byte prefix` : `short of the ${message} its message takes (its ${PREFIX_BYTES}-byte prefix included)`}`)
    }
    if (message.startsWith('Received a second request message')) return invalid(`request: a second request message; ${rpc} takes exactly one`)
    if (message.startsWith('Received message compressed with unsupported encoding')) return new LosshubError('UNSUPPORTED_MEDIA_TYPE', `grpc-encoding: ${JSON.stringify(String(headers['grpc-encoding']))} is not supported; compress with ${ACCEPTED_ENCODINGS.filter(e => e !== 'identity').join(' or ')}, or not at all`)
  } else if (status === grpc.status.RESOURCE_EXHAUSTED) {
    const larger = /^Received message larger than max \((\d+) vs\.? (\d+)\)$/.exec(message)
    if (larger !== null) return new LosshubError('PAYLOAD_TOO_LARGE', `request: a message of ${larger[1]} bytes is more than the ${larger[2]} that BODY_LIMIT_MB allows`)
    const inflated = /^Received message that decompresses to a size larger than (\d+)$/.exec(message)
    if (inflated !== null) return new LosshubError('PAYLOAD_TOO_LARGE', `request: the message decompresses to more than the ${inflated[1]} bytes that BODY_LIMIT_MB allows`)
  }
  return undefined
}

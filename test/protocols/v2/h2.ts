/**
 * Raw HTTP/2 streams to the gRPC server, for tests that send a message in parts, or not at all,
 * or with headers a generated client would not send.
 */
import http2 from 'node:http2'
import { type Test } from 'tap'
import { type grpcApp } from './grpc'

export const MiB = 2 ** 20

/**
 * A raw stream (ModelInfer unless `path` says) whose message announces `bytes` and sends the
 * first `send` of them (zeros: a message that names no model), compressed if `flag` is 1.
 */
export function announce (session: http2.ClientHttp2Session, bytes: number, send: number, path = '/inference.GRPCInferenceService/ModelInfer', flag = 0): http2.ClientHttp2Stream {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...(flag === 1 ? { 'grpc-encoding': 'gzip' } : {}) })
  const prefix = Buffer.alloc(5)
  prefix.writeUInt8(flag, 0)
  prefix.writeUInt32BE(bytes, 1)
  stream.write(Buffer.concat([prefix, Buffer.alloc(send)]))
  return stream
}

/** A raw ModelInfer stream sending `message` whole, with the compressed flag `flag`, and `headers`. */
export function send (session: http2.ClientHttp2Session, message: Buffer, flag: number, headers: http2.OutgoingHttpHeaders = {}): http2.ClientHttp2Stream {
  const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers', ...headers })
  const prefix = Buffer.alloc(5)
  prefix.writeUInt8(flag, 0)
  prefix.writeUInt32BE(message.length, 1)
  stream.end(Buffer.concat([prefix, message]))
  return stream
}

/** The gRPC status of a stream's answer: from its headers (trailers-only) or its trailers. */
export async function statusOf (stream: http2.ClientHttp2Stream): Promise<http2.IncomingHttpHeaders> {
  return await new Promise(resolve => {
    stream.once('response', headers => { if (headers['grpc-status'] !== undefined) resolve(headers) })
    stream.once('trailers', resolve)
    stream.resume()
  })
}

/** A session to `port`, closed when the test ends. */
export function connect (t: Test, port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`)
  session.on('error', () => {}) // the streams' own outcomes are what the tests check
  t.teardown(() => session.destroy())
  return session
}

/** The losshub_large_body_bytes gauge, by state. */
export async function largeBodies (app: Awaited<ReturnType<typeof grpcApp>>['app']): Promise<{ inProgress: number, waiting: number }> {
  const text = (await app.inject('/metrics')).body
  const gauge = (state: string): number => Number(new RegExp(`^losshub_large_body_bytes\\{state="${state}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN)
  return { inProgress: gauge('in_progress'), waiting: gauge('waiting') }
}

/** Polls `read` until `done` holds of its value (at most 5 s); returns the last value. */
export async function until<T> (read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  let v = await read()
  for (const end = Date.now() + 5000; !done(v) && Date.now() < end; v = await read()) await new Promise(resolve => setTimeout(resolve, 20))
  return v
}

/** A protobuf varint. */
export function varint (n: number): Buffer {
  const bytes: number[] = []
  for (; n >= 128; n = Math.floor(n / 128)) bytes.push((n % 128) | 128)
  bytes.push(n)
  return Buffer.from(bytes)
}

/** A message as it travels: its 5-byte prefix (not compressed), then its bytes. */
export function framed (message: Buffer): Buffer {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

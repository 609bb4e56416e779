/**
 * grpc-js's own answers to a client's mistakes, given the API's codes
 * (src/protocols/v2/grpc-faults.ts), driven with raw HTTP/2 streams.
 */
import zlib from 'node:zlib'
import type http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { LOSSES } from '../../../src/losses'
import { grpcApp, loadPackage, typedInput } from './grpc'
import { announce, connect, framed, send, statusOf } from './h2'
import { NO_SHEDDING } from './v2'

const MSE = { losses: LOSSES.filter(d => d.name === 'mse') }

t.test('client mistakes grpc-js answers INTERNAL (a bad grpc-timeout, a message that does not decompress): INVALID_ARGUMENT with INVALID_REQUEST', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const request = serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [2], data: [1, 2] }), typedInput('target', { dtype: 'float32', shape: [2], data: [0, 0] })] })
  const cases: Array<[string, Buffer, number, http2.OutgoingHttpHeaders, string]> = [
    ['gzip flag, bytes not gzip', Buffer.from('not gzip'), 1, { 'grpc-encoding': 'gzip' }, 'INVALID_REQUEST: request: the message is flagged compressed (grpc-encoding gzip) but does not decompress'],
    ['deflate flag, bytes not deflate', Buffer.from('not deflate'), 1, { 'grpc-encoding': 'deflate' }, 'INVALID_REQUEST: request: the message is flagged compressed (grpc-encoding deflate) but does not decompress'],
    ['grpc-timeout "xyz"', request, 0, { 'grpc-timeout': 'xyz' }, 'INVALID_REQUEST: grpc-timeout: "xyz" is not a timeout (1 to 8 digits, then a unit: H, M, S, m, u or n)'],
    // grpc-js itself would read 8 of the digits, and the first timeout of the second
    ['grpc-timeout of 11 digits', request, 0, { 'grpc-timeout': '99999999999S' }, 'INVALID_REQUEST: grpc-timeout: "99999999999S" is not a timeout (1 to 8 digits, then a unit: H, M, S, m, u or n)'],
    ['grpc-timeout with more after it', request, 0, { 'grpc-timeout': '5S,x' }, 'INVALID_REQUEST: grpc-timeout: "5S,x" is not a timeout (1 to 8 digits, then a unit: H, M, S, m, u or n)']
  ]
  for (const [name, message, flag, headers, expected] of cases) {
    const answer = await statusOf(send(session, message, flag, headers))
    t.equal(answer['grpc-status'], String(grpc.status.INVALID_ARGUMENT), name)
    t.equal(answer['losshub-code'], 'INVALID_REQUEST', name)
    t.equal(decodeURI(String(answer['grpc-message'])), expected, name)
  }
  // the same request gzipped, and with a readable timeout, is served: (1^2 + 2^2) / 2
  const fine = await statusOf(send(session, zlib.gzipSync(request), 1, { 'grpc-encoding': 'gzip', 'grpc-timeout': '10S' }))
  t.equal(fine['grpc-status'], '0', 'a gzipped message that decompresses is served')
  t.match((await s.app.inject('/metrics')).body, /^losshub_requests_total\{protocol="grpc",loss="unknown",status="400"\} 5$/m, 'counted as 400s')
})

t.test('a deadline past the reach of a timer (2^31 ms, about 24.8 days) is no deadline, not one passed at once', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const request = serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [2], data: [1, 2] }), typedInput('target', { dtype: 'float32', shape: [2], data: [0, 0] })] })
  // 30 days as grpc-go writes it; 25 days in hours; 99,999,999 hours, the longest gRPC can say
  for (const timeout of ['2592000S', '600H', '99999999H']) {
    const answer = await statusOf(send(session, request, 0, { 'grpc-timeout': timeout }))
    t.equal(answer['grpc-status'], '0', `grpc-timeout ${timeout}: served`)
  }
  // a deadline a timer can reach still passes
  const passed = await statusOf(send(session, request, 0, { 'grpc-timeout': '1n' }))
  t.equal(passed['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED), 'grpc-timeout 1n: DEADLINE_EXCEEDED')
})

t.test('a message compressed in an encoding grpc-js does not read: UNIMPLEMENTED, as gRPC asks, with UNSUPPORTED_MEDIA_TYPE and the encodings read', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const answer = await statusOf(send(session, Buffer.from('brotli bytes'), 1, { 'grpc-encoding': 'br' }))
  t.equal(answer['grpc-status'], String(grpc.status.UNIMPLEMENTED))
  t.equal(answer['losshub-code'], 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(decodeURI(String(answer['grpc-message'])), 'UNSUPPORTED_MEDIA_TYPE: grpc-encoding: "br" is not supported; compress with deflate or gzip, or not at all')
  t.equal(answer['grpc-accept-encoding'], 'identity,deflate,gzip')
})

t.test('grpc-js\'s answers to a stream with no message, one that ends short, or a message over the limit get the API\'s codes', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const request: Buffer = serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [1] }), typedInput('target', { dtype: 'float32', shape: [1], data: [0] })] })
  const cases: Array<[string, Buffer, string]> = [
    ['no message', Buffer.alloc(0), 'INVALID_REQUEST: request: no request message; ModelInfer takes exactly one'],
    ['half a prefix', Buffer.from([0, 0, 0]), 'INVALID_REQUEST: request: the stream ended after 3 bytes, inside the message\'s 5-byte prefix'],
    ['half a message', framed(request).subarray(0, 10), `INVALID_REQUEST: request: the stream ended after 10 bytes, short of the ${request.length + 5} its message takes (its 5-byte prefix included)`]
  ]
  for (const [name, bytes, expected] of cases) {
    const stream = session.request({ ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers' })
    stream.end(bytes)
    const answer = await statusOf(stream)
    t.equal(answer['grpc-status'], String(grpc.status.INVALID_ARGUMENT), name)
    t.equal(answer['losshub-code'], 'INVALID_REQUEST', name)
    t.equal(decodeURI(String(answer['grpc-message'])), expected, name)
  }
  const over = await statusOf(announce(session, 0xffffffff, 0))
  t.equal(over['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED))
  t.equal(over['losshub-code'], 'PAYLOAD_TOO_LARGE')
  t.equal(decodeURI(String(over['grpc-message'])), 'PAYLOAD_TOO_LARGE: request: a message of 4294967295 bytes is more than the 67108864 that BODY_LIMIT_MB allows')
  t.match((await s.app.inject('/metrics')).body, /^losshub_requests_total\{protocol="grpc",loss="unknown",status="400"\} 3$/m, 'logged and counted as the call would be')
})

t.test('a compressed flag that says nothing grpc-js reads: past 1, or 1 without an encoding, is INVALID_REQUEST', async t => {
  const s = await grpcApp(t, NO_SHEDDING, MSE)
  const session = connect(t, s.port)
  const serialize = loadPackage().inference.GRPCInferenceService.service.ModelInfer.requestSerialize
  const request: Buffer = serialize({ model_name: 'mse', inputs: [typedInput('input', { dtype: 'float32', shape: [1], data: [1] }), typedInput('target', { dtype: 'float32', shape: [1], data: [0] })] })
  const cases: Array<[string, Buffer, number, http2.OutgoingHttpHeaders, string]> = [
    ['flag 2', request, 2, {}, 'INVALID_REQUEST: request: the message\'s compressed flag is 2; gRPC has 0 (not compressed) and 1 (compressed as grpc-encoding says)'],
    ['flag 1, no grpc-encoding', zlib.gzipSync(request), 1, {}, 'INVALID_REQUEST: request: the message is flagged compressed, but grpc-encoding is identity or absent: name its encoding (gzip or deflate), or send it uncompressed with flag 0'],
    ['flag 1, grpc-encoding identity', zlib.gzipSync(request), 1, { 'grpc-encoding': 'identity' }, 'INVALID_REQUEST: request: the message is flagged compressed, but grpc-encoding is identity or absent: name its encoding (gzip or deflate), or send it uncompressed with flag 0']
  ]
  for (const [name, message, flag, headers, expected] of cases) {
    const answer = await statusOf(send(session, message, flag, headers))
    t.equal(answer['grpc-status'], String(grpc.status.INVALID_ARGUMENT), name)
    t.equal(answer['losshub-code'], 'INVALID_REQUEST', name)
    t.equal(decodeURI(String(answer['grpc-message'])), expected, name)
  }
  const fine = await statusOf(send(session, request, 0, { 'grpc-encoding': 'identity' }))
  t.equal(fine['grpc-status'], '0', 'flag 0 with identity is served')
})

/** refusingUndecodable: a request that does not decode goes to `refuse`, never to the handler; one that does, to the handler. */
import type * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { refusingUndecodable, UndecodableRequest } from '../../../src/protocols/v2/grpc-decoding'

const method = (responseStream: boolean): grpc.MethodDefinition<unknown, unknown> => ({
  path: '/x',
  requestStream: false,
  responseStream,
  requestSerialize: () => Buffer.alloc(0),
  requestDeserialize: (bytes: Buffer) => {
    if (bytes[0] !== 1) throw new Error(`bad byte ${bytes[0]}`)
    return { fine: true }
  },
  responseSerialize: () => Buffer.alloc(0),
  responseDeserialize: () => ({})
})

t.test('decoding never throws; a message that fails is refused with what refuse says, unary or streaming', async t => {
  const handled: unknown[] = []
  const refused: UndecodableRequest[] = []
  const error = Object.assign(new Error('no'), { code: 3, details: 'no', metadata: undefined as unknown as grpc.Metadata })
  const { definition, handlers } = refusingUndecodable(
    { Unary: method(false), Stream: method(true) },
    { Unary: (call: { request: unknown }) => { handled.push(call.request) }, Stream: (call: { request: unknown }) => { handled.push(call.request) } },
    r => { refused.push(r); return error }
  )
  const bad = definition.Unary.requestDeserialize(Buffer.from([7]))
  t.ok(bad instanceof UndecodableRequest)
  t.same([(bad as UndecodableRequest).method, (bad as UndecodableRequest).reason], ['Unary', 'bad byte 7'], 'the method and the decoder\'s reason')
  t.same(definition.Stream.requestDeserialize(Buffer.from([1])), { fine: true }, 'a good message decodes as before')

  const answers: unknown[] = []
  const unary = handlers.Unary as (call: object, callback: (err: unknown) => void) => void
  unary({ request: bad }, err => answers.push(err))
  unary({ request: { fine: true } }, err => answers.push(err))
  const emitted: unknown[] = []
  const stream = handlers.Stream as (call: object) => void
  stream({ request: definition.Stream.requestDeserialize(Buffer.from([0])), emit: (event: string, err: unknown) => emitted.push([event, err]) })
  t.same(answers, [error], 'unary: the callback gets refuse\'s error; the handler is not called')
  t.same(emitted, [['error', error]], 'streaming: the stream ends with it')
  t.same(handled, [{ fine: true }], 'only the good message reached a handler')
  t.same(refused.map(r => r.method), ['Unary', 'Stream'])
})

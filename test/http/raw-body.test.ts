import t from 'tap'
import Fastify from 'fastify'
import { Readable } from 'node:stream'
import { addBufferParser } from '../../src/http/raw-body'
import { isOwnMemory } from '../../src/tensor/tensor'

/** An app whose one route answers what the parser saw of the body. */
async function app (lead: number): Promise<ReturnType<typeof Fastify>> {
  const a = Fastify({ bodyLimit: 1000 })
  a.removeAllContentTypeParsers()
  addBufferParser(a, 'application/octet-stream', (_request, body) => ({
    text: body.toString('latin1'),
    offset: body.byteOffset,
    own: isOwnMemory(body.buffer),
    spare: body.buffer.byteLength - body.byteOffset - body.length
  }), () => lead)
  a.post('/', async request => request.body)
  await a.ready()
  return a
}

t.test('the body arrives whole, `lead` bytes into memory of its own, with or without a length', async t => {
  const a = await app(3)
  t.teardown(async () => await a.close())
  const headers = { 'content-type': 'application/octet-stream' }
  const sized = await a.inject({ method: 'POST', url: '/', headers, payload: Buffer.from('hello, tensors') })
  t.same(sized.json(), { text: 'hello, tensors', offset: 3, own: true, spare: 0 })
  // a stream with no Content-Length arrives in chunks, joined once at the end
  const chunked = await a.inject({ method: 'POST', url: '/', headers, payload: Readable.from([Buffer.from('in '), Buffer.from('three '), Buffer.from('parts')]) })
  t.same(chunked.json(), { text: 'in three parts', offset: 3, own: true, spare: 0 })
})

t.test('Fastify\'s limit and errors: 413 past the body limit (declared or not), 400 for a short body', async t => {
  const a = await app(0)
  t.teardown(async () => await a.close())
  const headers = { 'content-type': 'application/octet-stream' }
  const declared = await a.inject({ method: 'POST', url: '/', headers, payload: Buffer.alloc(1001) })
  t.equal(declared.statusCode, 413)
  t.equal(declared.json().code, 'FST_ERR_CTP_BODY_TOO_LARGE')
  const streamed = await a.inject({ method: 'POST', url: '/', headers, payload: Readable.from([Buffer.alloc(600), Buffer.alloc(600)]) })
  t.equal(streamed.statusCode, 413, 'counted as it arrives when no length is declared')
  const short = await a.inject({ method: 'POST', url: '/', headers: { ...headers, 'content-length': '10' }, payload: Readable.from([Buffer.from('abc')]) })
  t.equal(short.statusCode, 400)
  t.equal(short.json().code, 'FST_ERR_CTP_INVALID_CONTENT_LENGTH')
})

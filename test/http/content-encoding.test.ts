/**
 * Bodies are taken uncompressed: a Content-Encoding other than identity gets 415
 * UNSUPPORTED_MEDIA_TYPE, with Accept-Encoding: identity (RFC 7694), before any of the body is
 * read or decompressed; so a zip bomb costs nothing.
 */
import http from 'node:http'
import zlib from 'node:zlib'
import t from 'tap'
import { build, listening } from '../helpers/app'
import { startServer, waitReady } from '../helpers/server'

const json = JSON.stringify({ input: [3], target: [1] })

t.test('compressed bodies get 415 naming the encoding; identity is taken', async t => {
  const app = await build(t)
  const cases: Array<[string, Buffer]> = [
    ['gzip', zlib.gzipSync(json)],
    ['deflate', zlib.deflateSync(json)],
    ['br', zlib.brotliCompressSync(json)],
    ['GZIP', zlib.gzipSync(json)],
    ['gzip, identity', zlib.gzipSync(json)]
  ]
  for (const [coding, payload] of cases) {
    const r = await app.inject({ method: 'POST', url: '/loss/mse', headers: { 'content-type': 'application/json', 'content-encoding': coding }, payload })
    t.equal(r.statusCode, 415, `${coding}: 415`)
    t.same(r.json(), {
      statusCode: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      error: 'Unsupported Media Type',
      message: `content-encoding: ${JSON.stringify(coding)} is not supported; send the body uncompressed (identity)`
    })
    t.equal(r.headers['accept-encoding'], 'identity', `${coding}: Accept-Encoding says what is taken`)
  }
  for (const coding of ['identity', 'Identity', '']) {
    const r = await app.inject({ method: 'POST', url: '/loss/mse', headers: { 'content-type': 'application/json', 'content-encoding': coding }, payload: json })
    t.same([r.statusCode, r.json()], [200, { loss: 4 }], `"${coding}": taken, (3 - 1)^2`)
  }
  const unknown = await app.inject({ method: 'POST', url: '/loss/focal_loss_v9', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: zlib.gzipSync(json) })
  t.equal(unknown.statusCode, 415, 'on every POST route')
  const probe = await app.inject({ method: 'GET', url: '/healthz', headers: { 'content-encoding': 'gzip' } })
  t.equal(probe.statusCode, 200, 'a request without a body is not concerned')
})

t.test('a zip bomb gets 415 at once from a real server, nothing decompressed', async t => {
  const server = await startServer(t, { BODY_LIMIT_MB: '1', KERNEL_WORKERS: '0' })
  await waitReady(server.url)
  // 256 MiB of zeros in a 256 KiB gzip body, under BODY_LIMIT_MB compressed
  const bomb = zlib.gzipSync(Buffer.alloc(256 * 2 ** 20), { level: 9 })
  t.ok(bomb.length < 2 ** 20, `${bomb.length} bytes compressed`)
  const r = await new Promise<{ status?: number, body: any }>((resolve, reject) => {
    const req = http.request(`${server.url}/loss/mse`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': bomb.length } }, res => {
      let text = ''
      res.on('data', c => { text += String(c) })
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(bomb)
  })
  t.equal(r.status, 415)
  t.equal(r.body.code, 'UNSUPPORTED_MEDIA_TYPE')
  // the server still serves
  const ok = await fetch(`${server.url}/loss/mse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: json })
  t.same(await ok.json(), { loss: 4 })
})

t.test('a transfer coding other than chunked gets 415 naming it; chunked alone is taken', async t => {
  const { port } = await listening(t)
  const send = async (coding: string): Promise<{ status: number, body: any }> => await new Promise((resolve, reject) => {
    // http.request frames the body in chunks itself; the header names the codings the client claims
    const req = http.request({ port, host: '127.0.0.1', path: '/loss/mse', method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': coding } }, res => {
      let text = ''
      res.on('data', c => { text += String(c) })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(json)
  })
  const gz = await send('gzip, chunked')
  t.equal(gz.status, 415)
  t.equal(gz.body.code, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(gz.body.message, 'transfer-encoding: "gzip, chunked" is not supported; send the body uncompressed (chunked, or with a Content-Length)')
  t.same(await send('chunked'), { status: 200, body: { loss: 4 } }, 'chunked: taken, (3 - 1)^2')
})

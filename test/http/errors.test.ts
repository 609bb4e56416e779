import net from 'node:net'
import t from 'tap'
import { build } from '../helpers/app'

/**
 * The error handler (src/http/errors.ts) and the connection: a request refused once its whole
 * body was read leaves its keep-alive connection open for the requests behind it.
 */

/** Writes `requests` on one connection; resolves with the status lines of every answer before it closed. */
async function pipelined (port: number, requests: string[]): Promise<string[]> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(requests.join('')))
    let got = ''
    socket.on('data', (c: Buffer) => { got += c.toString('latin1') })
    socket.on('close', () => resolve(got))
    socket.on('error', reject)
  })
  return text.match(/HTTP\/1\.1 \d+/g) ?? []
}

const post = (url: string, type: string, body: string): string =>
  `POST ${url} HTTP/1.1\r\nhost: x\r\ncontent-type: ${type}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
const last = 'GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'

t.test('a body refused once read whole (bad JSON, a ragged tensor, a V2 415) keeps the connection for the requests pipelined behind it', async t => {
  const app = await build(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const cases: Array<[string, string, number]> = [
    ['malformed JSON', post('/loss/mse', 'application/json', '{bad'), 400],
    ['a ragged tensor', post('/loss/mse', 'application/json', '{"input":[[1],[1,2]],"target":[1]}'), 400],
    ['V2 with a content type it does not read', post('/v2/models/mse/infer', 'text/plain', '{}'), 415],
    ['a missing field', post('/loss/mse', 'application/json', '{"input":[1]}'), 400]
  ]
  for (const [name, first, status] of cases) {
    const answers = await pipelined(port, [first, 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n', last])
    t.same(answers, [`HTTP/1.1 ${status}`, 'HTTP/1.1 200', 'HTTP/1.1 200'], name)
  }
})

import net from 'node:net'
import * as grpc from '@grpc/grpc-js'
import t from 'tap'
import { MAX_MESSAGE } from '../../src/errors'
import { LOSSES } from '../../src/losses'
import { build, listening } from '../helpers/app'
import { grpcApp } from '../protocols/v2/grpc'

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
  const { port } = await listening(t)
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

t.test('a message that echoes a huge input is cut to MAX_MESSAGE with the code, saying so, over /loss and V2 alike', async t => {
  const app = await build(t)
  const field = 'q'.repeat(100_000)
  const note = /\.\.\. \(\d+ more characters\)$/
  // POST /loss: a 100 KB unknown field name
  const loss = await app.inject({ method: 'POST', url: '/loss/mse', payload: { input: [1], target: [1], [field]: 1 } })
  t.equal(loss.statusCode, 400)
  const body = loss.json()
  t.equal(body.code, 'INVALID_REQUEST')
  t.ok(`${body.code as string}: ${body.message as string}`.length <= MAX_MESSAGE, `message of ${(body.message as string).length} characters`)
  t.ok((body.message as string).startsWith('q'.repeat(1900)), 'it begins with the field')
  t.match(body.message, note)
  t.ok(loss.body.length < 2 * MAX_MESSAGE, `a body of ${loss.body.length} bytes`)
  // the 100,052 characters of "<field>: unknown field" less the 1,973 kept
  t.equal(Number(/\((\d+) more/.exec(body.message)?.[1]), field.length + ': unknown field'.length - (body.message as string).indexOf('...'))
  // V2: a 100 KB input name, the protocol's error carrying the code in front
  const v2 = await app.inject({ method: 'POST', url: '/v2/models/mse/infer', payload: { inputs: [{ name: field, datatype: 'FP32', shape: [1], data: [1] }] } })
  t.equal(v2.statusCode, 400)
  const error = v2.json().error as string
  t.equal(v2.json().code, 'INVALID_REQUEST')
  t.ok(error.length <= MAX_MESSAGE, `error of ${error.length} characters`)
  t.ok(error.startsWith(`INVALID_REQUEST: inputs[0]: mse has no input '${'q'.repeat(1800)}`), error.slice(0, 80))
  t.match(error, note)
  // a short message is whole
  const short = await app.inject({ method: 'POST', url: '/loss/mse', payload: { input: [1], target: [1], gamma: 1 } })
  t.equal(short.json().message, 'gamma: unknown field')
  // an unknown route echoes its URL: cut as well
  const route = await app.inject({ method: 'GET', url: `/${'r'.repeat(10_000)}` })
  t.equal(route.statusCode, 404)
  t.ok(`NOT_FOUND: ${route.json().message as string}`.length <= MAX_MESSAGE)
  t.match(route.json().message, note)
})

t.test('a non-finite number where a number goes (1e400 in JSON, a gRPC double NaN) is refused as one, naming the field, on every path', async t => {
  const s = await grpcApp(t, {}, { losses: LOSSES.filter(d => ['mse', 'huber', 'cross_entropy'].includes(d.name)) })
  const post = async (url: string, json: string): Promise<{ status: number, body: any }> => {
    const r = await s.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: json })
    return { status: r.statusCode, body: r.json() }
  }
  const finite = (field: string, got: string, type = 'number'): string => `${field}: must be a finite ${type}, got ${got}`
  const pair = '"input":[1.0,2.0],"target":[1.5,2.5]'
  const cases: Array<[string, string, string, string]> = [
    ['/loss: an option', '/loss/huber', `{${pair},"delta":1e400}`, finite('delta', 'Infinity')],
    ['/loss: an integer option', '/loss/cross_entropy', '{"input":[[1,2]],"target":[0],"ignore_index":-1e400}', finite('ignore_index', '-Infinity', 'integer')],
    ['/losses: a weight', '/losses', '{"tensors":{"a":[1.0,2.0],"b":[1.5,2.5]},"terms":[{"loss":"mse","weight":1e400,"args":{"input":"a","target":"b"}}]}', finite('terms.0.weight', 'Infinity')],
    ['/losses: a term\'s option', '/losses', '{"tensors":{"a":[1.0,2.0],"b":[1.5,2.5]},"terms":[{"loss":"huber","options":{"delta":1e400},"args":{"input":"a","target":"b"}}]}', finite('terms[0] (huber): delta', 'Infinity')]
  ]
  for (const [name, url, json, message] of cases) {
    const r = await post(url, json)
    t.same([r.status, r.body.code, r.body.message], [400, 'INVALID_REQUEST', message], name)
  }
  const inputs = '[{"name":"input","datatype":"FP32","shape":[2],"data":[1,2]},{"name":"target","datatype":"FP32","shape":[2],"data":[1.5,2.5]}]'
  const v2 = await post('/v2/models/huber/infer', `{"inputs":${inputs},"parameters":{"delta":1e400}}`)
  t.same([v2.status, v2.body], [400, { error: `INVALID_REQUEST: ${finite('parameters.delta', 'Infinity')}`, code: 'INVALID_REQUEST' }], 'V2 REST: a parameter')
  const terms = JSON.stringify([{ loss: 'mse', weight: 1, args: { input: 'input', target: 'target' } }]).replace('1,', '1e400,')
  const composite = await post('/v2/models/composite/infer', `{"inputs":${inputs},"parameters":{"terms":${JSON.stringify(terms)}}}`)
  t.same([composite.status, composite.body.error], [400, `INVALID_REQUEST: ${finite('parameters.terms.0.weight', 'Infinity')}`], 'V2 REST: a composite\'s weight')
  const typed = [{ name: 'input', datatype: 'FP32', shape: [2], contents: { fp32_contents: [1, 2] } }, { name: 'target', datatype: 'FP32', shape: [2], contents: { fp32_contents: [1.5, 2.5] } }]
  for (const v of [NaN, Infinity, -Infinity]) {
    const r = await s.call('ModelInfer', { model_name: 'huber', parameters: { delta: { double_param: v } }, inputs: typed })
    t.same(r.ok ? 'an answer' : [grpc.status[r.error.code], r.error.details], ['INVALID_ARGUMENT', `INVALID_REQUEST: ${finite('parameters.delta', String(v))}`], `gRPC: a double_param ${v}`)
  }
})

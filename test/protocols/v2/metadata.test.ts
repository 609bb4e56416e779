/** Open Inference Protocol server and model metadata, liveness and readiness. */
import t from 'tap'
import { buildApp } from '../../../src/app'
import { LOSSES } from '../../../src/losses'
import { build } from '../../helpers/app'
import { NO_SHEDDING } from './v2'
import { version } from '../../../package.json'

t.test('GET /v2: name, version and the binary tensor data extension', async t => {
  const app = await build(t, NO_SHEDDING)
  const r = await app.inject('/v2')
  t.equal(r.statusCode, 200)
  t.same(r.json(), { name: 'losshub', version, extensions: ['binary_tensor_data', 'parameters'] })
  // the protocol's own OpenAPI file lists it as /v2/: a trailing slash is the same route, there and everywhere
  const slash = await app.inject('/v2/')
  t.same([slash.statusCode, slash.json()], [200, r.json()], 'GET /v2/ too')
  t.equal((await app.inject('/v2/models/mse/ready/')).statusCode, 200)
})

t.test('model metadata: the loss\'s arguments as inputs, loss and gradients as outputs; /versions/1 the same', async t => {
  const app = await build(t, NO_SHEDDING)
  const r = await app.inject('/v2/models/cross_entropy')
  t.equal(r.statusCode, 200)
  // docs/losses.md: input [N,C] logits, target class indices [N], weight [C]?; grad w.r.t. input
  t.same(r.json(), {
    name: 'cross_entropy',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [-1, -1] },
      { name: 'target', datatype: 'INT64', shape: [-1] },
      { name: 'weight', datatype: 'FP32', shape: [-1] },
      { name: 'grad_output', datatype: 'FP32', shape: [-1] }
    ],
    outputs: [{ name: 'loss', datatype: 'FP32', shape: [] }, { name: 'grad_input', datatype: 'FP32', shape: [-1, -1] }]
  })
  const versioned = await app.inject('/v2/models/cross_entropy/versions/1')
  t.same(versioned.json(), r.json())

  // gaussian_nll: gradients w.r.t. input and var (docs/losses.md); ctc: class-index arguments are INT64
  const g = (await app.inject('/v2/models/gaussian_nll')).json()
  t.same(g.outputs.map((o: { name: string }) => o.name), ['loss', 'grad_input', 'grad_var'])
  const ctc = (await app.inject('/v2/models/ctc')).json()
  t.same(ctc.inputs.map((i: { name: string, datatype: string, shape: number[] }) => [i.name, i.datatype, i.shape.length]), [
    ['log_probs', 'FP32', 3], ['targets', 'INT64', 2], ['input_lengths', 'INT64', 1], ['target_lengths', 'INT64', 1], ['grad_output', 'FP32', 1]
  ])
  for (const def of LOSSES) {
    const m = await app.inject(`/v2/models/${def.name}`)
    t.equal(m.statusCode, 200, `${def.name} has metadata`)
  }
})

t.test('unknown models and versions are 404 in the protocol\'s error body', async t => {
  const app = await build(t, NO_SHEDDING)
  for (const url of ['/v2/models/crossentropy', '/v2/models/crossentropy/ready', '/v2/models/crossentropy/versions/1']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().code, 'UNKNOWN_LOSS')
    t.match(r.json().error, /^UNKNOWN_LOSS: model 'crossentropy' is not served; known models: mse, l1, /)
    t.same(Object.keys(r.json()).sort(), ['code', 'error'])
  }
  for (const url of ['/v2/models/mse/versions/2', '/v2/models/mse/versions/2/ready']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 404, url)
    t.same(r.json(), { error: "NOT_FOUND: model 'mse' has no version '2'; its only version is 1", code: 'NOT_FOUND' })
  }
  const r = await app.inject('/v2/repository/index')
  t.equal(r.statusCode, 404)
  t.same(r.json(), { error: 'NOT_FOUND: no route GET /v2/repository/index; see GET /docs', code: 'NOT_FOUND' })
})

t.test('liveness and readiness follow /healthz and /readyz', async t => {
  const app = await build(t, NO_SHEDDING)
  t.same((await app.inject('/v2/health/live')).json(), { live: true })
  t.same((await app.inject('/v2/health/ready')).json(), { ready: true })
  t.same((await app.inject('/v2/models/mse/ready')).json(), { name: 'mse', ready: true })
  t.same((await app.inject('/v2/models/mse/versions/1/ready')).json(), { name: 'mse', ready: true })

  app.losshub.draining = true
  t.equal((await app.inject('/readyz')).statusCode, 503, '/readyz fails while draining')
  for (const url of ['/v2/health/ready', '/v2/models/mse/ready']) {
    const r = await app.inject(url)
    t.equal(r.statusCode, 503, `${url} fails while draining`)
    t.equal(r.headers['retry-after'], '1')
    t.same(r.json(), { error: 'SHUTTING_DOWN: draining: this instance is shutting down', code: 'SHUTTING_DOWN' })
  }
  t.same((await app.inject('/v2/health/live')).json(), { live: true }, 'live while draining')
  app.losshub.draining = false
})

t.test('readiness is 503 STARTING while the kernels load', async t => {
  // every loss's kernels take a while to load: the probes run before the warm-up ends (which,
  // on the event loop, would also trip load shedding: off here)
  const app = await buildApp({ kernelWorkers: 0, ...NO_SHEDDING }, { logger: false })
  t.teardown(async () => { await app.close() })
  const r = await app.inject('/v2/health/ready')
  const readyz = await app.inject('/readyz')
  t.equal(readyz.statusCode, 503, 'the test runs while /readyz says starting')
  t.equal(r.statusCode, 503)
  t.same(r.json(), { error: 'STARTING: starting: kernels are still loading', code: 'STARTING' })
  t.same((await app.inject('/v2/health/live')).json(), { live: true }, 'live while starting')
  await app.losshub.warmed
  t.equal((await app.inject('/v2/health/ready')).statusCode, 200)
})

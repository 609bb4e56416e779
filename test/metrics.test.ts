import t from 'tap'
import { build, postLoss } from './helpers/app'

const sample = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN)

t.test('GET /metrics: request counters by loss and status, latency, batch and queue histograms, process metrics', async t => {
  const app = await build(t)
  const ce = { input: [[1, 2], [1, 3], [1, 3]], target: [0, 1, 1] }
  for (let i = 0; i < 3; i++) t.equal((await postLoss(app, 'cross_entropy', ce)).status, 200)
  t.equal((await postLoss(app, 'cross_entropy', { input: ce.input })).status, 400)
  t.equal((await postLoss(app, 'no_such_loss', ce)).status, 404)
  const r = await app.inject('/metrics')
  t.equal(r.statusCode, 200)
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = r.body
  t.equal(sample(text, /^losshub_requests_total\{protocol="loss",loss="cross_entropy",status="200"\} (\d+)$/m), 3)
  t.equal(sample(text, /^losshub_requests_total\{protocol="loss",loss="cross_entropy",status="400"\} (\d+)$/m), 1)
  t.equal(sample(text, /^losshub_requests_total\{protocol="loss",loss="unknown",status="404"\} (\d+)$/m), 1, 'unknown names share one label')
  t.equal(sample(text, /^losshub_request_duration_seconds_count\{protocol="loss",loss="cross_entropy"\} (\d+)$/m), 4)
  // the start-up warm-up ran every loss's example twice, and the three requests ran after it
  t.ok(sample(text, /^losshub_batch_size_count (\d+)$/m) >= 3)
  t.ok(sample(text, /^losshub_queue_wait_seconds_count (\d+)$/m) >= 3)
  t.ok(sample(text, /^losshub_onnx_run_duration_seconds_count\{loss="cross_entropy"\} (\d+)$/m) >= 3)
  t.equal(sample(text, /^losshub_queue_depth (\d+)$/m), 0)
  // the three requests' bodies are small: none was kept for reuse
  t.equal(sample(text, /^losshub_body_memory_kept_bytes\{pool="local"\} (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_body_memory_kept_bytes\{pool="shared"\} (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_body_memory_kept_bytes\{pool="shared_in_use"\} (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_large_body_bytes\{state="in_progress"\} (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_large_body_bytes\{state="waiting"\} (\d+)$/m), 0)
  t.match(text, /^process_resident_memory_bytes \d+/m)
  t.match(text, /^nodejs_eventloop_lag_seconds /m)
})

t.test('a large nested tensor offered to a kernel worker to read half of it: counted by outcome', async t => {
  const app = await build(t, { kernelWorkers: 1 })
  const input = Array.from({ length: 300 }, (_, i) => Array.from({ length: 200 }, (_, j) => ((i * 200 + j) % 97) / 10 - 4.8))
  const target = Array.from({ length: 300 }, (_, i) => i % 200)
  const res = await postLoss(app, 'cross_entropy', { input, target })
  t.equal(res.status, 200)
  const text = (await app.inject('/metrics')).body
  const outcomes = ['read_ahead', 'read_here', 'declined'].map(o => sample(text, new RegExp(`^losshub_body_split_reads_total\\{outcome="${o}"\\} (\\d+)$`, 'm')))
  t.equal(outcomes.reduce((a, b) => a + b, 0), 1, `one body, one outcome (read_ahead, read_here, declined: ${outcomes.join(', ')})`)
})

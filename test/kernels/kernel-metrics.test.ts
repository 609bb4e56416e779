import t from 'tap'
import client from 'prom-client'
import { type KernelStats } from '../../src/kernels/executor'
import { registerKernelMetrics } from '../../src/kernels/kernel-metrics'
import { build, postLoss } from '../helpers/app'

const sample = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN)

t.test('kernel memory and losses, read from their sources at each scrape', async t => {
  const registry = new client.Registry()
  const stats: KernelStats = {
    workers: [{ name: 'short-0', sessions: 3, heapUsedBytes: 1000, heapTotalBytes: 2000, externalBytes: 300 }, { name: 'long-0', sessions: 0 }, { name: 'inline', sessions: 5 }],
    inFlightBytes: 4096,
    abandoned: 2,
    replaced: { died: 1, overran: 2 },
    overrunning: 1
  }
  const totals = { timedOut: 7, queued: 123 }
  registerKernelMetrics(registry, { executor: () => stats, deadlineExceeded: () => totals.timedOut, queuedBytes: () => totals.queued })
  let text = await registry.metrics()
  t.equal(sample(text, /^losshub_kernel_sessions\{worker="short-0"\} (\d+)$/m), 3)
  t.equal(sample(text, /^losshub_kernel_sessions\{worker="long-0"\} (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_kernel_sessions\{worker="inline"\} (\d+)$/m), 5)
  t.equal(sample(text, /^losshub_kernel_worker_heap_bytes\{worker="short-0",kind="used"\} (\d+)$/m), 1000)
  t.equal(sample(text, /^losshub_kernel_worker_heap_bytes\{worker="short-0",kind="total"\} (\d+)$/m), 2000)
  t.equal(sample(text, /^losshub_kernel_worker_heap_bytes\{worker="short-0",kind="external"\} (\d+)$/m), 300)
  t.notMatch(text, /worker_heap_bytes\{worker="long-0"/, 'no heap sample for a worker that has not answered yet')
  t.equal(sample(text, /^losshub_kernel_inflight_bytes (\d+)$/m), 4096)
  t.equal(sample(text, /^losshub_queue_bytes (\d+)$/m), 123)
  t.equal(sample(text, /^losshub_kernel_overrunning (\d+)$/m), 1)
  t.equal(sample(text, /^losshub_deadline_exceeded_total (\d+)$/m), 7)
  t.equal(sample(text, /^losshub_kernels_abandoned_total (\d+)$/m), 2)
  t.equal(sample(text, /^losshub_kernel_workers_replaced_total\{reason="died"\} (\d+)$/m), 1)
  t.equal(sample(text, /^losshub_kernel_workers_replaced_total\{reason="overran"\} (\d+)$/m), 2)
  t.match(text, /^# TYPE losshub_deadline_exceeded_total counter$/m)
  // a replaced worker's label goes, totals move on
  stats.workers = [{ name: 'short-0', sessions: 1 }]
  totals.timedOut = 9
  text = await registry.metrics()
  t.notMatch(text, /worker="inline"/)
  t.equal(sample(text, /^losshub_deadline_exceeded_total (\d+)$/m), 9)
})

t.test('GET /metrics of the app: sessions per kernel worker and the inline ones, bytes, deadline and worker counters', async t => {
  const app = await build(t, { kernelWorkers: 1, longKernelWorkers: 1, inlineKernelElements: 100 })
  t.notMatch((await app.inject('/metrics')).body, /worker="inline"/, 'the warm-up loads kernels on the worker only')
  t.equal((await postLoss(app, 'mse', { input: [1, 2], target: [0, 0] })).status, 200, 'tiny: inline from now on')
  const rows = Array.from({ length: 300 }, (_, i) => [i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7])
  t.equal((await postLoss(app, 'l1', { input: rows, target: rows, reduction: 'sum' })).status, 200, '2400 elements: on the short worker')
  const text = (await app.inject('/metrics')).body
  t.equal(sample(text, /^losshub_kernel_sessions\{worker="inline"\} (\d+)$/m), 1, 'the mse\'s kernel on the event loop, built by its first tiny call')
  t.ok(sample(text, /^losshub_kernel_sessions\{worker="short-0"\} (\d+)$/m) >= 1, 'the l1\'s on the worker')
  t.ok(sample(text, /^losshub_kernel_worker_heap_bytes\{worker="short-0",kind="used"\} (\d+)$/m) > 0)
  t.match(text, /^losshub_kernel_sessions\{worker="long-0"\} \d+$/m)
  t.equal(sample(text, /^losshub_kernel_inflight_bytes (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_queue_bytes (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_deadline_exceeded_total (\d+)$/m), 0)
  t.equal(sample(text, /^losshub_kernel_workers_replaced_total\{reason="died"\} (\d+)$/m), 0)
})

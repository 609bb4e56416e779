import t from 'tap'
import { startOnce } from '../scripts/startups'

// Back-to-back start-ups of the built server with load shedding at its default bound: the first
// loss request, sent the moment /readyz first answers 200, must be served. (40 in a row:
// scripts/startups.ts.)
for (const [workers, runs] of [['1', 5], ['0', 3]] as const) {
  t.test(`WORKERS=${workers}: ${runs} start-ups, each serves its first request at once and exits 0 on SIGTERM`, async t => {
    const results = []
    for (let i = 0; i < runs; i++) results.push(await startOnce({ WORKERS: workers }))
    t.same(results.map(r => `${r.status} ${r.code ?? ''}`.trim()), results.map(() => '200'), 'every first request got 200')
    t.same(results.map(r => r.exitCode), results.map(() => 0), 'every start-up exited 0 on SIGTERM')
  })
}

import t from 'tap'
import { JEMALLOC_CONF, jemallocCandidates, workerAllocator } from '../src/allocator'

const debian = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'

t.test('jemalloc: workers preload jemalloc where it is installed, with settings that hand memory back', async t => {
  const found = workerAllocator('jemalloc', {}, path => path === debian)
  t.same(found.env, { LD_PRELOAD: debian, MALLOC_CONF: JEMALLOC_CONF })
  t.match(JEMALLOC_CONF, /background_thread:true/, 'pages go back while the process is idle too')
  t.match(JEMALLOC_CONF, /oversize_threshold:0/, 'large kernels\' intermediates are reused, not faulted in afresh each run')
  t.same(workerAllocator('jemalloc', { MALLOC_CONF: 'narenas:2' }, path => path === debian).env.MALLOC_CONF, 'narenas:2', 'the operator\'s settings win')
})

t.test('jemalloc not installed, with a preload of the operator\'s, and system: the environment is left as it is', async t => {
  t.same(workerAllocator('jemalloc', {}, () => false), { name: 'glibc (no libjemalloc.so.2 installed)', env: {} })
  t.same(workerAllocator('jemalloc', { LD_PRELOAD: '/opt/tcmalloc.so' }, () => true).env, {})
  t.same(workerAllocator('system', {}, () => true).env, {})
})

t.test('the Docker image\'s link is looked for first, then the architecture\'s Debian directory', async t => {
  t.same(jemallocCandidates('arm64').slice(0, 2), ['/usr/local/lib/libjemalloc.so.2', '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'])
  t.same(jemallocCandidates('x64')[1], debian)
})

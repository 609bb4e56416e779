import t, { type Test } from 'tap'
import * as ort from 'onnxruntime-node'
import { type SessionCache } from '../../src/kernels/session-cache'
import { scaleModel } from '../helpers/scale-model'

/*
 * The session cache over real ONNX Runtime sessions, seen through ORT's own API: the cache is
 * loaded with an onnxruntime-node whose InferenceSession.create builds a real session but logs
 * `build <model>`, `run <model>` and `release <model>`, and can hold a build or a run until the
 * test lets it go. Every run's answer is checked against the hand-computed `x * factor`.
 */

interface Gate { wait: Promise<void>, open: () => void }

interface Probe {
  cache: SessionCache
  /** What ORT was asked to do, in order. */
  log: string[]
  /** A model for the cache to build, named in the log. */
  model: (name: string, factor: number) => () => Uint8Array
  /** Holds the next `event` (e.g. `run a`) once it is logged, until the returned function is called. */
  hold: (event: string) => () => void
  /** Runs kernel `key` on `x` and returns `y`. */
  run: (key: string, model: () => Uint8Array, ...x: number[]) => Promise<number[]>
}

function probe (t: Test, capacity: number): Probe {
  const log: string[] = []
  const names = new Map<Uint8Array, string>()
  const held = new Map<string, Gate[]>()
  const pass = async (event: string): Promise<void> => {
    log.push(event)
    await held.get(event)?.shift()?.wait
  }
  const create = async (bytes: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<Pick<ort.InferenceSession, 'run' | 'release'>> => {
    const name = names.get(bytes) ?? 'unnamed'
    await pass(`build ${name}`)
    const session = await ort.InferenceSession.create(bytes, options)
    return {
      run: async (feeds: ort.InferenceSession.FeedsType) => {
        await pass(`run ${name}`)
        return await session.run(feeds)
      },
      release: async () => {
        log.push(`release ${name}`)
        await session.release()
      }
    }
  }
  const { SessionCache: Cache } = t.mockRequire<typeof import('../../src/kernels/session-cache')>('../../src/kernels/session-cache', {
    'onnxruntime-node': { ...ort, InferenceSession: { create } }
  })
  const cache = new Cache({ intraOpNumThreads: 1, interOpNumThreads: 1 }, capacity)
  t.teardown(async () => { await cache.close() })
  return {
    cache,
    log,
    model: (name, factor) => () => {
      const bytes = factor === 0 ? Uint8Array.of(1, 2, 3) : scaleModel(factor)
      names.set(bytes, name)
      return bytes
    },
    hold: event => {
      let open = (): void => {}
      const wait = new Promise<void>(resolve => { open = resolve })
      held.set(event, [...(held.get(event) ?? []), { wait, open }])
      return open
    },
    run: async (key, model, ...x) => {
      const out = await cache.run(key, model, { x: new ort.Tensor('float32', Float32Array.from(x), [x.length]) })
      return Array.from(out.y.data as Float32Array)
    }
  }
}

const until = async (ok: () => boolean): Promise<void> => { while (!ok()) await new Promise(resolve => setTimeout(resolve, 2)) }
/** Lets every callback already due run (a release the cache meant to make would be logged by then). */
const settle = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve)) }
const count = (log: string[], event: string): number => log.filter(e => e === event).length

t.test('a session is built once for its key and reused', async t => {
  const p = probe(t, 4)
  const a = p.model('a', 2)
  t.same(await p.run('a', a, 1, 2, 3), [2, 4, 6])
  t.same(await p.run('a', a, 5), [10])
  t.same(p.log, ['build a', 'run a', 'run a'])
  t.ok(p.cache.has('a'))
  t.equal(p.cache.size, 1)
})

t.test('past its capacity the cache evicts the least recently used session, and releases it', async t => {
  const p = probe(t, 2)
  const [a, b, c] = [p.model('a', 2), p.model('b', 3), p.model('c', 4)]
  await p.run('a', a, 1)
  await p.run('b', b, 1)
  t.same(await p.run('a', a, 1), [2], 'a is used again: b is now the least recent')
  t.same(await p.run('c', c, 1), [4])
  t.same([p.cache.has('a'), p.cache.has('b'), p.cache.has('c'), p.cache.size], [true, false, true, 2])
  await settle()
  t.same(p.log.filter(e => e.startsWith('release')), ['release b'])
  t.same(await p.run('b', b, 1), [3], 'an evicted key is built again when it returns')
  t.equal(count(p.log, 'build b'), 2)
  t.same([p.cache.has('a'), p.cache.has('c')], [false, true], 'a was the least recent this time')
  await settle()
  t.same(p.log.filter(e => e.startsWith('release')), ['release b', 'release a'])
})

t.test('however many keys pass through it, the cache holds at most its capacity', async t => {
  const p = probe(t, 3)
  for (let i = 0; i < 10; i++) t.same(await p.run(`k${i}`, p.model(`k${i}`, i + 1), 1), [i + 1])
  t.equal(p.cache.size, 3)
  t.same([7, 8, 9].map(i => p.cache.has(`k${i}`)), [true, true, true])
  await settle()
  t.same(p.log.filter(e => e.startsWith('release')), [0, 1, 2, 3, 4, 5, 6].map(i => `release k${i}`), 'each evicted session released once, oldest first')
})

t.test('a session evicted while its run is in progress is released only once that run has finished', async t => {
  const p = probe(t, 1)
  const letRun = p.hold('run a')
  const running = p.run('a', p.model('a', 2), 1, 2, 3)
  await until(() => p.log.includes('run a'))
  t.same(await p.run('b', p.model('b', 3), 1), [3], 'b takes the only place')
  t.notOk(p.cache.has('a'), 'a is evicted')
  await settle()
  t.equal(count(p.log, 'release a'), 0, 'but not released while its run is in progress')
  letRun()
  t.same(await running, [2, 4, 6], 'the run finishes on its session')
  await until(() => p.log.includes('release a'))
  await settle()
  t.equal(count(p.log, 'release a'), 1, 'released once, after its run')
  t.ok(p.log.indexOf('release a') > p.log.indexOf('run a'))
})

t.test('a session evicted while it is still being built is released once the run waiting for it has finished', async t => {
  const p = probe(t, 1)
  const letBuild = p.hold('build a')
  const running = p.run('a', p.model('a', 2), 4)
  await until(() => p.log.includes('build a'))
  t.same(await p.run('b', p.model('b', 3), 1), [3])
  t.notOk(p.cache.has('a'))
  letBuild()
  t.same(await running, [8])
  await until(() => p.log.includes('release a'))
  t.same(p.log.filter(e => e.endsWith(' a')), ['build a', 'run a', 'release a'])
})

t.test('with two runs in progress on an evicted session, it is released after the last', async t => {
  const p = probe(t, 1)
  const a = p.model('a', 2)
  const [first, second] = [p.hold('run a'), p.hold('run a')]
  const one = p.run('a', a, 1)
  const two = p.run('a', a, 2)
  await until(() => count(p.log, 'run a') === 2)
  await p.run('b', p.model('b', 3), 1)
  first()
  t.same(await one, [2])
  await settle()
  t.equal(count(p.log, 'release a'), 0, 'one run is still in progress')
  second()
  t.same(await two, [4])
  await until(() => p.log.includes('release a'))
  await settle()
  t.equal(count(p.log, 'release a'), 1)
})

t.test('a build that fails is not cached: the next run builds again', async t => {
  const p = probe(t, 2)
  await t.rejects(p.run('a', p.model('broken', 0), 1))
  t.notOk(p.cache.has('a'))
  t.equal(p.cache.size, 0)
  t.same(await p.run('a', p.model('a', 2), 1), [2])
  t.ok(p.cache.has('a'))
})

t.test('a failed build of an evicted session leaves the session built since under the same key in place', async t => {
  const p = probe(t, 1)
  const letBuild = p.hold('build broken')
  const failing = p.run('a', p.model('broken', 0), 1)
  await until(() => p.log.includes('build broken'))
  await p.run('b', p.model('b', 3), 1) // evicts the build in progress
  const a = p.model('a', 2)
  t.same(await p.run('a', a, 1), [2], 'a is built anew meanwhile (and evicts b)')
  letBuild()
  await t.rejects(failing)
  await settle()
  t.ok(p.cache.has('a'), 'the failure of the old build does not drop the new session')
  t.same(await p.run('a', a, 3), [6])
  t.equal(count(p.log, 'build a'), 1, 'which is used, not built again')
  await p.cache.close()
  t.equal(count(p.log, 'release a'), count(p.log, 'build a'), 'every session built for a is released at close: none leaked')
})

t.test('close releases every session', async t => {
  const p = probe(t, 4)
  await p.run('a', p.model('a', 2), 1)
  await p.run('b', p.model('b', 3), 1)
  await p.cache.close()
  t.same(p.log.filter(e => e.startsWith('release')).sort(), ['release a', 'release b'])
  t.equal(p.cache.size, 0)
})

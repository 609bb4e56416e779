import t from 'tap'
import { MemoryPool } from '../../src/tensor/memory-pool'

t.test('memory given back is taken again for a size it fits (up to twice as large), within the bound', async t => {
  const pool = new MemoryPool<ArrayBuffer>(size => new ArrayBuffer(size), 4096, 256)
  const a = pool.take(1024)
  pool.give(a)
  pool.give(a)
  t.equal(pool.bytes, 1024, 'given twice, kept once')
  t.not(pool.take(1025), a, 'not for a larger size')
  t.not(pool.take(511), a, 'not for a size under half of it')
  t.not(pool.take(255), a, 'nor under the smallest kept size')
  t.equal(pool.take(600), a, 'the same memory for a size it fits')
  t.equal(pool.bytes, 0, 'and it is no longer kept')
  t.equal(pool.give(new ArrayBuffer(255)), 255, 'small memory is not kept: all its bytes are forgotten')
  t.equal(pool.bytes, 0)
  t.equal(pool.give(new ArrayBuffer(8192)), 8192, 'nor memory larger than the bound')
  t.equal(pool.bytes, 0)
})

t.test('past the bound, the memory given longest ago makes room for the latest', async t => {
  const pool = new MemoryPool<ArrayBuffer>(size => new ArrayBuffer(size), 4096, 256)
  const small = [1, 2, 3, 4].map(() => new ArrayBuffer(1024))
  for (const m of small) t.equal(pool.give(m), 0, 'within the bound nothing is forgotten')
  t.equal(pool.bytes, 4096)
  // traffic changes size: a larger buffer is kept in place of the two oldest small ones
  const large = new ArrayBuffer(2048)
  t.equal(pool.give(large), 2048, 'the bytes of the two oldest are forgotten')
  t.equal(pool.bytes, 4096, 'never more than the bound')
  t.equal(pool.take(2048), large, 'the large one is taken again')
  t.equal(pool.take(1024), small[3], 'the latest small one is still kept')
  t.equal(pool.take(1024), small[2])
  t.not(pool.take(1024), small[0], 'the oldest were forgotten')
  t.equal(pool.bytes, 0)
})

t.test('the smallest kept buffer that fits is taken', async t => {
  const pool = new MemoryPool<SharedArrayBuffer>(size => new SharedArrayBuffer(size), 1 << 20, 16)
  const [large, small] = [new SharedArrayBuffer(300), new SharedArrayBuffer(200)]
  pool.give(large)
  pool.give(small)
  t.equal(pool.take(150), small)
  t.equal(pool.take(150), large)
  t.type(pool.take(150), SharedArrayBuffer, 'fresh memory of the pool\'s kind once none is kept')
  const [first, second] = [new SharedArrayBuffer(100), new SharedArrayBuffer(100)]
  pool.give(first)
  pool.give(second)
  t.equal(pool.take(100), second, 'of equal ones, the latest given')
  t.equal(pool.find(1000), undefined, 'find makes no fresh memory')
  t.equal(pool.find(100), first)
  pool.give(first)
  t.equal(pool.clear(), 100, 'clear forgets what is kept')
  t.equal(pool.bytes, 0)
  t.equal(pool.find(100), undefined)
})

t.test('kept memory is forgotten once the pool goes unused for its idle time, and not while it is used', async t => {
  const forgotten: number[] = []
  const pool = new MemoryPool<ArrayBuffer>(size => new ArrayBuffer(size), 4096, 256).forgetWhenIdle(200, bytes => forgotten.push(bytes))
  const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
  const a = pool.take(1024)
  const b = pool.take(300)
  pool.give(a)
  pool.give(b)
  const started = performance.now()
  while (performance.now() - started < 400) {
    await sleep(20)
    pool.give(pool.take(1000)) // in use: 20 ms apart, well under the 200 ms idle time
  }
  t.same(forgotten, [], 'kept for 400 ms while in use')
  t.equal(pool.bytes, 1324)
  await sleep(500)
  t.same(forgotten, [1324], 'forgotten once, with all their bytes, after 200 ms unused')
  t.equal(pool.bytes, 0)
  t.not(pool.take(1000), a, 'a later take gets fresh memory')
})

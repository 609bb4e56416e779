import t from 'tap'
import { type BatchPolicy, decide } from '../../src/batching/policy'

const policy: BatchPolicy = { maxSize: 4, maxElements: 100, maxDelayUs: 500, maxQueue: 10 }

t.test('an empty queue waits forever', async t => {
  t.same(decide({ elements: [], oldestUs: 0 }, 0, policy), { run: false, waitUs: Infinity })
})

t.test('a young, small queue waits for the rest of the delay', async t => {
  t.same(decide({ elements: [10, 10], oldestUs: 1000 }, 1200, policy), { run: false, waitUs: 300 })
})

t.test('the oldest request has waited the delay: run what is there', async t => {
  t.same(decide({ elements: [10, 10], oldestUs: 1000 }, 1500, policy), { run: true, count: 2 })
})

t.test('full by count: run maxSize now, the rest stays', async t => {
  t.same(decide({ elements: [1, 1, 1, 1, 1, 1], oldestUs: 1000 }, 1000, policy), { run: true, count: 4 })
})

t.test('full by elements: the next request cannot join, so run without waiting', async t => {
  t.same(decide({ elements: [60, 30, 20], oldestUs: 1000 }, 1000, policy), { run: true, count: 2 })
})

t.test('a request larger than maxElements still runs, alone', async t => {
  t.same(decide({ elements: [500, 1], oldestUs: 1000 }, 1000, policy), { run: true, count: 1 })
})

t.test('delay 0 runs whatever is queued at once (as Triton)', async t => {
  t.same(decide({ elements: [5], oldestUs: 1000 }, 1000, { ...policy, maxDelayUs: 0 }), { run: true, count: 1 })
})

t.test('maxSize 1 turns batching off', async t => {
  t.same(decide({ elements: [5, 5, 5], oldestUs: 0 }, 0, { ...policy, maxSize: 1 }), { run: true, count: 1 })
})

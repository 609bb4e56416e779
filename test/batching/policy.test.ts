import t from 'tap'
import { admitsBytes, type BatchPolicy, decide, laneOf } from '../../src/batching/policy'

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

const lanes = { longSteps: 1000, longElements: 1 << 20 }

t.test('laneOf: ctc-like steps or a large tensor make a call long; anything else is short', async t => {
  t.equal(laneOf({ elements: 4, steps: 1, bytes: 16 }, lanes), 'short')
  t.equal(laneOf({ elements: 5000, steps: 999, bytes: 20000 }, lanes), 'short', 'just under the step threshold')
  t.equal(laneOf({ elements: 5000, steps: 1000, bytes: 20000 }, lanes), 'long', 'at the step threshold')
  t.equal(laneOf({ elements: 1 << 20, steps: 1, bytes: 4 << 20 }, lanes), 'long', 'at the element threshold')
})

t.test('laneOf: no cost, or no lane policy, is short; a threshold of 0 is off', async t => {
  t.equal(laneOf(undefined, lanes), 'short')
  t.equal(laneOf({ elements: 1e9, steps: 1e9, bytes: 0 }, undefined), 'short')
  t.equal(laneOf({ elements: 1e9, steps: 1, bytes: 0 }, { longSteps: 1000, longElements: 0 }), 'short')
  t.equal(laneOf({ elements: 1, steps: 1e6, bytes: 0 }, { longSteps: 0, longElements: 1 << 20 }), 'short')
})

t.test('admitsBytes: up to the bound, and always when nothing waits', async t => {
  const bounded = { ...policy, maxQueueBytes: 1000 }
  t.equal(admitsBytes(2, 600, 400, bounded), true, 'exactly the bound')
  t.equal(admitsBytes(2, 600, 401, bounded), false)
  t.equal(admitsBytes(0, 0, 5000, bounded), true, 'a lone request larger than the bound')
  t.equal(admitsBytes(5, 1e12, 1e12, policy), true, 'no bound')
})

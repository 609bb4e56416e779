import t from 'tap'
import { type FastifyInstance } from 'fastify'
import { type Executor } from '../../src/kernels/executor'
import { build, postLoss } from '../helpers/app'

/*
 * Real kernels on real worker threads: a ctc over many frames runs for seconds (its alpha and
 * beta recursions are Scans of T sequential steps), a 2-element mse for a millisecond.
 */

/** A ctc request of `frames` frames, one sample, 5 classes, with gradients: some 30 µs of kernel a frame. */
function longCtc (frames = 80_000): Record<string, unknown> {
  const logProbs = new Float32Array(frames * 5).fill(Math.log(0.2))
  return {
    log_probs: { dtype: 'float32', shape: [frames, 1, 5], data: Buffer.from(logProbs.buffer).toString('base64') },
    targets: [[1, 2]],
    input_lengths: [frames],
    target_lengths: [2],
    grad: true
  }
}

const smallMse = { input: [1, 2], target: [0, 0] }

/** Sends the ctc, waits until its kernel has started, then sends the mse; returns the order they completed in. */
async function race (app: FastifyInstance): Promise<{ order: string[], ctc: Awaited<ReturnType<typeof postLoss>>, mse: Awaited<ReturnType<typeof postLoss>> }> {
  const order: string[] = []
  const ctc = postLoss(app, 'ctc', longCtc()).then(r => { order.push('ctc'); return r })
  while (app.losshub.batcher.idle) await new Promise(resolve => setImmediate(resolve))
  const mse = postLoss(app, 'mse', smallMse).then(r => { order.push('mse'); return r })
  return { order, ctc: await ctc, mse: await mse }
}

t.test('a small mse sent while a long ctc kernel runs is answered first: the ctc has the long lane', async t => {
  const app = await build(t, { kernelWorkers: 1, longKernelWorkers: 1 })
  const { order, ctc, mse } = await race(app)
  t.same(order, ['mse', 'ctc'])
  t.equal(mse.status, 200)
  t.equal(mse.body.loss, 2.5, 'mean of 1 and 4')
  t.equal(ctc.status, 200)
})

t.test('control: with no long lane the same mse waits for the ctc', async t => {
  const app = await build(t, { kernelWorkers: 1, longKernelWorkers: 0 })
  const { order, mse } = await race(app)
  t.same(order, ['ctc', 'mse'])
  t.equal(mse.status, 200)
})

t.test('a kernel past REQUEST_TIMEOUT_MS: 504 DEADLINE_EXCEEDED, and both lanes serve on', async t => {
  // 300000 frames are some 10 s of kernel, well past 4 s; the small requests after it take far less
  // MAX_STEPS raised past the frames: a kernel that outlives its deadline is what is tested here
  const app = await build(t, { kernelWorkers: 1, longKernelWorkers: 1, requestTimeoutMs: 4000, maxSteps: 300_000 })
  const ctc = await postLoss(app, 'ctc', longCtc(300_000))
  t.equal(ctc.status, 504)
  t.equal(ctc.body.code, 'DEADLINE_EXCEEDED')
  t.match(ctc.body.message, /^deadline exceeded: REQUEST_TIMEOUT_MS \(4000 ms\) passed after \d+ ms in the queue and \d+ ms in the kernel, which was abandoned/)
  const mse = await postLoss(app, 'mse', smallMse)
  t.same([mse.status, mse.body.loss], [200, 2.5], 'the short lane')
  // the fresh long worker starts (ts-node compiles it here, beside the abandoned kernel still
  // computing): wait for it, so that the request's deadline is not spent in the queue
  const executor = (app.losshub.batcher as unknown as { executor: Executor }).executor
  while (executor.available('long') === 0) await new Promise(resolve => setTimeout(resolve, 10))
  const shortCtc = await postLoss(app, 'ctc', { ...longCtc(), log_probs: Array.from({ length: 1000 }, () => [[-0.51, -1.61, -1.61, -2.3, -2.3]]), input_lengths: [1000] })
  t.equal(shortCtc.status, 200, 'the long lane, on a fresh worker (1000 frames are long)')
})

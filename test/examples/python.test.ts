/**
 * examples/python/losshub_client.py against a real server: base64 tensors both ways, float32 and
 * float64, grad_output, errors. CI does not need Python: without /usr/bin/python3 (with numpy
 * and requests) the test is skipped, saying why.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { LOSSES } from '../../src/losses'
import { startServer, waitReady } from '../helpers/server'
import { fromForm, mismatch } from '../helpers/tensors'

const PYTHON = '/usr/bin/python3'
const script = path.join(__dirname, '..', '..', 'examples', 'python', 'losshub_client.py')

function missing (): string | false {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} is not installed`
  const r = spawnSync(PYTHON, ['-c', 'import numpy, requests'], { encoding: 'utf8' })
  if (r.status !== 0) return `${PYTHON} lacks numpy or requests (Debian: apt-get install python3-numpy python3-requests)`
  return false
}

t.test('the Python client against a real server', { skip: missing() }, async t => {
  // one process, and no load shedding while tap keeps the machine busy: these test the examples
  const server = await startServer(t, { WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
  await waitReady(server.url)
  const r = spawnSync(PYTHON, [script, server.url, '--json'], { encoding: 'utf8', env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, timeout: 60_000 })
  t.equal(r.status, 0, `the script exits 0${r.status === 0 ? '' : `: ${r.stderr}`}`)
  const out = JSON.parse(r.stdout)

  t.same(out.catalog, LOSSES.map(d => d.name), 'catalog() lists every loss')

  // F.cross_entropy(tensor([[1.,2],[1,3],[1,3]]), tensor([0,1,1])) and its gradient
  t.equal(out.cross_entropy.dtype, 'float32', 'float32 base64 in, float32 out')
  t.notOk(mismatch([out.cross_entropy.loss], [0.5223726], 1e-4, 1e-5), `loss ${out.cross_entropy.loss}`)
  t.notOk(mismatch(out.cross_entropy.grad.flat(), [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343], 1e-4, 1e-5))

  // in float64 the value must match a double-precision evaluation: mean of logsumexp(x) - x[t]
  const lse = (a: number, b: number): number => Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)))
  const expected = (lse(1, 2) - 1 + 2 * (lse(1, 3) - 3)) / 3
  t.equal(out.cross_entropy_float64.dtype, 'float64')
  t.notOk(mismatch([out.cross_entropy_float64.loss], [expected], 1e-9, 1e-12), `${out.cross_entropy_float64.loss} vs ${expected}`)

  // mse with reduction none: (x - t)^2, and grad_output * 2 (x - t)
  t.same(out.mse_none.loss, [0.25, 4, 1])
  t.same(out.mse_none.grad, [1, 2, -4])

  t.equal(out.error?.status, 400)
  t.equal(out.error?.code, 'SHAPE_MISMATCH')

  // numpy's little-endian bytes, read by the TypeScript decoder
  const sent = fromForm(out.encoded)
  t.same([sent.dtype, sent.shape], ['float32', [2, 2]])
  t.notOk(mismatch(sent.data, [1.5, -2, NaN, Infinity], 0, 0), `decoded ${sent.data}`)
})

/**
 * examples/client: losshub.d.ts is what `npm run client` makes of the committed openapi.yaml,
 * and example.ts's calls, through openapi-fetch, get PyTorch's values from a real server.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { connect, crossEntropy, ctc, shapeError } from '../../examples/client/example'
import { startServer, waitReady } from '../helpers/server'
import { mismatch } from '../helpers/tensors'

const root = path.join(__dirname, '..', '..')

t.test('examples/client/losshub.d.ts is up to date with openapi.yaml (run `npm run client`)', async t => {
  const script: string = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.client
  const args = script.split(/\s+/)
  t.equal(args.shift(), 'openapi-typescript', 'npm run client runs openapi-typescript')
  const out = args.indexOf('-o') + 1
  t.equal(args[out], 'examples/client/losshub.d.ts')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'losshub-client-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  // the same command, writing elsewhere; the paths in it are relative to the repo
  args[out] = path.join(dir, 'losshub.d.ts')
  const pkgFile = require.resolve('openapi-typescript/package.json')
  const cli = path.join(path.dirname(pkgFile), JSON.parse(fs.readFileSync(pkgFile, 'utf8')).bin['openapi-typescript'])
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off' } })
  t.equal(r.status, 0, `openapi-typescript exits 0${r.status === 0 ? '' : `: ${r.stderr}`}`)
  const fresh = fs.readFileSync(args[out], 'utf8')
  const committed = fs.readFileSync(path.join(root, 'examples/client/losshub.d.ts'), 'utf8')
  t.ok(fresh === committed, 'regenerated types equal the committed ones')
  t.match(committed, /evaluateCrossEntropy: \{/, 'one operation per loss')
})

t.test('the generated client against a real server', async t => {
  // one process, and no load shedding while tap keeps the machine busy: these test the examples
  const server = await startServer(t, { WORKERS: '1', MAX_EVENT_LOOP_DELAY_MS: '0' })
  await waitReady(server.url)
  const client = connect(server.url)

  t.test('cross_entropy: nested arrays, loss and gradient as PyTorch', async t => {
    const r = await crossEntropy(client)
    // F.cross_entropy(tensor([[1.,2],[1,3],[1,3]], requires_grad=True), tensor([0,1,1])) → 0.52237, and its .grad
    t.notOk(mismatch([r.loss], [0.5223726], 1e-4, 1e-5), `loss ${r.loss}`)
    t.notOk(mismatch(r.grad, [-0.2436862, 0.2436862, 0.0397343, -0.0397343, 0.0397343, -0.0397343], 1e-4, 1e-5), `grad ${r.grad}`)
  })

  t.test('ctc: base64 in, base64 out, values from the path count', async t => {
    const r = await ctc(client)
    t.equal(r.form, 'base64', 'the response keeps the request\'s tensor form')
    // two frames, target [1]: the paths 11, 01, 10 each have probability 1/4, so p = 3/4;
    // mean divides by the target length 1
    t.notOk(mismatch([r.loss], [-Math.log(0.75)], 1e-4, 1e-5), `loss ${r.loss}`)
    // d(-log p)/d log_probs[t][c] = -(share of p through class c at frame t): blank 1/3, label 2/3
    t.notOk(mismatch(r.grad, [-1 / 3, -2 / 3, -1 / 3, -2 / 3], 1e-4, 1e-5), `grad ${r.grad}`)
  })

  t.test('an error comes back typed, with its code', async t => {
    const r = await shapeError(client)
    t.equal(r.status, 400)
    t.equal(r.error?.code, 'SHAPE_MISMATCH')
    t.equal(r.error?.statusCode, 400)
    t.match(r.error?.message, /target/, 'the message names the argument at fault')
  })
})

import t from 'tap'
import { type CpuSample, IdleCores, readCpu } from '../../src/kernels/idle-cores'

t.test('free cores: the machine\'s cores less the busy time of other processes (this one\'s own does not count)', async t => {
  const readings: CpuSample[] = [{ atMs: 0, cpus: 4, machineBusyMs: 0, ownMs: 0 }]
  const idle = new IdleCores(60_000, () => readings[0])
  t.teardown(() => idle.close())
  t.equal(idle.cores, 4, 'all of them before the first interval ends')
  // over 1 s: 2.5 cores' worth of busy time, 1.5 of them this process's
  readings[0] = { atMs: 1000, cpus: 4, machineBusyMs: 2500, ownMs: 1500 }
  idle.update()
  t.equal(idle.cores, 3)
  // over the next second other processes keep all four cores busy
  readings[0] = { atMs: 2000, cpus: 4, machineBusyMs: 6500, ownMs: 1500 }
  idle.update()
  t.equal(idle.cores, 0)
  readings[0] = { atMs: 2000, cpus: 4, machineBusyMs: 7000, ownMs: 1500 }
  idle.update()
  t.equal(idle.cores, 0, 'no time passed: the last value stays')
})

t.test('the real clocks: a sample of this machine', async t => {
  const s = readCpu()
  t.ok(s.cpus >= 1 && s.machineBusyMs >= 0 && s.ownMs > 0)
  const idle = new IdleCores(10)
  t.teardown(() => idle.close())
  await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(idle.cores >= 0 && idle.cores <= s.cpus, `${idle.cores} of ${s.cpus}`)
})

import os from 'node:os'

/** One reading of the CPU clocks: the machine's busy time (every core) and this process's (every thread), in ms. */
export interface CpuSample { atMs: number, cpus: number, machineBusyMs: number, ownMs: number }

/** Reads the CPU clocks from os.cpus() and process.cpuUsage(). */
export function readCpu (): CpuSample {
  const cpus = os.cpus()
  let busy = 0
  for (const cpu of cpus) busy += cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq
  const own = process.cpuUsage()
  return { atMs: performance.now(), cpus: cpus.length, machineBusyMs: busy, ownMs: (own.user + own.system) / 1000 }
}

/**
 * How many of the machine's cores other processes left free over the last interval: the
 * machine's busy time less this process's own, sampled once per `intervalMs` on a timer that
 * does not keep the process alive. This process's own work does not count, so that its
 * kernels do not hide the cores they used from its next kernel.
 */
export class IdleCores {
  private last: CpuSample
  private free: number
  private readonly timer: NodeJS.Timeout

  constructor (intervalMs = 1000, private readonly read: () => CpuSample = readCpu) {
    this.last = read()
    this.free = this.last.cpus
    this.timer = setInterval(() => this.update(), intervalMs)
    this.timer.unref()
  }

  /** Cores that other processes left free over the last interval (fractional; all of them before the first interval ends). */
  get cores (): number { return this.free }

  close (): void { clearInterval(this.timer) }

  /** Takes a reading now (the timer does this every interval). */
  update (): void {
    const now = this.read()
    const elapsed = now.atMs - this.last.atMs
    if (elapsed <= 0) return
    const others = Math.max(0, (now.machineBusyMs - this.last.machineBusyMs) - (now.ownMs - this.last.ownMs)) / elapsed
    this.free = Math.max(0, now.cpus - others)
    this.last = now
  }
}

import { type FastifyInstance } from 'fastify'

/** How long no request may have arrived before a draining process stops taking new ones. */
export const QUIET_MS = 100

/**
 * Graceful shutdown, in three steps. At once: readiness fails, so the load balancer stops
 * sending. Then requests are still accepted until the process has caught up (no evaluation in
 * progress) and none has arrived for QUIET_MS: a busy event loop reads requests that were
 * already on the wire at the signal only later, and those are answered. Then new loss
 * requests get 503 with Retry-After, the listener closes and the sessions are released.
 * The caller bounds the whole by SHUTDOWN_TIMEOUT_MS (refusing starts at half of it at the latest).
 */
export async function drain (app: FastifyInstance, timeoutMs: number): Promise<void> {
  const state = app.losshub
  state.draining = true
  const start = Date.now()
  await new Promise<void>(resolve => {
    const check = (): void => {
      const quiet = state.active === 0 && Date.now() - state.lastRequestAt >= QUIET_MS
      if (quiet || Date.now() - start >= timeoutMs / 2) resolve()
      else setTimeout(check, QUIET_MS / 4)
    }
    check()
  })
  state.refusing = true
  await state.batcher.drain()
  await app.close()
}

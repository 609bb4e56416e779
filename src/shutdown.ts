import { type FastifyInstance } from 'fastify'
import { LosshubError } from './errors'
import { answerWhileReceiving } from './http/body-admission'

/** How long no request may have arrived before a draining process stops taking new ones. */
export const QUIET_MS = 100

/** The most time before SHUTDOWN_TIMEOUT_MS at which what is still unanswered is refused (`lastWord`); at most a fifth of the timeout. */
export const LAST_WORD_MS = 1000

/**
 * Graceful shutdown, in three steps. At once: readiness fails, so the load balancer stops
 * sending. Then requests are still accepted until the process has caught up (no evaluation in
 * progress) and none has arrived for QUIET_MS: a busy event loop reads requests that were
 * already on the wire at the signal only later, and those are answered. Then new loss
 * requests get 503 with Retry-After, the listener closes and the sessions are released.
 * The caller bounds the whole by SHUTDOWN_TIMEOUT_MS (refusing starts at half of it at the
 * latest). What is still unanswered shortly before that bound gets 503 SHUTTING_DOWN then
 * (`lastWord`), and the gRPC server is closed by half that margin before it.
 */
export async function drain (app: FastifyInstance, timeoutMs: number): Promise<void> {
  const state = app.losshub
  state.draining = true
  const start = Date.now()
  const margin = Math.min(LAST_WORD_MS, timeoutMs / 5)
  state.closeBy = start + timeoutMs - margin / 2
  const last = setTimeout(() => lastWord(app), timeoutMs - margin)
  last.unref()
  try {
    await closing(app, start, timeoutMs)
  } finally {
    clearTimeout(last)
  }
}

/** The three steps of `drain`. */
async function closing (app: FastifyInstance, start: number, timeoutMs: number): Promise<void> {
  const state = app.losshub
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

/**
 * A shutdown's last word, when its time has nearly run out: every request still unanswered gets
 * 503 SHUTTING_DOWN with Retry-After (a gRPC call UNAVAILABLE), instead of a connection cut at
 * the exit. Those queued or in a kernel are refused by the batcher (a kernel runs on, unread);
 * a body or gRPC message still arriving is answered at once, its connection (stream) closed.
 */
export function lastWord (app: FastifyInstance): void {
  const err = (): LosshubError => new LosshubError('SHUTTING_DOWN', 'shutting down: SHUTDOWN_TIMEOUT_MS ran out before this request was answered; retry', 1)
  const state = app.losshub
  state.batcher.refuseAll(err())
  for (const { request, reply } of state.posts) {
    if (!reply.sent && !request.raw.complete) answerWhileReceiving(request, reply, 503, err())
  }
  state.grpc.refuseArrivingCalls(err())
  app.log.warn({ posts: state.posts.size }, 'shutdown time nearly out: what is unanswered is refused')
}
